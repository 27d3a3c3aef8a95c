"""`make up` as a user runs it: real processes, every service ready within 90 s, Ctrl-C stops everything."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from dunning_kit.embedded import wait_until_closed
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
        assert set(urls) == {"ledger-sync", "policy-engine", "notifier", "promise-tracker"}
        assert all(_ready(u) == 200 for u in urls.values())
    finally:
        rest = stack.stop()
    assert stack.proc.returncode == 0, rest
    assert "stopped" in rest
    ports = stack.ports
    http_ports = [ports["DEV_HTTP_BASE_PORT"] + i for i in range(4)]
    ours = [*http_ports, ports["DEV_PG_PORT"], ports["DEV_KAFKA_PORT"], ports["DEV_SMTP_PORT"]]
    # Sockets in teardown may take a moment to close.
    still_open = [p for p in ours if not wait_until_closed(p, timeout=10)]
    named = {p: name for name, p in ports.items()} | {p: "an API port" for p in http_ports}
    assert still_open == [], f"still listening after stop: {[(p, named[p]) for p in still_open]}"
