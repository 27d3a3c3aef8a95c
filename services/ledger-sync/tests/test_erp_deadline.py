"""An ERP that trickles its answer a byte at a time costs each attempt its total deadline, not as long as it
likes: httpx's read timeout alone never trips on it (issue 12, point 4)."""

from __future__ import annotations

import time

import pytest

from dunning_kit.devfakes.trickle import TricklingServer
from dunning_kit.outbound import OutboundPolicy
from ledger_sync.connectors.http import BearerToken, ErpError, ErpHttp, deadline_from


async def test_a_trickling_erp_request_ends_at_its_total_deadline_then_the_sync_stops_with_an_error() -> None:
    slept: list[float] = []

    async def no_wait(seconds: float) -> None:
        slept.append(seconds)

    # One byte every 1.5 s: within the 30 s read timeout forever; 12 bytes would take 18 s per attempt.
    async with TricklingServer(interval=1.5, size=12) as erp:
        http = ErpHttp(
            erp.base_url, BearerToken("sk_test"), sleep=no_wait, max_attempts=2, deadline=2.0,
            egress=OutboundPolicy("127.0.0.0/8"),  # the fake ERP listens on loopback
        )  # fmt: skip
        started = time.monotonic()
        try:
            with pytest.raises(ErpError, match="deadline"):
                await http.json("GET", "/v1/invoices")
        finally:
            await http.close()
        elapsed = time.monotonic() - started
    assert erp.requests == 2 and len(slept) == 1, "the cut-off attempt is retried like a transport error"
    assert 3.9 <= elapsed < 6.0, f"two attempts took {elapsed:.1f} s, not 2 x the 2 s deadline"


def test_a_connection_may_set_its_own_request_deadline() -> None:
    assert deadline_from({"request_deadline_seconds": "12.5"}) == 12.5
    assert deadline_from({}) == 60.0
