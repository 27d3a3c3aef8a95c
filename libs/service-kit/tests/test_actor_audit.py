"""`Dunning-Actor` (dunning_kit.actor) and the audit log (dunning_kit.audit_log, audit_api) on a small service of
their own: the kit's tables and a `things` table in a schema, routes that change it, no broker.

A call for a person writes its audit row in the change's own transaction; a refused actor (forged, expired,
another tenant's, malformed) is a 401 naming the header and writes nothing; a call without one is as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import Column, MetaData, String, Table, text

from dunning_kit.actor import (
    HEADER,
    Acting,
    Actor,
    ActorRefused,
    public_key_of,
    sign,
    signing_key,
    verify,
    verify_keys,
)
from dunning_kit.app import create_service_app
from dunning_kit.audit_log import audit_log_table
from dunning_kit.clock import SimulatedClock
from dunning_kit.dependencies import runtime_of
from dunning_kit.dev_secrets import DEV_ACTOR_SIGNING_KEY, DEV_ACTOR_VERIFY_KEY, development_secrets
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.runtime import ServiceRuntime, plumbing_tables
from dunning_kit.settings import ServiceSettings
from dunning_kit.testing import COLIN, MONA, TEST_API_KEYS, acting_as

SCHEMA = "actor_kit"
OTHER_KEY = "xxsZh6V4bM1q8E0rYt3uLw7aPz2cNd9fGh5jKl0mQ4s"  # a signing key no service trusts
AUDIT = "/v1/audit-log"
GLOBEX_MONA = Actor(sub="mona", name="Mona Manager", email="mona@acme.test", role="manager", tenant="globex")

router = APIRouter(prefix="/v1")


@router.post("/things/{thing_id}", status_code=201)
async def create_thing(thing_id: str, request: Request, actor: Acting) -> dict[str, Any]:
    runtime: ServiceRuntime = runtime_of(request)
    async with runtime.sessions() as session, session.begin():
        await session.execute(text("INSERT INTO things (id) VALUES (:id)"), {"id": thing_id})
    return {"id": thing_id, "by": actor.name if actor else None}


@router.delete("/things/{thing_id}")
async def delete_thing(thing_id: str, request: Request) -> dict[str, Any]:
    runtime: ServiceRuntime = runtime_of(request)
    async with runtime.sessions() as session, session.begin():
        gone = await session.execute(text("DELETE FROM things WHERE id = :id"), {"id": thing_id})
        if not gone.rowcount:
            raise HTTPException(404, f"no thing {thing_id}")  # the transaction rolls back
    return {"id": thing_id}


@router.post("/things/{thing_id}/boom")
async def break_thing(thing_id: str) -> dict[str, Any]:
    raise RuntimeError(f"{thing_id} broke")  # nothing committed: the kit answers 500


@router.post("/things/{thing_id}/check")
async def check_thing(thing_id: str) -> dict[str, Any]:
    return {"id": thing_id, "fine": True}  # a POST that changes nothing


@dataclass
class Kit:
    runtime: ServiceRuntime
    clock: SimulatedClock
    api: httpx.AsyncClient
    admin: httpx.AsyncClient

    async def rows(self, table: str) -> list[dict[str, Any]]:
        async with self.runtime.engine.connect() as conn:
            result = await conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))
            return [dict(r._mapping) for r in result]

    def acting(self, actor: Actor = COLIN, **kwargs: Any) -> dict[str, str]:
        header: dict[str, str] = acting_as(actor, self.clock, **kwargs)
        return header


@pytest_asyncio.fixture(scope="module")
async def kit(pg_backend: Any) -> AsyncIterator[Kit]:
    metadata = MetaData()
    plumbing_tables(metadata)
    audit_log_table(metadata)
    Table("things", metadata, Column("id", String(50), primary_key=True))
    settings = ServiceSettings(database_url=pg_backend.fresh_database(), api_keys=TEST_API_KEYS, dev_mode=True)
    clock = SimulatedClock(SIM_START)
    runtime: ServiceRuntime = ServiceRuntime(name="actor-kit", settings=settings, clock=clock, metadata=metadata,
                                             schema=SCHEMA)  # fmt: skip
    async with runtime.engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    app = create_service_app(runtime, title="actor-kit", description="", routers=[router])
    transport = httpx.ASGITransport(app=app)  # no lifespan: the runtime (broker, relay) is never started

    def client(key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, base_url="http://kit", headers={"Authorization": f"Bearer {key}"})

    async with client("acme-api-key") as api, client("acme-admin-key") as admin:
        yield Kit(runtime, clock, api, admin)
    await runtime.engine.dispose()


@pytest_asyncio.fixture
async def fresh(kit: Kit) -> Kit:
    async with kit.runtime.engine.begin() as conn:
        await conn.execute(text("TRUNCATE things, audit_log"))
    return kit


# ------------------------------------------------------------------------------------------ the token alone


def test_a_token_verifies_with_any_listed_key_and_names_the_person() -> None:
    now = SIM_START
    token = sign(COLIN, signing_key(DEV_ACTOR_SIGNING_KEY), now)
    keys = verify_keys(f"{public_key_of(OTHER_KEY)}, {DEV_ACTOR_VERIFY_KEY}")  # a rotation: old and new
    assert verify(token, keys, now + timedelta(minutes=4), "acme") == COLIN
    assert public_key_of(DEV_ACTOR_SIGNING_KEY) == DEV_ACTOR_VERIFY_KEY


@pytest.mark.parametrize(
    ("token_of", "reason"),
    [
        (lambda: sign(COLIN, signing_key(OTHER_KEY), SIM_START), "does not verify"),
        (lambda: sign(COLIN, signing_key(DEV_ACTOR_SIGNING_KEY), SIM_START - timedelta(minutes=6)), "expired"),
        (lambda: sign(COLIN, signing_key(DEV_ACTOR_SIGNING_KEY), SIM_START + timedelta(minutes=2)), "future"),
        (lambda: sign(GLOBEX_MONA, signing_key(DEV_ACTOR_SIGNING_KEY), SIM_START), "another tenant"),
        (lambda: "not-a-token", "not a signed token"),
        (lambda: _tampered(sign(COLIN, signing_key(DEV_ACTOR_SIGNING_KEY), SIM_START)), "does not verify"),
    ],
)
def test_a_token_that_may_not_be_trusted_is_refused_with_its_reason(token_of: Any, reason: str) -> None:
    with pytest.raises(ActorRefused, match=reason):
        verify(token_of(), verify_keys(DEV_ACTOR_VERIFY_KEY), SIM_START, "acme")


def _tampered(token: str) -> str:
    """The same signature over claims naming someone else."""
    import base64
    import json

    head, claims, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    data["name"] = "Mallory"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{head}.{forged}.{signature}"


def test_no_token_lives_longer_than_five_minutes() -> None:
    with pytest.raises(ValueError, match="at most"):
        sign(COLIN, signing_key(DEV_ACTOR_SIGNING_KEY), SIM_START, timedelta(minutes=6))


def test_outside_dev_mode_the_shipped_development_actor_key_is_refused_and_none_is_trusted_by_default() -> None:
    assert development_secrets(ServiceSettings(actor_verify_keys=DEV_ACTOR_VERIFY_KEY, api_keys=TEST_API_KEYS)).get(
        "ACTOR_VERIFY_KEYS"
    )
    assert "ACTOR_VERIFY_KEYS" not in development_secrets(ServiceSettings(api_keys=TEST_API_KEYS))
    with pytest.raises(ValueError, match="32 bytes"):
        ServiceSettings(actor_verify_keys="c2hvcnQ")


# ------------------------------------------------------------------------------------------ through a service


async def test_a_change_made_for_a_person_is_audited_in_its_own_transaction_with_the_name(fresh: Kit) -> None:
    answer = await fresh.api.post("/v1/things/T-1", headers=fresh.acting())
    assert answer.status_code == 201, answer.text
    assert answer.json()["by"] == "Colin Collector", "the route knows who acted"
    (row,) = await fresh.rows("audit_log")
    assert (row["actor_sub"], row["actor_name"], row["actor_email"], row["actor_role"]) == (
        "colin", "Colin Collector", "colin@acme.test", "collector",
    )  # fmt: skip
    assert (row["method"], row["route"], row["path"], row["targets"]) == (
        "POST", "/v1/things/{thing_id}", "/v1/things/T-1", {"thing_id": "T-1"},
    )  # fmt: skip
    assert (row["outcome"], row["status"], row["tenant_id"], row["at"]) == ("applied", None, "acme", SIM_START)
    # The same transaction: the row's xmin (the writing transaction's id) is the thing's.
    async with fresh.runtime.engine.connect() as conn:
        xmins = (
            await conn.execute(text("SELECT (SELECT xmin::text FROM things), (SELECT xmin::text FROM audit_log)"))
        ).one()
    assert xmins[0] == xmins[1]


async def test_a_refused_change_is_audited_as_refused_and_a_change_of_nothing_not_at_all(fresh: Kit) -> None:
    assert (await fresh.api.delete("/v1/things/T-9", headers=fresh.acting())).status_code == 404
    assert (await fresh.api.post("/v1/things/T-9/check", headers=fresh.acting())).status_code == 200
    assert (await fresh.api.post("/v1/things/T-9/boom", headers=fresh.acting())).status_code == 500
    rows = await fresh.rows("audit_log")
    assert [(r["method"], r["route"], r["outcome"], r["status"]) for r in rows] == [
        ("DELETE", "/v1/things/{thing_id}", "refused", 404),
        ("POST", "/v1/things/{thing_id}/boom", "failed", 500),
    ]


@pytest.mark.parametrize(
    "header",
    [
        lambda k: k.acting(key=OTHER_KEY),
        lambda k: k.acting(at=k.clock.now() - timedelta(minutes=5, seconds=1)),
        lambda k: k.acting(GLOBEX_MONA),
        lambda k: {HEADER: "garbage"},
    ],
    ids=["forged", "expired", "another-tenant", "malformed"],
)
async def test_a_call_with_a_refused_actor_is_401_naming_the_header_and_writes_nothing(fresh: Kit, header: Any) -> None:
    answer = await fresh.api.post("/v1/things/T-2", headers={**header(fresh), "Idempotency-Key": "k-2"})
    assert answer.status_code == 401
    body = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert body["detail"].startswith(f"{HEADER}: ") and body["errors"][0]["field"] == HEADER
    assert await fresh.rows("things") == [] and await fresh.rows("audit_log") == []
    assert all(r["key"] != "k-2" for r in await fresh.rows("idempotency_keys")), "no key was claimed"


async def test_a_call_without_an_actor_changes_as_before_and_leaves_no_audit_row(fresh: Kit) -> None:
    answer = await fresh.api.post("/v1/things/T-3")
    assert answer.status_code == 201 and answer.json()["by"] is None
    assert [r["id"] for r in await fresh.rows("things")] == ["T-3"]
    assert await fresh.rows("audit_log") == []


async def test_the_audit_log_reads_newest_first_by_person_and_time_in_cursor_pages_for_admins_only(fresh: Kit) -> None:
    for n in range(3):
        await fresh.api.post(f"/v1/things/C-{n}", headers=fresh.acting(COLIN))
        fresh.clock.advance(minutes=1)
    await fresh.api.post("/v1/things/M-1", headers=fresh.acting(MONA))
    assert (await fresh.api.get(AUDIT)).status_code == 403, "an api-scoped key may not read the audit"

    everyone = (await fresh.admin.get(AUDIT)).json()
    assert [i["targets"]["thing_id"] for i in everyone["items"]] == ["M-1", "C-2", "C-1", "C-0"]
    assert everyone["items"][0]["actor"] == {"sub": "mona", "name": "Mona Manager", "email": "mona@acme.test",
                                             "role": "manager"}  # fmt: skip
    first = (await fresh.admin.get(AUDIT, params={"person": "colin", "limit": 2})).json()
    rest = (await fresh.admin.get(AUDIT, params={"person": "colin", "cursor": first["next_cursor"]})).json()
    assert [i["targets"]["thing_id"] for i in first["items"] + rest["items"]] == ["C-2", "C-1", "C-0"]
    assert rest["next_cursor"] is None
    since = (SIM_START + timedelta(minutes=1)).isoformat()
    until = (SIM_START + timedelta(minutes=2)).isoformat()
    window = (await fresh.admin.get(AUDIT, params={"since": since, "until": until})).json()
    assert [i["targets"]["thing_id"] for i in window["items"]] == ["C-1"]
    globex = httpx.AsyncClient(transport=fresh.api._transport, base_url="http://kit",
                               headers={"Authorization": "Bearer globex-admin-key"})  # fmt: skip
    async with globex:
        assert (await globex.get(AUDIT)).json()["items"] == [], "another tenant's audit is not served"
