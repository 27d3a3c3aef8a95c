"""Development page: every message the notifier sent, newest first (only when DEV_MODE is on).

Two times per message, labelled: when it was sent by the notifier's clock (`sent_at`, the injected clock -
simulated time when a simulation or CLOCK_FILE drives it, so a 120-day lifecycle reads as 120 days), and when
its record was written by the wall clock (`created_at`, the database's now()).
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse

from dunning_kit.clock import SystemClock
from notifier.entrypoints.deps import Objects, Runtime
from notifier.service_layer import queries

router = APIRouter(tags=["development"])

_STATUS_COLOURS = {
    "sent": "#2e7d32",
    "delivered": "#1b5e20",
    "failed": "#c62828",
    "bounced": "#c62828",
    "skipped": "#757575",
    "pending": "#f9a825",
    "sending": "#f9a825",
    "unknown": "#6a1b9a",
    "claimed": "#f9a825",
    "held": "#ef6c00",
}


def _time(instant: datetime | None, what: str) -> str:
    if instant is None:
        return "<td>-</td>"
    return (
        f'<td><time datetime="{escape(instant.isoformat())}" title="{escape(what)}">'
        f"{escape(instant.strftime('%Y-%m-%d %H:%M:%S'))} UTC</time></td>"
    )


@router.get("/dev/outbox", response_class=HTMLResponse, include_in_schema=False)
async def outbox_page(runtime: Runtime, notifier: Objects, limit: int = 200) -> HTMLResponse:
    # Lists every tenant's messages with no key: only ever on a developer's machine.
    if not notifier.settings.dev_mode:
        raise HTTPException(404, detail="not found")
    async with runtime.sessions() as session:
        rows = await queries.recent_messages(session, min(limit, 1000))
    if isinstance(notifier.clock, SystemClock):
        clock_note = "the system clock"
    else:
        clock_note = f"a simulated clock, now at {notifier.clock.now().strftime('%Y-%m-%d %H:%M:%S')} UTC"
    legend = (
        f"<p id='clock'><b>Sent</b>: when the message went to the provider, by the notifier's clock ({escape(clock_note)})."
        " <b>Recorded</b>: when the delivery record was written, by the wall clock.</p>"
    )
    body = "".join(
        "<tr>"
        f"{_time(r.sent_at, 'notifier clock')}{_time(r.created_at, 'wall clock')}<td>{escape(r.tenant_id)}</td>"
        f"<td>{escape(r.channel)}</td><td>{escape(r.provider or '')}</td><td>{escape(r.recipient or '')}</td>"
        f"<td><details><summary>{escape(r.subject or '(no subject)')}</summary><pre>{escape(r.body_text or '')}</pre></details></td>"
        f"<td style='color:{_STATUS_COLOURS.get(r.status, '#000')}'>{escape(r.status)}"
        f"{'<br><small>' + escape(r.error) + '</small>' if r.error else ''}</td>"
        "</tr>"
        for r in rows
    )
    return HTMLResponse(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">'
        "<title>notifier outbox (dev)</title><style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;width:100%}"
        "td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}pre{white-space:pre-wrap}</style>"
        f"</head><body><h1>Messages sent ({len(rows)})</h1>{legend}<table><thead><tr><th>Sent (notifier clock)</th>"
        "<th>Recorded (wall clock)</th><th>Tenant</th><th>Channel</th>"
        f"<th>Provider</th><th>Recipient</th><th>Subject / body</th><th>Status</th></tr></thead><tbody>{body}</tbody></table>"
        "</body></html>"
    )
