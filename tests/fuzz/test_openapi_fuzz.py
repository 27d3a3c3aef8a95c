"""Schemathesis against each service's own OpenAPI document: no 5xx, and every response matches the document.

`make test` runs a short seeded run per service (a fixed number of cases per operation, EXAMPLES below, with the
seed in DUNNING_FUZZ_SEED), so a regression shows up in the suite; `make fuzz` runs the same for longer
(DUNNING_FUZZ_SECONDS each). Each service
runs alone on real PostgreSQL and the real broker, with an admin key of one tenant (`acme-admin-key`).

Fuzzed configuration can name any host (an ERP `base_url`, a webhook URL): every outbound HTTP call of the
service under test goes to a proxy port on loopback that refuses connections, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dunning_kit.clock import SimulatedClock
from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.services import SERVICES
from dunning_kit.testing import BrokerBackend, start_platform

# A fixed case count takes longer on a busy machine than the suite's 300 s per test allows.
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(900)]

# `make test`: a fixed number of cases per operation (schemathesis' --max-examples, no time budget), so what is
# covered does not shrink when the machine is busy (the suite runs in parallel workers). Chosen so each service
# gets at least the cases a 30 s budget reached alone on the 2-core machine before issue 14 (ledger-sync 3,821,
# policy-engine 4,477, notifier 2,872, promise-tracker 3,588). Since every response is typed (issue 14),
# schemathesis infers links between operations and its stateful phase adds scenarios, so fewer fuzzing cases per
# operation reach more in all: seed 20261205 generates ledger-sync 4,533 cases, policy-engine 6,773, notifier 3,134
# (promise-tracker keeps 180, its stateful phase is small). DUNNING_FUZZ_EXAMPLES sets one count for all.
# Issue 16 gave the policy engine 8 more operations (calls, notes, reminders, hand-offs, the block's GET) and the
# stateful phase links between them: at 90 per operation it generated 9,400 cases in 470 s alone, at 40 7,570 in
# 362 s. Most of that is not the count per operation but schemathesis' coverage phase (boundary values of every
# field: 6,091 of the 7,334 cases of the examples, coverage and fuzzing phases, 264 s of 340 s alone), and on the
# 2-core CI machine, busy with the parallel suite, the one run did not end in 780 s. So the policy engine runs as
# four tests (PARTS, below), each on its own worker with its own platform: the coverage phase of its policy
# collection (create, list, validate: 2,656 cases, 116 s alone), of one policy (update, versions, preview: 2,697
# cases, 116 s), of everything else (709 cases, 39 s), and the fuzzing and stateful phases (1,439, 88 s). Each part
# keeps the seed and the count per operation; `make fuzz` runs every phase of a service in one run.
# `make fuzz`: a time budget, DUNNING_FUZZ_SECONDS per service, during which fuzzing and stateful sequences repeat.
SECONDS = int(os.environ.get("DUNNING_FUZZ_SECONDS", "0"))
# The workspace (a web application) documents only the kit's operations endpoints (its pages are out of its schema;
# their forms are proven by its own tests: CSRF, roles, errors next to the field): a few cases show they hold.
EXAMPLES = {
    "ledger-sync": 95, "policy-engine": 40, "notifier": 85, "promise-tracker": 180, "insights": 90, "workspace": 20,
}  # fmt: skip
SEED = int(os.environ.get("DUNNING_FUZZ_SEED", "20261205"))
# What the suite holds every response to: no 5xx, and the body of every documented status as documented.
CHECKS = "not_a_server_error,response_schema_conformance"
# Readiness and quiescence answer 503 by design (documented); fuzzing them proves nothing.
PROBES = r"^/(readyz|quietz)$"
# schemathesis takes one exclusion regex (the last given): a part that excludes paths names the probes too.
PARTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "policy-engine": (
        ("policies-coverage", ("--phases=examples,coverage", r"--include-path-regex=^/v1/policies(/validate)?$")),
        ("policy-coverage", ("--phases=examples,coverage", r"--include-path-regex=^/v1/policies/\{")),
        ("others-coverage", ("--phases=examples,coverage", rf"--exclude-path-regex={PROBES}|^/v1/policies")),
        ("fuzzing-stateful", ("--phases=fuzzing,stateful",)),
    )
}


def _budget(service: str) -> str:
    if SECONDS:
        return f"--max-time={SECONDS}"
    return f"--max-examples={os.environ.get('DUNNING_FUZZ_EXAMPLES') or EXAMPLES[service]}"


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback port that is bound but never listens (connections are refused), as every HTTP proxy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(name, "127.0.0.1,localhost")
        yield proxy


def _runs() -> list[object]:
    """One test per service, or one per part (PARTS) in the suite's fixed-count mode."""
    runs: list[object] = []
    for service in (s.name for s in SERVICES):
        parts = PARTS.get(service, ()) if not SECONDS else ()
        runs += [pytest.param(service, options, id=f"{service}-{name}") for name, options in parts] or [
            pytest.param(service, (), id=service)
        ]
    return runs


@pytest.mark.parametrize(("service", "part"), _runs())
async def test_fuzzing_the_openapi_document_finds_no_server_error_and_no_undocumented_body(
    service: str,
    part: tuple[str, ...],
    database_url: str,
    broker: BrokerBackend,
    clock: SimulatedClock,
    smtp_sink: SmtpSink,
    dead_proxy: str,
    tmp_path: Path,
) -> None:
    overrides = {
        "notifier": {"smtp_host": smtp_sink.host, "smtp_port": smtp_sink.port},
        # Alone here: its personal-data export must not ask peers that are not running (that answers 503 by design).
        "ledger-sync": {"personal_data_peers": ""},
    }
    platform = await start_platform(
        database_url=database_url,
        bootstrap_servers=broker.bootstrap_servers,
        clock=clock,
        overrides=overrides,
        only=[service],
    )
    try:
        base_url = platform[service].base_url
        command = [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{base_url}/openapi.json",
            f"--url={base_url}",
            f"--checks={CHECKS}",
            f"--seed={SEED}",
            _budget(service),
            "--workers=1",
            "--request-timeout=10",
            "--suppress-health-check=all",
            *([] if any(o.startswith("--exclude-path-regex=") for o in part) else [f"--exclude-path-regex={PROBES}"]),
            "--header=Authorization: Bearer acme-admin-key",
            *part,
        ]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,  # schemathesis keeps a cache of crashes in its working directory
            env={**os.environ, "NO_COLOR": "1"},
            # Lower priority: the count of cases is fixed, so this costs no coverage, and the parallel suite's
            # tests that must restart a process within seconds get the CPU first.
            preexec_fn=lambda: os.nice(5),
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout=(SECONDS or 600) + 180)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    finally:
        await platform.stop()
    report = output.decode(errors="replace")
    print(report[-6000:])  # the run's summary, shown with -s or in the log of a failure
    assert process.returncode == 0, f"schemathesis found problems in {service} (seed {SEED}):\n{report[-20000:]}"
