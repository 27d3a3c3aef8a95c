"""Graceful failure on the real stack, each service its own process (issue 7): SIGTERM drains, SIGKILL
mid-batch converges, the broker and PostgreSQL restart under load. The six invariants are checked at the end."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from datetime import timedelta
from email.utils import parseaddr

import httpx
import pytest

from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.services import SERVICES
from dunning_kit.testing import poll_until
from tests.process_platform import DISPATCH_BATCH, ProcessPlatform, gather_limited

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DUE = (SIM_START + timedelta(days=10)).date()  # Thu 12 March; the pre-due reminder falls on Mon 9 March


async def seed(pp: ProcessPlatform, ids: range) -> None:
    async with pp.client("ledger-sync") as api:

        async def one(i: int) -> None:
            customer = {"id": f"C-{i}", "name": f"Customer {i}", "email": f"c{i}@example.test",
                        "time_zone": "Europe/Berlin", "country": "DE"}  # fmt: skip
            invoice = {"id": f"INV-{i}", "customer_id": f"C-{i}", "number": f"2026-{i:05d}", "currency": "EUR",
                       "total": "100.00", "issue_date": SIM_START.date().isoformat(), "due_date": DUE.isoformat()}  # fmt: skip
            for path, body in (("/v1/customers", customer), ("/v1/invoices", invoice)):
                r = await api.post(path, json=body)
                assert r.status_code in (200, 201), r.text

        await gather_limited([one(i) for i in ids])


async def pay(pp: ProcessPlatform, ids: list[int]) -> None:
    async with pp.client("ledger-sync") as api:

        async def one(i: int) -> None:
            r = await api.post(
                "/v1/payments",
                json={"id": f"PAY-{i}", "customer_id": f"C-{i}", "currency": "EUR", "amount": "100.00",
                      "received_on": SIM_START.date().isoformat(),
                      "allocations": [{"invoice_id": f"INV-{i}", "amount": "100.00"}]},
            )  # fmt: skip
            assert r.status_code in (200, 201), r.text

        await gather_limited([one(i) for i in ids])


def count(pp: ProcessPlatform, query: str) -> int:
    return int(pp.sql(query)[0][0])


async def test_sigkill_mid_batch_and_restart_keeps_every_invariant(process_platform: ProcessPlatform) -> None:
    pp = process_platform
    n = 240
    await seed(pp, range(n))
    paid = [i for i in range(n) if i % 3 == 0]
    await pay(pp, paid)
    # Kill the policy engine while it is still applying the ledger backlog, then bring it back.
    assert pp.stack.stop_service("policy-engine", signal.SIGKILL) == -signal.SIGKILL
    pp.restart("policy-engine")
    await pp.quiet()

    pp.advance(days=7, hours=2)  # Monday 9 March, 12:00 in Berlin: the pre-due reminders are due
    await poll_until(lambda: _at_least(pp, 10), timeout=60, what="the first reminders to reach the SMTP sink")
    assert pp.stack.stop_service("notifier", signal.SIGKILL) == -signal.SIGKILL  # mid-dispatch
    pp.restart("notifier")
    await pp.quiet(timeout=120)

    mails = pp.mails()
    to = [parseaddr(str(m["To"]))[1] for m in mails]
    # Invariant 2: no step delivered twice over one channel (Message-ID derives from the idempotency key).
    ids = Counter(str(m["Message-ID"]) for m in mails)
    assert [k for k, c in ids.items() if c > 1] == []
    # Invariant 1: nothing for a paid invoice.
    paid_addresses = {f"c{i}@example.test" for i in paid}
    assert [a for a in to if a in paid_addresses] == []
    # Invariant 3: nothing lost. Every invoice and payment reached the policy engine and the notifier.
    assert count(pp, "SELECT count(*) FROM policy_engine.cases") == n
    assert count(pp, "SELECT count(*) FROM policy_engine.cases WHERE balance_minor = 0") == len(paid)
    assert count(pp, "SELECT count(*) FROM notifier.invoice_balances WHERE status = 'paid'") == len(paid)
    # Every unpaid customer got its reminder, or (at most once) the delivery is recorded as in doubt
    # because the kill fell between claiming it and the provider's answer.
    unpaid = {f"C-{i}" for i in range(n) if i % 3}
    mailed = {a.split("@")[0].replace("c", "C-", 1) for a in to}
    in_doubt = {
        row[0] for row in pp.sql("SELECT customer_id FROM notifier.deliveries WHERE status IN ('sending', 'unknown')")
    }
    missing = unpaid - mailed - in_doubt
    if missing:
        sample = ",".join(f"'{c}'" for c in sorted(missing)[:5])
        detail = pp.sql(
            f"SELECT customer_id, status, coalesce(error, '') FROM notifier.deliveries WHERE customer_id IN ({sample})"
        )
        cases = pp.sql(
            f"SELECT customer_id, status, next_step, next_at, done_steps FROM policy_engine.cases WHERE customer_id IN ({sample})"
        )
        raise AssertionError(f"{len(missing)} unpaid customers got nothing: deliveries {detail} cases {cases}")
    # The claimed batch being sent and the one being recorded can be in doubt, never more.
    assert len(in_doubt) <= 2 * DISPATCH_BATCH, "only the batches in flight at the kill can be in doubt"
    # Invariant 5: the timeline explains every paid invoice's cancelled step.
    cancelled = count(pp, "SELECT count(DISTINCT invoice_id) FROM policy_engine.timeline WHERE kind = 'cancelled'")
    assert cancelled == len(paid)


async def _at_least(pp: ProcessPlatform, n: int) -> bool:
    return len(pp.mails()) >= n


async def test_sigterm_under_load_drains_and_loses_nothing(process_platform: ProcessPlatform) -> None:
    pp = process_platform
    n = 300
    await seed(pp, range(n))
    code = await asyncio.to_thread(pp.stack.stop_service, "policy-engine", signal.SIGTERM, 45)
    assert code == 0, "a SIGTERM'd service exits cleanly within the pod's grace period"
    pp.restart("policy-engine")
    await pp.quiet()
    assert count(pp, "SELECT count(*) FROM policy_engine.cases") == n
    dupes = pp.sql(
        "SELECT invoice_id, step_name FROM policy_engine.timeline WHERE kind = 'scheduled' "
        "GROUP BY invoice_id, step_name, at HAVING count(*) > 1"
    )
    assert dupes == [], "no effect applied twice"


async def test_broker_restart_readiness_drops_and_new_events_flow(process_platform: ProcessPlatform) -> None:
    pp = process_platform
    await seed(pp, range(3))
    await pp.quiet()
    broker = pp.stack.broker
    assert broker is not None
    broker.stop()
    await poll_until(lambda: _not_ready(pp, "policy-engine"), timeout=30, what="readiness to go false")
    broker.start()
    for s in (spec.name for spec in SERVICES):
        await poll_until(lambda s=s: _is_ready(pp, s), timeout=90, what=f"{s} to be ready again")
    # The embedded broker forgot its topics (memory storage); what matters is that new events flow.
    await seed(pp, range(100, 103))
    await poll_until(
        lambda: _sql_count_at_least(pp, "SELECT count(*) FROM policy_engine.cases WHERE invoice_id LIKE 'INV-10_'", 3),
        timeout=90,
        what="events published after the restart to reach the policy engine",
    )


async def test_postgres_restart_under_load_recovers_and_loses_no_accepted_write(
    process_platform: ProcessPlatform,
) -> None:
    pp = process_platform
    accepted: list[int] = []
    not_ready_seen: set[str] = set()
    stop = asyncio.Event()

    async def load() -> None:
        async with pp.client("ledger-sync") as api:
            i = 0
            while not stop.is_set() or len(accepted) < 120:
                i += 1
                customer = {"id": f"C-{i}", "name": f"Customer {i}", "email": f"c{i}@example.test"}
                invoice = {"id": f"INV-{i}", "customer_id": f"C-{i}", "number": f"N-{i}", "currency": "EUR",
                           "total": "50.00", "issue_date": SIM_START.date().isoformat(), "due_date": DUE.isoformat()}  # fmt: skip
                try:
                    ok = (await api.post("/v1/customers", json=customer)).status_code < 300
                    ok = ok and (await api.post("/v1/invoices", json=invoice)).status_code < 300
                except httpx.HTTPError:
                    ok = False
                if ok:
                    accepted.append(i)
                if i > 2000:
                    return

    async def watch() -> None:
        # Sample readiness every 100 ms until the load ends (woken at once when it does).
        while not stop.is_set():
            for s in ("policy-engine", "notifier"):
                if await pp.ready(s) != 200:
                    not_ready_seen.add(s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.1)

    tasks = [asyncio.create_task(load()), asyncio.create_task(watch())]
    await poll_until(lambda: _len_at_least(accepted, 40), timeout=60, what="load to start")
    assert pp.stack.pg is not None
    await asyncio.to_thread(pp.stack.pg.restart)
    await poll_until(lambda: _len_at_least(accepted, 80), timeout=90, what="writes to be accepted again")
    stop.set()
    await asyncio.gather(*tasks)
    assert not_ready_seen, "readiness went false while PostgreSQL was away"
    await pp.quiet(timeout=120)
    want = {f"INV-{i}" for i in accepted}
    in_engine = {r[0] for r in pp.sql("SELECT invoice_id FROM policy_engine.cases")}
    in_notifier = {r[0] for r in pp.sql("SELECT invoice_id FROM notifier.invoice_balances")}
    assert want - in_engine == set(), "every accepted invoice reached the policy engine"
    assert want - in_notifier == set(), "every accepted invoice reached the notifier"


async def _not_ready(pp: ProcessPlatform, service: str) -> bool:
    return await pp.ready(service) != 200


async def _is_ready(pp: ProcessPlatform, service: str) -> bool:
    return await pp.ready(service) == 200


async def _sql_count_at_least(pp: ProcessPlatform, query: str, n: int) -> bool:
    return count(pp, query) >= n


async def _len_at_least(items: list[int], n: int) -> bool:
    return len(items) >= n
