"""workspace's tables: who is signed in, sign-ins under way, and what staff decided about worklist items.

The workspace holds no ledger, dunning or delivery data: it reads those from the services on every page. What it
keeps is its own: sessions (server-side; the cookie carries only a random id, stored here as its SHA-256) and
the sign-ins under way (OIDC state, nonce and PKCE verifier between the redirect and the callback).
"""

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, Text

from dunning_kit.runtime import plumbing_tables

SCHEMA = "workspace"
metadata = MetaData()
outbox, inbox = plumbing_tables(metadata)

people_sessions = Table(
    "people_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),  # sha256 hex of the cookie's value
    Column("subject", String(255), nullable=False),  # the identity provider's `sub`
    Column("name", String(255), nullable=False),
    Column("email", String(320), nullable=False),
    Column("tenant_id", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("csrf_token", String(64), nullable=False),  # every form of the session carries it
    Column("id_token", Text),  # kept for the provider's sign-out (id_token_hint)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_people_sessions_expires", "expires_at"),
)

sign_ins = Table(
    "sign_ins",
    metadata,
    Column("state", String(64), primary_key=True),
    Column("nonce", String(64), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("next_path", String(2000), nullable=False),  # where the person was going (a local path)
    Column("created_at", DateTime(timezone=True), nullable=False),
)
