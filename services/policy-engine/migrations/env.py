"""Alembic environment of policy-engine (async, its own schema and version table)."""

from dunning_kit.migrations import run_env
from policy_engine.adapters.orm import SCHEMA, metadata

run_env(metadata, SCHEMA)
