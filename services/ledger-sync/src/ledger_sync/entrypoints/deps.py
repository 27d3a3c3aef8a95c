"""What a route of ledger-sync may ask for as a parameter: its runtime, its own objects, the sync machinery."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from dunning_kit.dependencies import objects_of, runtime_of
from ledger_sync.service_layer.objects import LedgerObjects, LedgerRuntime
from ledger_sync.service_layer.sync import SyncService

Runtime = Annotated[LedgerRuntime, Depends(runtime_of)]
Objects = Annotated[LedgerObjects, Depends(objects_of)]


def sync_of(objects: Objects) -> SyncService:
    return objects.sync


Sync = Annotated[SyncService, Depends(sync_of)]
