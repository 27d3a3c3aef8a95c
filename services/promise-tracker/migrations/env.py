"""Alembic environment of promise-tracker (async, its own schema and version table)."""

from dunning_kit.migrations import run_env
from promise_tracker.adapters.orm import SCHEMA, metadata

run_env(metadata, SCHEMA)
