"""Issue 11, point 5: a crash writes off only what was in flight. 1,000 reminders fall due at once and the
notifier is killed (SIGKILL) three times while it sends them: only the provider calls open at each kill
(at most the SMTP pool) may end `unknown`; every other delivery is sent after the restart, none twice, and
the restarted notifier is ready within seconds."""

from __future__ import annotations

import signal
import time
from collections import Counter
from email.utils import parseaddr
from pathlib import Path

import pytest

from dunning_kit.testing import poll_until
from tests.faults.test_faults import seed
from tests.process_platform import ProcessPlatform

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

N = 1_000
POOL = 8  # SMTP_POOL_SIZE's default: the send gate's slots
KILLS = 3
READY_WITHIN_S = 5.0


@pytest.fixture
def platform_env() -> dict[str, dict[str, str]]:
    return {
        "notifier": {
            # Default batch and pool. The SMTP rate limit stretches the 1,000 sends over ~10 s so that each
            # kill lands mid-send; the lease and the stuck sweep are short so the test does not wait minutes.
            "SMTP_POOL_SIZE": str(POOL),
            "RATE_LIMIT_SMTP_PER_S": "100",
            "DISPATCH_CLAIM_LEASE_SECONDS": "3",
            "SENDING_STUCK_AFTER_SECONDS": "4",
        }
    }


def _received(maildir: Path) -> int:
    return sum(1 for _ in maildir.glob("*.eml"))


async def test_sigkill_three_times_mid_send_writes_off_only_the_calls_in_flight(
    process_platform: ProcessPlatform,
) -> None:
    pp = process_platform
    maildir = pp.run_dir / "mail"
    # Through the API, not a CSV import: an import reports a sync, and a week later the tenant's ledger would
    # count as stale (no steps at all).
    await seed(pp, range(N))
    await pp.quiet(timeout=120)
    pp.advance(days=7, hours=2)  # Monday 9 March, 12:00 in Berlin: 1,000 pre-due reminders are due at once

    ready_s: list[float] = []
    for kill in range(KILLS):
        # Kill when this incarnation has sent a good part of what is left (a kill mid-send, never between).
        floor = _received(maildir) + 120

        async def sending(floor: int = floor) -> bool:
            return _received(maildir) >= floor

        await poll_until(sending, timeout=120, interval=0.02, what=f"sends to go on before kill {kill + 1}")
        assert pp.stack.stop_service("notifier", signal.SIGKILL) == -signal.SIGKILL
        started = time.monotonic()
        pp.stack.start_service("notifier")
        await poll_until(lambda: _ready(pp), timeout=60, interval=0.05, what="the restarted notifier to be ready")
        ready_s.append(time.monotonic() - started)
    assert _received(maildir) < N, "the last kill came after every send: it proved nothing"

    async def settled() -> bool:
        open_rows = pp.sql("SELECT count(*) FROM notifier.deliveries WHERE status IN ('pending', 'claimed', 'sending')")
        return int(open_rows[0][0]) == 0 and int(pp.sql("SELECT count(*) FROM notifier.deliveries")[0][0]) == N

    await poll_until(settled, timeout=180, interval=0.2, what="every delivery to reach a final status")
    await pp.quiet(timeout=120)

    mails = pp.mails()
    message_ids = Counter(str(m["Message-ID"]) for m in mails)
    assert [k for k, c in message_ids.items() if c > 1] == [], "no reminder went out twice"
    received = {parseaddr(str(m["To"]))[1] for m in mails}
    statuses = {r[0]: r[1] for r in pp.sql("SELECT recipient, status FROM notifier.deliveries")}
    missing = {address: status for address, status in statuses.items() if address not in received}
    reported = {
        r[0]
        for r in pp.sql(
            "SELECT convert_from(payload, 'UTF8')::jsonb #>> '{delivery_id}' FROM notifier.outbox "
            "WHERE event_type = 'notification.failed'"
        )
    }
    unknown_ids = {r[0] for r in pp.sql("SELECT id FROM notifier.deliveries WHERE status = 'unknown'")}
    print(
        f"\nreceived {len(received)} of {N}, missing {len(missing)} (unknown {len(unknown_ids)}), "
        f"duplicates {sum(c - 1 for c in message_ids.values())}, ready after restart "
        + ", ".join(f"{s:.1f}s" for s in ready_s)
    )
    assert len(received) >= N - KILLS * POOL, f"only the calls open at each kill may be lost: {len(received)}"
    assert set(missing.values()) <= {"unknown"}, f"a delivery neither sent nor reported unknown: {missing}"
    assert unknown_ids <= reported, "every unknown outcome is reported with notification.failed"
    assert max(ready_s) < READY_WITHIN_S, f"ready after a SIGKILL restart in {ready_s}"


async def _ready(pp: ProcessPlatform) -> bool:
    return await pp.ready("notifier") == 200
