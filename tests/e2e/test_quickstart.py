"""The README's quick start, run as written with bash against `make up`, shows a reminder within a minute.

Whatever the day, weekday and hour the suite runs at: the block picks a daytime zone for the customer and an
invoice due ten days before today, and `make up` seeds the every-day demo policy. Nothing here fakes time.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.make_up_process import start_make_up

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- quickstart:"
FIGURES_MARKER = "<!-- quickstart-figures:"
WORKSPACE_MARKER = "<!-- quickstart-workspace:"
REMINDER_DEADLINE_S = 60.0  # the promise to a newcomer: a reminder within one minute
RECIPIENT = "ap@initech.example"


def quickstart_block(readme: str, marker: str = MARKER) -> str:
    """The first ```sh block after the quick-start marker, verbatim."""
    after = readme[readme.index(marker) :]
    match = re.search(r"```sh\n(.*?)\n```", after, re.DOTALL)
    assert match is not None, "no ```sh block after the quick-start marker"
    return match.group(1)


def sent_reminders(outbox_html: str) -> list[str]:
    """Rows of the dev outbox page that are an email to the quick start's customer, handed to SMTP."""
    rows = outbox_html.split("<tr>")[1:]
    return [
        row
        for row in rows
        if f"<td>{RECIPIENT}</td>" in row and "<td>email</td>" in row and re.search(r">(sent|delivered)\b", row)
    ]


def test_the_readme_quick_start_shows_a_reminder_in_the_dev_outbox_within_a_minute(tmp_path: Path) -> None:
    block = quickstart_block(README.read_text())
    stack = start_make_up(tmp_path)
    try:
        assert stack.ready, "".join(stack.output)
        notifier = f"http://127.0.0.1:{stack.ports['DEV_HTTP_BASE_PORT'] + 2}"
        started = time.monotonic()
        # As a user runs it: bash, their environment, the ports they gave `make up`.
        run = subprocess.run(
            ["bash", "-c", block], env=stack.env, capture_output=True, text=True, timeout=REMINDER_DEADLINE_S
        )
        shown = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
        assert run.returncode == 0, shown
        assert '"kind": "scheduled"' in run.stdout, f"the timeline never arrived\n{shown}"
        assert f"{notifier}/dev/outbox" in run.stdout, shown

        page = ""
        while time.monotonic() - started < REMINDER_DEADLINE_S:
            with urllib.request.urlopen(f"{notifier}/dev/outbox", timeout=10) as resp:
                page = resp.read().decode()
            if sent_reminders(page):
                break
            time.sleep(0.5)  # polling a real stack on a deadline, not waiting for a guessed duration
        elapsed = time.monotonic() - started
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((tmp_path / "logs").glob("*.log")))
        assert sent_reminders(page), f"no reminder in the dev outbox after {elapsed:.0f}s\n{shown}\n{page}\n{logs}"
        figures_shown(stack.env)
        case_shown(stack.env)
    finally:
        stack.stop()


def figures_shown(env: dict[str, str]) -> None:
    """The second block, run as written after the reminder: the demo tenant's aging has the invoice's 4,820.00
    EUR in bucket 1-30, and its DSO row is there."""
    block = quickstart_block(README.read_text(), FIGURES_MARKER)
    run = subprocess.run(["bash", "-c", block], env=env, capture_output=True, text=True, timeout=60)
    shown = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    assert run.returncode == 0, shown
    aging = [line.split(",") for line in run.stdout.splitlines() if "4820" in line]
    assert aging and "1-30" in aging[0] and "EUR" in aging[0], shown
    assert "dso_standard" in run.stdout and "90.00" in run.stdout, shown


def case_shown(env: dict[str, str]) -> None:
    """The third block, run as written: signed in as colin through the development identity provider's form, the
    case of C-1 shows the customer, the invoice and the sent reminder, and the collector's forms."""
    block = quickstart_block(README.read_text(), WORKSPACE_MARKER)
    run = subprocess.run(["bash", "-c", block], env=env, capture_output=True, text=True, timeout=60)
    shown = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    assert run.returncode == 0, shown
    for expected in ("Initech", "2026-0001", "4,820.00", "sent", "Log the call"):
        assert expected in run.stdout, f"{expected!r} not on the case page\n{shown}"
