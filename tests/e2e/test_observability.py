"""Metrics, logs and traces a scenario leaves behind, read the way ops read them (separate processes)."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.testing import poll_until
from tests.process_platform import PLANTED_SECRETS, ProcessPlatform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def scrape(pp: ProcessPlatform, service: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{pp.url(service)}/metrics")).text
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(metrics: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return sum(
        v for (n, ls), v in metrics.items() if n == name and all(dict(ls).get(k) == x for k, x in labels.items())
    )


async def test_metrics_move_with_a_reminder_and_logs_carry_ids_but_no_secrets(
    process_platform: ProcessPlatform,
) -> None:
    pp = process_platform
    before = {s: await scrape(pp, s) for s in ("ledger-sync", "policy-engine", "notifier")}
    async with pp.client("ledger-sync") as api:
        customer = {"id": "C-9", "name": "Globex", "email": "ap@globex.example", "time_zone": "Europe/Berlin",
                    "country": "DE", "phone": "+4915112345678"}  # fmt: skip
        assert (await api.post("/v1/customers", json=customer)).status_code == 201
        due = (SIM_START + timedelta(days=10)).date().isoformat()
        invoice = {"id": "INV-9", "customer_id": "C-9", "number": "2026-0009", "currency": "EUR", "total": "990.00",
                   "issue_date": SIM_START.date().isoformat(), "due_date": due}  # fmt: skip
        assert (await api.post("/v1/invoices", json=invoice)).status_code == 201
    await pp.quiet()
    pp.advance(days=7, hours=2)
    await poll_until(lambda: _mail_count(pp, 1), timeout=60, what="the pre-due reminder")
    await pp.quiet()
    after = {s: await scrape(pp, s) for s in ("ledger-sync", "policy-engine", "notifier")}

    def delta(service: str, name: str, **labels: str) -> float:
        return value(after[service], name, **labels) - value(before[service], name, **labels)

    assert delta("ledger-sync", "dunning_events_published_total", topic="dunning.ledger.v1") == 2
    assert delta("policy-engine", "dunning_events_consumed_total", group="policy-engine.ledger", outcome="applied") == 2
    assert delta("policy-engine", "dunning_events_published_total", topic="dunning.steps.v1") >= 1
    assert delta("notifier", "dunning_events_consumed_total", group="notifier.steps", outcome="applied") >= 1
    assert delta("notifier", "dunning_events_published_total", topic="dunning.notifications.v1") >= 1
    for service in after:
        assert value(after[service], "dunning_outbox_backlog") == 0
    for service in ("policy-engine", "notifier"):  # ledger-sync only produces
        lags = [v for (n, _), v in after[service].items() if n == "dunning_consumer_lag"]
        assert lags and all(v == 0 for v in lags), f"{service} reports its consumer lag, all caught up"
    assert value(after["policy-engine"], "dunning_consumer_batch_seconds_count") > value(
        before["policy-engine"], "dunning_consumer_batch_seconds_count"
    )
    timers = [n for (n, _), _v in after["policy-engine"].items() if n == "dunning_timers_due"]
    assert timers, "the due-timer backlog is exported"

    logs = pp.logs()
    for secret in PLANTED_SECRETS.values():
        assert secret not in logs
    assert "+4915112345678" not in logs, "phone numbers are not logged"
    applied = [
        json.loads(line) for line in logs.splitlines() if line.startswith("{") and "applied invoice.created" in line
    ]
    assert applied, "one JSON line per applied event"
    line = applied[0]
    assert line["tenant_id"] == "acme" and line["subject"] == "INV-9" and line["event_id"] and line["trace_id"]


async def _mail_count(pp: ProcessPlatform, n: int) -> bool:
    return len(pp.mails()) >= n
