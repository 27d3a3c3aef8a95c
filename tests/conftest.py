"""Fixtures for the cross-service tests: the process-per-service platform (tests/process_platform.py)."""

from tests.process_platform import platform_env, process_platform  # noqa: F401 - fixtures, used by name
