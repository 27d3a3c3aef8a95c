"""The services as the dev stack and the test harness see them (names, ports, packages)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[4]


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # e.g. "ledger-sync"
    package: str  # e.g. "ledger_sync"
    port: int  # default port under `make up`

    @property
    def schema(self) -> str:
        return self.package

    @property
    def directory(self) -> Path:
        return REPO_ROOT / "services" / self.name

    @property
    def migrations_dir(self) -> Path:
        return self.directory / "migrations"

    def bootstrap(self) -> ModuleType:
        """The service's composition root: `Settings`, `build_runtime(settings, clock)`, `create_app(runtime)`."""
        return importlib.import_module(f"{self.package}.bootstrap")


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("ledger-sync", "ledger_sync", 8001),
    ServiceSpec("policy-engine", "policy_engine", 8002),
    ServiceSpec("notifier", "notifier", 8003),
    ServiceSpec("promise-tracker", "promise_tracker", 8004),
    ServiceSpec("insights", "insights", 8005),
    ServiceSpec("workspace", "workspace", 8006),
)


def spec(name: str) -> ServiceSpec:
    for s in SERVICES:
        if s.name == name or s.package == name:
            return s
    raise KeyError(name)
