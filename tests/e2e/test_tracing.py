"""One trace from the ledger-sync API call, through the policy engine's decision, to the notifier's
provider call: across Kafka and across the durable timer and delivery records in between."""

from __future__ import annotations

from datetime import timedelta

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.testing import Platform, poll_until

pytestmark = pytest.mark.e2e


def ancestry(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """Names from `span` up to its root, following parent span ids."""
    chain = [span.name]
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span.name)
    return chain


async def test_the_api_call_is_the_ancestor_of_the_notifiers_send_span(
    span_exporter: InMemorySpanExporter, platform: Platform, smtp_sink: SmtpSink
) -> None:
    today = platform.clock.now().date()
    async with platform["ledger-sync"].client() as api:
        customer = {"id": "C-1", "name": "Initech", "email": "ap@initech.example", "time_zone": "Europe/Berlin"}
        assert (await api.post("/v1/customers", json=customer)).status_code == 201
        invoice = {"id": "INV-1", "customer_id": "C-1", "number": "2026-0001", "currency": "EUR", "total": "120.00",
                   "issue_date": today.isoformat(), "due_date": (today + timedelta(days=10)).isoformat()}  # fmt: skip
        assert (await api.post("/v1/invoices", json=invoice)).status_code == 201
    await platform.advance(days=11)
    await poll_until(lambda: _has_mail(smtp_sink), what="the reminder")
    await platform.wait_until_quiet()

    spans = span_exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    api_span = next(s for s in spans if s.name == "POST /v1/invoices")
    sends = [s for s in spans if s.name.startswith("notifier send")]
    assert sends, f"no notifier send span among {sorted({s.name for s in spans})}"
    send = sends[0]
    assert send.context.trace_id == api_span.context.trace_id, ancestry(send, by_id)
    chain = ancestry(send, by_id)
    assert chain[-1] == "POST /v1/invoices", chain
    assert any("policy-engine" in name for name in chain), "the policy engine's decision is on the path"
    assert any(s.name.startswith("notifier.steps process") for s in spans if s.name in chain)


async def _has_mail(sink: SmtpSink) -> bool:
    return bool(sink.received)
