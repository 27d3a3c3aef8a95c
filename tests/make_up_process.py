"""`make up` as a user runs it, in a child process on free ports with its state in a temporary directory."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dunning_kit.services import SERVICES


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ephemeral_range() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def free_port_block(count: int, taken: set[int]) -> int:
    """The first of `count` consecutive free ports below the ephemeral range: a port the OS hands out for
    outgoing connections (the stack's own, to PostgreSQL and the broker) can be taken between choosing it and
    binding it, which failed a run once (promise-tracker on base+3)."""
    ceiling = min(_ephemeral_range().start, 32768) - count
    floor = min(20000, ceiling - 1000)
    for _ in range(1000):
        first = random.randrange(floor, ceiling)
        block = range(first, first + count)
        if not taken.intersection(block) and all(_bindable(p) for p in block):
            taken.update(block)
            return first
    raise RuntimeError("no free ports below the ephemeral range")


@dataclass
class MakeUp:
    proc: subprocess.Popen[str]
    ports: dict[str, int]
    env: dict[str, str]
    startup_seconds: float
    output: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return "all services ready" in "".join(self.output)

    def stop(self) -> str:
        """Ctrl-C, as a user stops it; returns what it printed while stopping."""
        self.proc.send_signal(signal.SIGINT)
        try:
            rest, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return rest


def start_make_up(run_dir: Path) -> MakeUp:
    """Start the stack the way `make up` does (settings as environment variables) and wait for its banner."""
    taken: set[int] = set()
    ports = {
        "DEV_HTTP_BASE_PORT": free_port_block(len(SERVICES), taken),  # the APIs take base, base+1, ...
        "DEV_PG_PORT": free_port_block(1, taken),
        "DEV_KAFKA_PORT": free_port_block(1, taken),
        "DEV_SMTP_PORT": free_port_block(1, taken),
        "DEV_TWILIO_PORT": free_port_block(1, taken),
        "DEV_IDP_PORT": free_port_block(1, taken),  # the workspace's development identity provider
    }
    env = {**os.environ, "DUNNING_RUN_DIR": str(run_dir), **{k: str(v) for k, v in ports.items()}}
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
    stack = MakeUp(proc, ports, env, 0.0)
    assert proc.stdout is not None
    for line in proc.stdout:
        stack.output.append(line)
        if "Ctrl-C" in line or "make up failed" in line:
            break
    stack.startup_seconds = time.monotonic() - started
    return stack
