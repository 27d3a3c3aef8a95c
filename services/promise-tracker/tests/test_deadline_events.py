"""The deadline timer writes promise.kept / promise.broken without pydantic (adapters/deadline_events.py);
these must be exactly the events the pydantic models write for the same rows (same fields, order, values
and bytes; decoded by the consumers' path, with full validation), whatever the currency's decimals, the
deadline's fraction of a second or the characters in an id, and a customer's broken promises in one batch
must be numbered in deadline order."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dunning_events.codec import encode_data
from dunning_events.outbox import event_of_row
from dunning_kit.db import make_engine, make_sessions
from promise_tracker.adapters import orm
from promise_tracker.adapters.outbox import SetwiseOutboxWriter
from promise_tracker.service_layer import deadlines
from promise_tracker.service_layer.outcomes import Outcomes, Resolution

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 3, 6, 8, 0, 0, tzinfo=UTC)
CREATED = NOW - timedelta(days=3)


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url, orm.SCHEMA, pool_size=2)
    try:
        yield eng
    finally:
        await eng.dispose()


def promise(promise_id: str, customer: str, currency: str, amount: int, received: int, **over: Any) -> dict[str, Any]:
    return {
        "tenant_id": "acme", "promise_id": promise_id, "customer_id": customer, "invoice_ids": [f"INV-{promise_id}"],
        "currency": currency, "amount_minor": amount, "received_minor": received, "promised_date": date(2026, 3, 5),
        "deadline": datetime(2026, 3, 6, 7, 59, 59, tzinfo=UTC), "recorded_by": "collector", "status": "active",
        "created_at": CREATED, **over,
    }  # fmt: skip


PROMISES = [
    promise("P-JPY", "C-1", "JPY", 120_000, 20_000),  # partially kept, no decimals
    promise("P-KWD", "C-1", "KWD", 1_250, 0, deadline=datetime(2026, 3, 6, 7, 59, 59, 250_000, tzinfo=UTC)),
    promise("P-EUR", "C-1", "EUR", 50_000, 0, deadline=datetime(2026, 3, 6, 6, 59, 59, tzinfo=UTC)),
    promise("P-KEPT", "C-2", "EUR", 30_000, 30_000),
    promise('P-"Zoë"\\ünï', 'C-"3"', "USD", 101, 0, invoice_ids=['INV-"a"', "INV-b\\", "INV-\n\t\x01\u2028/"]),
    promise("P-SETTLED", "C-4", "EUR", 10_000, 0),  # its invoice was settled in time: kept though nothing counted
]


async def seed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(orm.customers), [{"tenant_id": "acme", "customer_id": "C-1", "broken_promise_count": 4}]
        )
        await conn.execute(insert(orm.promises), PROMISES)
        invoices = [
            {"tenant_id": "acme", "invoice_id": inv, "customer_id": p["customer_id"], "number": inv,
             "currency": p["currency"], "total_minor": p["amount_minor"], "balance_minor": p["amount_minor"],
             "status": "open", "settled_at": None}
            for p in PROMISES for inv in p["invoice_ids"]
        ]  # fmt: skip
        invoices[-1] |= {"balance_minor": 0, "status": "paid", "settled_at": datetime(2026, 3, 6, 7, tzinfo=UTC)}
        await conn.execute(insert(orm.invoices), invoices)
        await conn.execute(
            insert(orm.commitments),
            [
                {"tenant_id": "acme", "invoice_id": inv, "holder_kind": "promise", "holder_id": p["promise_id"]}
                for p in PROMISES
                for inv in p["invoice_ids"]
            ],
        )
        await conn.execute(
            insert(orm.deadline_timers),
            [{"tenant_id": "acme", "promise_id": p["promise_id"], "check_at": p["deadline"]} for p in PROMISES],
        )


async def test_deadline_events_are_byte_for_byte_the_events_the_models_write(engine: AsyncEngine) -> None:
    await seed(engine)
    sessions = make_sessions(engine)
    async with sessions() as session, session.begin():
        assert await deadlines.fire_due(session, SetwiseOutboxWriter(orm.outbox), NOW, 100) == len(PROMISES)
    async with engine.connect() as conn:
        outbox = (await conn.execute(select(orm.outbox).order_by(orm.outbox.c.id))).all()
        rows = {r.promise_id: r for r in await conn.execute(select(orm.promises))}
        customers = {r.customer_id: r for r in await conn.execute(select(orm.customers))}
        left = (await conn.execute(select(orm.commitments))).all() + (
            await conn.execute(select(orm.deadline_timers))
        ).all()

    verdicts = {pid: r.status for pid, r in rows.items()}
    assert verdicts == {
        "P-JPY": "partially_kept", "P-KWD": "broken", "P-EUR": "broken", "P-KEPT": "kept",
        'P-"Zoë"\\ünï': "broken", "P-SETTLED": "kept",
    }  # fmt: skip
    assert all(r.resolved_at == NOW for r in rows.values())
    assert left == [], "the timers are gone and the invoices released"
    # C-1 had 4 broken promises: three more, numbered in deadline order (P-EUR's deadline is the earliest).
    assert (customers["C-1"].broken_promise_count, customers["C-1"].kept_promise_count) == (7, 0)
    assert (customers["C-2"].kept_promise_count, customers['C-"3"'].broken_promise_count) == (1, 1)
    counts = {"P-EUR": 5, "P-JPY": 6, "P-KWD": 7, 'P-"Zoë"\\ünï': 1}

    assert len(outbox) == len(PROMISES)
    in_order = [e.subject for e in (event_of_row(o._mapping) for o in outbox) if e.customer_id == "C-1"]
    assert in_order == ["P-EUR", "P-JPY", "P-KWD"], "a customer's events in deadline order"
    for o in outbox:
        event = event_of_row(o._mapping)  # the consumer's path: full validation against the registered model
        row = rows[event.subject]
        expected = Outcomes(None, None, NOW)  # type: ignore[arg-type]
        expected._emit_ending(Resolution(row, row.status, row.received_minor), {("acme", row.promise_id): counts.get(row.promise_id, 0)}, None)  # fmt: skip
        [model] = expected._events
        same_ids = model.model_copy(update={"id": event.id, "correlation_id": event.correlation_id})
        # The values this service hands the fast encoder (whose bytes and field order libs/events checks for every
        # event type): the same document as the validated event's, amounts in the currency's decimals.
        written, expected_doc = json.loads(o.payload), json.loads(encode_data(same_ids))
        assert written == expected_doc, "the document the contract's encoder writes"
        assert event == same_ids, "and the same event, attributes included"
        assert (o.event_id, o.event_type, o.topic, o.key) == (event.id, model.type, model.data.topic, f"acme:{row.customer_id}")  # fmt: skip
        assert event.id.version == 4 and event.correlation_id.version == 4
    assert len({event_of_row(o._mapping).correlation_id for o in outbox} | {o.event_id for o in outbox}) == 2 * len(
        outbox
    )


async def test_a_timer_whose_promise_already_ended_is_claimed_and_writes_nothing(engine: AsyncEngine) -> None:
    await seed(engine)
    async with engine.begin() as conn:
        await conn.execute(orm.promises.update().values(status="cancelled"))
    async with make_sessions(engine)() as session, session.begin():
        assert await deadlines.fire_due(session, SetwiseOutboxWriter(orm.outbox), NOW, 100) == len(PROMISES)
        assert await deadlines.fire_due(session, SetwiseOutboxWriter(orm.outbox), NOW, 100) == 0
    async with engine.connect() as conn:
        assert (await conn.execute(select(orm.outbox))).all() == []
        assert {r.broken_promise_count for r in await conn.execute(select(orm.customers))} == {4}


async def test_a_missed_instalment_in_the_same_batch_is_numbered_after_the_customers_earlier_promise(
    engine: AsyncEngine,
) -> None:
    """Stand-alone promises are written in SQL, instalments in Python (their plan may default): one
    running count per customer across both, and the plan's events in the order consumers rely on."""
    early = datetime(2026, 3, 6, 6, 59, 59, tzinfo=UTC)
    due = datetime(2026, 3, 6, 7, 59, 59, tzinfo=UTC)
    plan = {
        "tenant_id": "acme", "plan_id": "PL-1", "customer_id": "C-1", "invoice_ids": ["INV-PL"], "currency": "EUR",
        "total_minor": 20_000, "instalment_count": 2, "interval": "weekly", "recorded_by": "collector",
        "on_missed": "cancel", "max_strikes": 1, "status": "active", "created_at": CREATED,
    }  # fmt: skip
    promises = [
        promise("P-ALONE", "C-1", "EUR", 5_000, 0, deadline=early),
        promise("PL-1-1", "C-1", "EUR", 10_000, 0, deadline=due, plan_id="PL-1", instalment_index=1, invoice_ids=["INV-PL"]),
        promise("PL-1-2", "C-1", "EUR", 10_000, 0, deadline=due + timedelta(days=7), plan_id="PL-1", instalment_index=2, invoice_ids=["INV-PL"]),
    ]  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(insert(orm.customers), [{"tenant_id": "acme", "customer_id": "C-1", "broken_promise_count": 2}])  # fmt: skip
        await conn.execute(insert(orm.plans), [plan])
        await conn.execute(
            insert(orm.promises), [p | {"plan_id": p.get("plan_id"), "instalment_index": p.get("instalment_index")} for p in promises]
        )  # fmt: skip
        await conn.execute(
            insert(orm.invoices),
            [
                {"tenant_id": "acme", "invoice_id": inv, "customer_id": "C-1", "number": inv, "currency": "EUR",
                 "total_minor": 20_000, "balance_minor": 20_000, "status": "open"}
                for inv in ("INV-P-ALONE", "INV-PL")
            ],
        )  # fmt: skip
        await conn.execute(
            insert(orm.commitments),
            [
                {"tenant_id": "acme", "invoice_id": "INV-P-ALONE", "holder_kind": "promise", "holder_id": "P-ALONE"},
                {"tenant_id": "acme", "invoice_id": "INV-PL", "holder_kind": "plan", "holder_id": "PL-1"},
            ],
        )
        await conn.execute(
            insert(orm.deadline_timers),
            [{"tenant_id": "acme", "promise_id": p["promise_id"], "check_at": p["deadline"]} for p in promises],
        )
    async with make_sessions(engine)() as session, session.begin():
        assert await deadlines.fire_due(session, SetwiseOutboxWriter(orm.outbox), NOW, 100) == 2
    async with engine.connect() as conn:
        events = [event_of_row(o._mapping) for o in await conn.execute(select(orm.outbox).order_by(orm.outbox.c.id))]
        statuses = {r.promise_id: r.status for r in await conn.execute(select(orm.promises))}
        plan_status = (await conn.execute(select(orm.plans.c.status))).scalar_one()
        commitments = (await conn.execute(select(orm.commitments))).all()
    assert statuses == {"P-ALONE": "broken", "PL-1-1": "broken", "PL-1-2": "cancelled"}
    assert plan_status == "defaulted" and commitments == []
    assert [(e.type, e.subject) for e in events] == [
        ("promise.broken", "P-ALONE"),
        ("promise.cancelled", "PL-1-2"),
        ("promise.broken", "PL-1-1"),
        ("plan.defaulted", "PL-1"),
    ]
    assert [e.data.broken_promise_count for e in events if e.type == "promise.broken"] == [3, 4]


async def test_a_batch_rolled_back_leaves_every_timer_promise_and_event_as_it_was(engine: AsyncEngine) -> None:
    """The statement and the COPY run on the raw connection: they must be inside the caller's transaction."""
    await seed(engine)
    with pytest.raises(RuntimeError):
        async with make_sessions(engine)() as session, session.begin():
            assert await deadlines.fire_due(session, SetwiseOutboxWriter(orm.outbox), NOW, 100) == len(PROMISES)
            raise RuntimeError("crash before commit")
    async with engine.connect() as conn:
        assert (await conn.execute(select(orm.outbox))).all() == []
        assert len((await conn.execute(select(orm.deadline_timers))).all()) == len(PROMISES)
        assert {r.status for r in await conn.execute(select(orm.promises))} == {"active"}
