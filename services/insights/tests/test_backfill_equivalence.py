"""Backfill-then-stream reaches the model the stream built from the start, across the real services: ledger-sync,
policy-engine, notifier, promise-tracker and insights on the real broker and PostgreSQL, under the shared clock.

Model A is the platform's insights (schema `insights`), watching from the start. Model B is a second insights
(schema `insights_b`, its own consumer groups) started after a mixed history: its groups begin where the stream
stood half-way through that history (what came before has left the topics), it backfills through the four
services' exports, then follows the stream (the second half again: an overlap) while more happens. Every table
of the read model must then be equal (the figures read nothing else).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from sqlalchemy import text

from dunning_events import topics
from dunning_kit.migrations import upgrade
from dunning_kit.services import spec
from dunning_kit.testing import Platform, poll_until, start_service, wait_until_quiet

READ_MODEL = [
    "customers", "invoices", "invoice_changes", "ar_daily", "sales_daily", "disputes", "promises", "plans",
    "steps", "step_invoices", "deliveries", "consent_revocations", "contact_holds",
]  # fmt: skip
SCHEMA_B = "insights_b"
AR_OFF = text(
    "SELECT * FROM (SELECT i.tenant_id, i.currency, i.due_date, c.on_date, sum(c.amount) AS amount,"
    " sum(c.open_delta) AS open_count FROM insights.invoice_changes c JOIN insights.invoices i"
    " USING (tenant_id, invoice_id) GROUP BY 1, 2, 3, 4 HAVING sum(c.amount) <> 0 OR sum(c.open_delta) <> 0) x"
    " FULL JOIN insights.ar_daily a USING (tenant_id, currency, due_date, on_date)"
    " WHERE x.amount IS DISTINCT FROM a.amount OR x.open_count IS DISTINCT FROM a.open_count"
)
CUSTOMER = {"id": "C-INS", "name": "Insights GmbH", "email": "ap@insights.example", "time_zone": "Europe/Berlin",
            "segment": "enterprise"}  # fmt: skip


pytestmark = pytest.mark.e2e


async def stream_position(bootstrap: str) -> dict[TopicPartition, int]:
    """The end of every partition of the four topics now."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        parts = [TopicPartition(t, p) for t in topics.ALL_TOPICS for p in reader.partitions_for_topic(t) or ()]
        return dict(await reader.end_offsets(parts))
    finally:
        await reader.stop()


async def start_groups_at(bootstrap: str, groups: list[str], position: dict[TopicPartition, int]) -> None:
    """Commit the groups' offsets at `position`: what the topics held before it is gone for them."""
    for group in groups:
        topic = group.rsplit(".", 1)[1]
        name = {"ledger": topics.LEDGER, "steps": topics.STEPS, "notifications": topics.NOTIFICATIONS,
                "promises": topics.PROMISES}[topic]  # fmt: skip
        mine = {tp: OffsetAndMetadata(offset, "") for tp, offset in position.items() if tp.topic == name}
        committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await committer.start()
        try:
            committer.assign(list(mine))
            await committer.commit(mine)
        finally:
            await committer.stop()


async def post(platform: Platform, service: str, path: str, body: dict[str, Any] | None = None) -> None:
    async with platform[service].client() as api:
        answer = await api.post(path, json=body)
        assert answer.status_code in (200, 201, 202), (path, answer.text)


async def at(platform: Platform, instant: datetime) -> None:
    # Five services digest each step of the story; on the loaded parallel suite that took over 30 s once.
    await platform.wait_until_quiet(timeout=90)
    platform.clock.set(instant)
    await platform.wait_until_quiet(timeout=90)


def invoice(iid: str, total: str, issue: str, due: str) -> dict[str, Any]:
    return {"id": iid, "customer_id": "C-INS", "number": iid, "currency": "EUR", "total": total,
            "issue_date": issue, "due_date": due}  # fmt: skip


def payment(pid: str, iid: str, amount: str, received: str) -> dict[str, Any]:
    return {"id": pid, "customer_id": "C-INS", "currency": "EUR", "amount": amount, "received_on": received,
            "allocations": [{"invoice_id": iid, "amount": amount}]}  # fmt: skip


def promise(iid: str, amount: str, promised: date) -> dict[str, Any]:
    return {"customer_id": "C-INS", "invoice_ids": [iid], "amount": amount, "currency": "EUR",
            "promised_date": promised.isoformat(), "recorded_by": "collector"}  # fmt: skip


async def tables(platform: Platform, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    async with platform["insights"].runtime.sessions() as session:
        for table in READ_MODEL:
            rows = await session.execute(text(f"SELECT * FROM {schema}.{table} WHERE tenant_id = 'acme'"))
            out[table] = sorted(tuple(r) for r in rows)
    return out


async def test_a_model_backfilled_then_fed_by_the_stream_equals_the_one_that_watched_from_the_start(
    platform: Platform, database_url: str, broker: Any
) -> None:
    # First half: issued, partly paid, credited, voided, disputed.
    await post(platform, "ledger-sync", "/v1/customers", CUSTOMER)
    for body in (
        invoice("I1", "1000.00", "2026-02-01", "2026-03-03"), invoice("I2", "500.00", "2026-02-10", "2026-03-20"),
        invoice("I3", "300.00", "2026-02-15", "2026-04-01"), invoice("I4", "200.00", "2026-02-15", "2026-04-01"),
        invoice("I5", "700.00", "2026-01-20", "2026-02-20"),
    ):  # fmt: skip
        await post(platform, "ledger-sync", "/v1/invoices", body)
    await post(platform, "ledger-sync", "/v1/payments", payment("PAY-1", "I1", "400.00", "2026-03-02"))
    await post(platform, "ledger-sync", "/v1/credit-notes",
               {"id": "CN-1", "customer_id": "C-INS", "currency": "EUR", "total": "100.00", "issued_on": "2026-03-02",
                "allocations": [{"invoice_id": "I3", "amount": "100.00"}]})  # fmt: skip
    await post(platform, "ledger-sync", "/v1/invoices/I4/void", {"reason": "issued twice"})
    await post(platform, "ledger-sync", "/v1/invoices/I3/dispute", {"reason": "wrong quantity"})
    await platform.wait_until_quiet()
    half_way = await stream_position(broker.bootstrap_servers)

    # Second half: a payment reversed, a promise kept, one broken, reminders sent.
    await post(platform, "ledger-sync", "/v1/payments", payment("PAY-2", "I2", "500.00", "2026-03-03"))
    await post(platform, "ledger-sync", "/v1/payments/PAY-2/reverse", {"reason": "chargeback"})
    await platform.wait_until_quiet()  # promise-tracker must know I2 is open again before a promise covers it
    await post(platform, "promise-tracker", "/v1/promises", promise("I2", "500.00", date(2026, 3, 10)))
    await post(platform, "promise-tracker", "/v1/promises", promise("I5", "700.00", date(2026, 3, 4)))
    await platform.wait_until_quiet()
    await post(platform, "ledger-sync", "/v1/payments", payment("PAY-3", "I2", "500.00", "2026-03-04"))
    for day in (4, 6, 9):  # the promise on I5 breaks; I1 is overdue: reminders go out (10:30 Berlin)
        await at(platform, datetime(2026, 3, day, 9, 30, tzinfo=UTC))
    a_so_far = await tables(platform, "insights")
    assert a_so_far["steps"] and a_so_far["deliveries"], "the history must include a step sent"
    assert {r[11] for r in a_so_far["promises"]} >= {"kept", "broken"}, a_so_far["promises"]
    async with platform["insights"].runtime.sessions() as session:  # ar_daily is the GROUP BY of the changes
        assert (await session.execute(AR_OFF)).all() == []

    # Model B: its own schema and groups, the stream from half-way, the rest by backfill.
    await asyncio.to_thread(upgrade, spec("insights").migrations_dir, database_url, SCHEMA_B)
    groups = [f"{SCHEMA_B}.{name}" for name in ("ledger", "steps", "notifications", "promises")]
    await start_groups_at(broker.bootstrap_servers, groups, half_way)
    urls = ",".join(f"{name}={platform[name].base_url}" for name in
                    ("ledger-sync", "policy-engine", "notifier", "promise-tracker"))  # fmt: skip
    b = await start_service(
        spec("insights"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=platform.clock,
        overrides={"database_schema": SCHEMA_B, "insights_export_urls": urls,
                   "insights_export_keys": "acme=acme-api-key", "insights_export_page_limit": 2},
    )  # fmt: skip
    try:
        async with b.client("acme-admin-key") as api:
            assert (await api.post("/v1/backfill")).status_code == 202

            async def finished() -> bool:
                status = (await api.get("/v1/backfill")).json()
                assert not any(s["state"] == "failed" for s in status["sources"]), status
                return bool(status["sources"]) and all(s["state"] == "finished" for s in status["sources"])

            await poll_until(finished, timeout=60, what="the backfill to finish")
        everyone = [*platform.runtimes, b.runtime]
        await wait_until_quiet(everyone)

        # More happens while both follow the stream.
        await post(platform, "ledger-sync", "/v1/invoices/I3/dispute/resolve", {"resolution": "credited"})
        await post(platform, "ledger-sync", "/v1/payments", payment("PAY-4", "I1", "600.00", "2026-03-10"))
        await post(platform, "ledger-sync", "/v1/invoices/I5/write-off", {"reason": "insolvent"})
        await wait_until_quiet(everyone)
        platform.clock.advance(timedelta(days=3))
        await wait_until_quiet(everyone)

        a, b_model = await tables(platform, "insights"), await tables(platform, SCHEMA_B)
        assert a["invoice_changes"] and a["ar_daily"] and a["disputes"]
        for table in READ_MODEL:
            differ = sorted(set(map(repr, a[table])) ^ set(map(repr, b_model[table])))
            assert b_model[table] == a[table], (table, differ)
    finally:
        await b.stop()
