"""Alembic environment of workspace (async, its own schema and version table)."""

from dunning_kit.migrations import run_env
from workspace.adapters.orm import SCHEMA, metadata

run_env(metadata, SCHEMA)
