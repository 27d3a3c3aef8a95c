"""The policy engine's own objects, held by its runtime next to the kit's parts: `ServiceRuntime[Settings,
EngineObjects]` (bootstrap builds them; routes get them through entrypoints/deps.py)."""

from __future__ import annotations

from dataclasses import dataclass

from dunning_kit.runtime import ServiceRuntime
from policy_engine.service_layer.handlers import EngineConfig
from policy_engine.service_layer.policy_book import PolicyBook
from policy_engine.settings import Settings


@dataclass(frozen=True)
class EngineObjects:
    config: EngineConfig
    book: PolicyBook  # the tenants' policies and assignments, cached; shared by consumers, timers and routes


EngineRuntime = ServiceRuntime[Settings, EngineObjects]
