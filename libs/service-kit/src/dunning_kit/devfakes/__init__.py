"""Local stand-ins for external providers, speaking their real wire protocols (dev stack and tests)."""
