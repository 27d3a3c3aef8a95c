"""ledger-sync's own objects, held by its runtime next to the kit's parts: `ServiceRuntime[Settings, LedgerObjects]`
(bootstrap builds them; routes get them through entrypoints/deps.py)."""

from __future__ import annotations

from dataclasses import dataclass

from dunning_kit.runtime import ServiceRuntime
from ledger_sync.service_layer.sync import SyncService
from ledger_sync.settings import Settings


@dataclass(frozen=True)
class LedgerObjects:
    sync: SyncService  # connectors: configuration, scheduled syncs, webhook notices, reconciliation


LedgerRuntime = ServiceRuntime[Settings, LedgerObjects]
