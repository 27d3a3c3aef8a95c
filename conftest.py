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


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    fixture_info = getattr(item, "_fixtureinfo", None)  # pytest's resolved fixtures of a test function
    if fixture_info is None:
        return False
    return any(defs and defs[-1].scope in ("module", "package") for defs in fixture_info.name2fixturedefs.values())


# tryfirst: before pytest-xdist's own hook, which turns xdist_group marks into the ids its scheduler groups by.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first; and a module whose tests share a module-scoped fixture keeps them on one worker.

    A module fixture is usually a whole platform (services, PostgreSQL databases, consumer groups). Handed out one
    test at a time, a module's tests landed on up to six workers, and each built that platform again, all at once,
    on a 2-core machine. The implicit group is the module's; a module's own xdist_group mark wins.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is None and _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(f"module:{item.nodeid.split('::')[0]}"))
    items.sort(key=_rank)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Fail a `--dist loadgroup` run whose workers would not keep an xdist_group together.

    pytest-xdist groups by a suffix it writes into each test's id. When a pytest release stopped reading that
    attribute, every group was silently split: a module's expensive fixture (a 20,000-invoice platform) was built
    once per worker, in parallel, on a 2-core machine, and the suite failed on load.
    """
    if not getattr(session.config.option, "loadgroup", False):
        return  # not an xdist worker of a loadgroup run
    lost = [i.nodeid for i in session.items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
    if lost:
        raise pytest.UsageError(f"pytest-xdist did not tag {len(lost)} xdist_group tests (first: {lost[0]})")
