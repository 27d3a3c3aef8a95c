"""`make up` as a user runs it: real processes, every service ready within 90 s, Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dunning_kit.embedded import free_port, wait_until_closed

pytestmark = pytest.mark.e2e


def _ready(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return int(resp.status)
    except OSError:
        return 0


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_stack_comes_up_ready_within_90_seconds_and_stops_cleanly(tmp_path: Path) -> None:
    base = free_port()
    ports = {
        "DEV_PG_PORT": free_port(),
        "DEV_KAFKA_PORT": free_port(),
        "DEV_SMTP_PORT": free_port(),
        "DEV_TWILIO_PORT": free_port(),
        "DEV_HTTP_BASE_PORT": base if all(not _listening(base + i) for i in range(4)) else 18101,
    }
    env = {**os.environ, "DUNNING_RUN_DIR": str(tmp_path), **{k: str(v) for k, v in ports.items()}}
    env.pop("DATABASE_URL", None)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dunning_kit.devstack", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "Ctrl-C" in line or "make up failed" in line:
                break
        elapsed = time.monotonic() - started
        assert "all services ready" in "".join(output), "".join(output)
        assert elapsed < 90, f"ready after {elapsed:.0f}s"
        urls = json.loads((tmp_path / "urls.json").read_text())
        assert set(urls) == {"ledger-sync", "policy-engine", "notifier", "promise-tracker"}
        assert all(_ready(u) == 200 for u in urls.values())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, rest
    assert "stopped" in rest
    http_ports = [ports["DEV_HTTP_BASE_PORT"] + i for i in range(4)]
    ours = [*http_ports, ports["DEV_PG_PORT"], ports["DEV_KAFKA_PORT"], ports["DEV_SMTP_PORT"]]
    # Sockets in teardown may take a moment to close.
    still_open = [p for p in ours if not wait_until_closed(p, timeout=10)]
    assert still_open == [], f"still listening after stop: {still_open}"
