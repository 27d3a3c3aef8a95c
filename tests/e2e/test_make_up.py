"""`make up` as a user runs it: real processes, every service ready within 90 s, Ctrl-C stops everything."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dunning_kit.embedded import wait_until_closed
from dunning_kit.services import SERVICES
from tests.make_up_process import start_make_up

pytestmark = pytest.mark.e2e


def _ready(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return int(resp.status)
    except OSError:
        return 0


def test_the_stack_comes_up_ready_within_90_seconds_and_stops_cleanly(tmp_path: Path) -> None:
    stack = start_make_up(tmp_path)
    try:
        assert stack.ready, "".join(stack.output)
        assert stack.startup_seconds < 90, f"ready after {stack.startup_seconds:.0f}s"
        urls = json.loads((tmp_path / "urls.json").read_text())
        assert set(urls) == {s.name for s in SERVICES}
        assert all(_ready(u) == 200 for u in urls.values())
        banner = "".join(stack.output)
        assert f"{'insights':<16} {urls['insights']}" in banner, "the figures' address is printed"
        assert f"figures: {urls['insights']}/v1/figures/aging" in banner
    finally:
        rest = stack.stop()
    assert stack.proc.returncode == 0, rest
    assert "stopped" in rest
    ports = stack.ports
    http_ports = [ports["DEV_HTTP_BASE_PORT"] + i for i in range(len(SERVICES))]
    ours = [*http_ports, ports["DEV_PG_PORT"], ports["DEV_KAFKA_PORT"], ports["DEV_SMTP_PORT"], ports["DEV_IDP_PORT"]]
    # Sockets in teardown may take a moment to close.
    still_open = [p for p in ours if not wait_until_closed(p, timeout=10)]
    named = {p: name for name, p in ports.items()} | {p: "an API port" for p in http_ports}
    assert still_open == [], f"still listening after stop: {[(p, named[p]) for p in still_open]}"


def _upsert_customer(base_url: str) -> int:
    body = json.dumps({"id": "C-RESET", "name": "Reset GmbH", "email": "ap@reset.example"}).encode()
    request = urllib.request.Request(
        f"{base_url}/v1/customers",
        data=body,
        headers={"Authorization": "Bearer dev-acme-key", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_schema_built_from_an_older_initial_migration_is_rebuilt_and_said(tmp_path: Path) -> None:
    """Before the first release each service's one migration is rewritten in place: `make up` on an old .run/
    must rebuild that schema (saying so) instead of serving 500s on a missing table, and with it every other
    service's (their data is one history: the ledger's customer is new again, so its event reaches the rebuilt
    policy engine)."""
    first = start_make_up(tmp_path)
    try:
        assert first.ready, "".join(first.output)
        assert _upsert_customer(json.loads((tmp_path / "urls.json").read_text())["ledger-sync"]) == 201
    finally:
        first.stop()
    fingerprints = tmp_path / "schema-fingerprints.json"
    known = json.loads(fingerprints.read_text())
    known["policy-engine"] = "built-from-an-older-0001"
    fingerprints.write_text(json.dumps(known))
    again = start_make_up(tmp_path)
    try:
        assert again.ready, "".join(again.output)
        said = "".join(again.output)
        assert "policy-engine: migration changed since .run/ was made; every service's development data is reset" in (
            said
        ), said
        urls = json.loads((tmp_path / "urls.json").read_text())
        assert _upsert_customer(urls["ledger-sync"]) == 201, "the ledger's data was reset with the engine's"
    finally:
        again.stop()
    assert json.loads(fingerprints.read_text())["policy-engine"] != "built-from-an-older-0001"
