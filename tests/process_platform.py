"""Process-per-service platform for fault and observability tests: every service its own OS process
(so SIGKILL is real), one embedded PostgreSQL and broker, a real SMTP sink, and a shared simulated clock
in a file (CLOCK_FILE)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dunning_kit.clock import set_file_clock
from dunning_kit.devstack import DevStack, Ports
from dunning_kit.embedded import free_port
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.services import SERVICES
from dunning_kit.testing import TEST_SESSION_TIMEOUT_MS, poll_until
from tests.make_up_process import free_port_block

KEY = {"Authorization": "Bearer dev-acme-key"}
DISPATCH_BATCH = 50


@dataclass
class ProcessPlatform:
    stack: DevStack
    run_dir: Path
    clock_file: Path
    now: datetime

    def url(self, service: str) -> str:
        return self.stack.urls[service]

    def client(self, service: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url(service), headers=KEY, timeout=30)

    def advance(self, **delta: float) -> None:
        self.now = self.now + timedelta(**delta)
        set_file_clock(self.clock_file, self.now)

    async def quiet(self, timeout: float = 60) -> None:
        """Every service reports no outbox backlog, no consumer lag and no due timers, twice in a row."""
        streak = 0

        async def all_quiet() -> bool:
            nonlocal streak
            async with httpx.AsyncClient(timeout=5) as http:
                codes = []
                for s in SERVICES:
                    try:
                        codes.append((await http.get(f"{self.url(s.name)}/quietz")).status_code)
                    except httpx.HTTPError:
                        codes.append(0)
            streak = streak + 1 if all(c == 200 for c in codes) else 0
            return streak >= 2

        await poll_until(all_quiet, timeout=timeout, interval=0.2, what="every service to be quiet")

    async def ready(self, service: str) -> int:
        async with httpx.AsyncClient(timeout=3) as http:
            try:
                return (await http.get(f"{self.url(service)}/readyz")).status_code
            except httpx.HTTPError:
                return 0

    def mails(self) -> list[email.message.EmailMessage]:
        out = []
        for path in sorted((self.run_dir / "mail").glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            out.append(msg)  # type: ignore[arg-type]
        return out

    def sql(self, query: str) -> list[list[str]]:
        assert self.stack.pg is not None
        text = self.stack.pg.psql("dunning", query)
        return [line.split("|") for line in text.splitlines() if line]

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted((self.run_dir / "logs").glob("*.log")))

    def restart(self, service: str) -> None:
        self.stack.start_service(service)
        self.stack.wait_ready(service, timeout=60)


# Planted in every service's settings; no log line may ever contain them.
PLANTED_SECRETS = {
    "TWILIO_AUTH_TOKEN": "planted-twilio-token-7f3a9c",
    "SELF_SERVICE_SIGNING_KEY": "planted-link-key-51be02",
}


@pytest.fixture
def platform_env() -> dict[str, dict[str, str]]:
    """Settings per service on top of the common ones; a test module overrides this fixture to change them."""
    # Small dispatch batches: many rounds even with few reminders (test_faults bounds what a kill leaves in doubt).
    return {"notifier": {"DISPATCH_BATCH_SIZE": str(DISPATCH_BATCH)}}


@pytest.fixture
def process_platform(tmp_path: Path, platform_env: dict[str, dict[str, str]]) -> Iterator[ProcessPlatform]:
    with running_platform(tmp_path, platform_env) as platform:
        yield platform


@contextmanager
def running_platform(tmp_path: Path, platform_env: dict[str, dict[str, str]]) -> Iterator[ProcessPlatform]:
    """The platform in processes for as long as the block runs (a module's fixture may hold one for all its tests)."""
    clock_file = tmp_path / "clock"
    set_file_clock(clock_file, SIM_START)
    common = {
        "CLOCK_FILE": str(clock_file),
        "TIMER_POLL_INTERVAL": "0.2",
        "OUTBOX_POLL_INTERVAL": "0.05",
        "LOG_LEVEL": "INFO",
        "SHUTDOWN_GRACE_SECONDS": "20",
        # As in the in-process harness: a 1 s group join instead of 5 s, and a killed consumer's partitions
        # move on after 2 s.
        "KAFKA_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
        **PLANTED_SECRETS,
    }
    # Every service's port below the ephemeral range, as the `make up` tests choose them: base+3 from the ephemeral
    # range was once taken by an outgoing connection between choosing and binding (promise-tracker, errno 98). One
    # more after them: the workspace's development identity provider takes the port after the services'.
    ports = Ports(
        postgres=free_port(),
        kafka=free_port(),
        smtp=free_port(),
        twilio=free_port(),
        base=free_port_block(len(SERVICES) + 1, set()),
    )
    extra = {s.name: {**common, **platform_env.get(s.name, {})} for s in SERVICES}
    stack = DevStack(ports, extra_env=extra, run_dir=tmp_path)
    try:
        stack.up(timeout=90)
        yield ProcessPlatform(stack, tmp_path, clock_file, SIM_START)
    finally:
        stack.down()


async def gather_limited(coros: list, limit: int = 16) -> list:  # type: ignore[type-arg]
    sem = asyncio.Semaphore(limit)

    async def one(c):  # type: ignore[no-untyped-def]
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))
