"""When a configured connector first syncs on its own: `first_sync_in_s` 0 is now, a positive value is then,
omitted is one sync interval. The simulated clock only moves when a test moves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest_asyncio

from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import poll_until, wait_until_quiet
from ledger_sync.devfakes.server import serving
from ledger_sync.devfakes.stripe import FakeStripe
from ledger_sync.testing import LedgerHarness

ADMIN = "acme-admin-key"


@pytest_asyncio.fixture
async def stripe(clock: SimulatedClock) -> AsyncIterator[tuple[FakeStripe, str]]:
    fake = FakeStripe(clock.now)
    fake.customer("cus_A", "Initech GmbH", "ap@initech.example", "DE")
    fake.invoice("in_1", "cus_A", 10000)
    async with serving(fake.app) as base:
        yield fake, base


async def configure(harness: LedgerHarness, base: str, fake: FakeStripe, **schedule: Any) -> None:
    async with harness.client(ADMIN) as api:
        r = await api.put(
            "/v1/connectors/stripe",
            json={"config": {"base_url": base}, "credentials": {"api_key": fake.api_key}, **schedule},
        )
        assert r.status_code == 200, r.text


async def connection(harness: LedgerHarness) -> dict[str, Any]:
    async with harness.client(ADMIN) as api:
        [conn] = (await api.get("/v1/connectors")).json()["items"]
    return conn  # type: ignore[no-any-return]


async def test_first_sync_in_s_0_runs_the_first_sync_at_once(
    harness: LedgerHarness, clock: SimulatedClock, stripe: tuple[FakeStripe, str]
) -> None:
    fake, base = stripe
    configured_at = clock.now()
    await configure(harness, base, fake, first_sync_in_s=0, sync_interval_s=3600)

    async def synced() -> str | None:
        return (await connection(harness))["last_success_at"]  # type: ignore[no-any-return]

    # The clock stays where it is: only a sync due now can run.
    assert datetime.fromisoformat(await poll_until(synced, what="the first sync")) == configured_at
    assert "invoice.created" in await harness.event_types()
    # The next one is leased one interval after the sync that just ran.
    assert datetime.fromisoformat((await connection(harness))["next_sync_at"]) == configured_at + timedelta(hours=1)


async def test_a_positive_first_sync_in_s_runs_the_first_sync_then_and_not_a_second_earlier(
    harness: LedgerHarness, clock: SimulatedClock, stripe: tuple[FakeStripe, str]
) -> None:
    fake, base = stripe
    configured_at = clock.now()
    await configure(harness, base, fake, first_sync_in_s=120, sync_interval_s=3600)
    assert datetime.fromisoformat((await connection(harness))["next_sync_at"]) == configured_at + timedelta(seconds=120)

    clock.advance(seconds=119)
    await wait_until_quiet([harness.service.runtime])
    assert (await connection(harness))["last_success_at"] is None
    assert fake.requests == []

    clock.advance(seconds=1)

    async def synced() -> str | None:
        return (await connection(harness))["last_success_at"]  # type: ignore[no-any-return]

    assert datetime.fromisoformat(await poll_until(synced, what="the first sync")) == configured_at + timedelta(
        seconds=120
    )


async def test_without_first_sync_in_s_the_first_sync_is_one_interval_away(
    harness: LedgerHarness, clock: SimulatedClock, stripe: tuple[FakeStripe, str]
) -> None:
    fake, base = stripe
    configured_at = clock.now()
    await configure(harness, base, fake, sync_interval_s=600)
    assert datetime.fromisoformat((await connection(harness))["next_sync_at"]) == configured_at + timedelta(minutes=10)
    await wait_until_quiet([harness.service.runtime])
    assert (await connection(harness))["last_success_at"] is None


async def test_a_scheduled_connector_says_so_on_ledger_synced_and_disabling_it_says_it_no_longer_is(
    harness: LedgerHarness, clock: SimulatedClock, stripe: tuple[FakeStripe, str]
) -> None:
    fake, base = stripe
    await configure(harness, base, fake, first_sync_in_s=0)

    async def synced() -> list[Any]:
        return [e.data for e in await harness.events() if e.type == "ledger.synced"]

    (sync,) = await poll_until(synced, what="the first sync's ledger.synced")
    assert sync.scheduled and sync.succeeded
    await configure(harness, base, fake, enabled=False)
    reports = await synced()  # (events() waits until the outbox is drained)
    assert len(reports) == 2
    # The policy engine stops waiting for syncs that will not come: no staleness from a disabled connector.
    assert (reports[1].scheduled, reports[1].succeeded) == (False, False)
    assert reports[1].error == "connector disabled: no scheduled syncs"
    assert reports[1].last_successful_sync_at == sync.finished_at


async def test_a_schedule_beyond_a_year_is_refused_naming_the_field_and_nothing_is_configured(
    harness: LedgerHarness,
) -> None:
    # Each used to be a 500: the intervals are 32-bit columns, and a first sync 2^40 s away is no datetime.
    for field in ("sync_interval_s", "reconcile_interval_s", "first_sync_in_s"):
        async with harness.client(ADMIN) as api:
            r = await api.put("/v1/connectors/stripe", json={"config": {}, field: 2**40})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
            assert (await api.get("/v1/connectors")).json()["items"] == [], "nothing configured"
