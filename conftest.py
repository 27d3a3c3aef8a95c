"""Root conftest: every test in the repo gets the shared fixtures (real PostgreSQL, broker, clock)."""

from __future__ import annotations

import pytest

pytest_plugins = ["dunning_kit.pytest_plugin"]

# Longest first: `make test` hands tests to its parallel workers one at a time in collection order, so the tests
# that take tens of seconds each (process kills, fuzz runs, whole stacks, a browser) start at the beginning, on
# different workers, instead of one worker finishing them alone at the end. The sort is stable.
LONG_MARKERS = ("slow", "fuzz", "e2e", "browser")


def _rank(item: pytest.Item) -> int:
    return next((i for i, m in enumerate(LONG_MARKERS) if item.get_closest_marker(m)), len(LONG_MARKERS))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)
