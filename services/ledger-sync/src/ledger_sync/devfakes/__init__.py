"""Local fakes of the ERPs, speaking their real JSON over real sockets (tests, the dev stack, the bench)."""
