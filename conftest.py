"""Root conftest: every test in the repo gets the shared fixtures (real PostgreSQL, broker, clock)."""

pytest_plugins = ["dunning_kit.pytest_plugin"]
