"""`make up` as a user runs it, in a child process on free ports with its state in a temporary directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dunning_kit.embedded import free_port


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


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
    # The four APIs take base..base+3: free_port() vouches only for base, so look for a free run of four, and
    # keep the other ports out of it (the OS hands out nearby ports: an SMTP sink on base+2 broke a run once).
    base = free_port()
    while any(_listening(base + i) for i in range(4)):
        base = free_port()
    taken = set(range(base, base + 4))

    def other_port() -> int:
        port = free_port()
        while port in taken:
            port = free_port()
        taken.add(port)
        return port

    ports = {
        "DEV_PG_PORT": other_port(),
        "DEV_KAFKA_PORT": other_port(),
        "DEV_SMTP_PORT": other_port(),
        "DEV_TWILIO_PORT": other_port(),
        "DEV_HTTP_BASE_PORT": base,
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
