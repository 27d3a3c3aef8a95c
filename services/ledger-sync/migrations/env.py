"""Alembic environment of ledger-sync (async, its own schema and version table)."""

from dunning_kit.migrations import run_env
from ledger_sync.adapters.orm import SCHEMA, metadata

run_env(metadata, SCHEMA)
