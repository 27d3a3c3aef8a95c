"""read_projected's three answers to a miss, from what the consumer groups have left to apply (a stub runtime:
the real lag is proven against the broker in services/policy-engine/tests/test_api.py)."""

from __future__ import annotations

from typing import Any

import pytest

from dunning_kit.problems import NOT_ARRIVED_YET, Problem, read_projected


class StubRuntime:
    name = "policy-engine"

    def __init__(self, pending: int | None) -> None:
        self.pending = pending

    async def unapplied(self, topics: Any) -> int | None:
        return self.pending


async def never() -> None:
    return None


async def test_events_left_to_apply_mean_not_arrived_yet_with_retry_after() -> None:
    with pytest.raises(Problem) as caught:
        await read_projected(StubRuntime(3), never, what="invoice INV-1", topics=["t"])  # type: ignore[arg-type]
    p = caught.value
    assert (p.status, p.type, p.title, p.headers, p.extensions) == (
        404, NOT_ARRIVED_YET, "Not arrived yet", {"Retry-After": "1"}, {"pending_events": 3},
    )  # fmt: skip
    assert p.detail == (
        "invoice INV-1 has not arrived yet: the policy-engine still has 3 events to apply (processing is "
        "asynchronous); retry in 1s"
    )


async def test_an_unmeasurable_lag_is_never_called_unknown() -> None:
    with pytest.raises(Problem) as caught:
        await read_projected(StubRuntime(None), never, what="invoice INV-1", topics=["t"])  # type: ignore[arg-type]
    assert (caught.value.type, caught.value.headers) == (NOT_ARRIVED_YET, {"Retry-After": "1"})
    assert caught.value.detail.startswith("invoice INV-1 may not have arrived yet: the policy-engine cannot tell")


async def test_nothing_left_to_apply_means_unknown_without_retry_after() -> None:
    with pytest.raises(Problem) as caught:
        await read_projected(StubRuntime(0), never, what="customer C-9", topics=["t"])  # type: ignore[arg-type]
    p = caught.value
    assert (p.type, p.title, p.headers) == ("about:blank", "Not Found", {})
    assert p.detail == (
        "unknown customer C-9: the policy-engine has applied every event published so far and none was about it"
    )
    assert p.body("/v1/customers/C-9/timeline") == {
        "type": "about:blank", "title": "Not Found", "status": 404, "detail": p.detail,
        "instance": "/v1/customers/C-9/timeline",
    }  # fmt: skip


async def test_an_object_applied_between_the_miss_and_the_lag_check_is_returned_not_called_unknown() -> None:
    reads = []

    async def load() -> dict[str, str] | None:
        reads.append(1)
        return None if len(reads) == 1 else {"id": "INV-1"}

    assert await read_projected(StubRuntime(0), load, what="invoice INV-1", topics=["t"]) == {"id": "INV-1"}  # type: ignore[arg-type]
    assert len(reads) == 2
