"""Fixtures for the cross-service tests: the process-per-service platform (tests/process_platform.py)."""

from tests.process_platform import process_platform  # noqa: F401 - a fixture, used by name
