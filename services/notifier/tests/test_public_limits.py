"""What the public can send the notifier (issue 12, point 6): a replayed SendGrid event post is refused by its
signed timestamp, and provider callbacks and customer pages are rate-limited per client (429, Retry-After)."""

from __future__ import annotations

import time

from .conftest import Fakes, StartNotifier


async def test_a_sendgrid_event_post_signed_long_ago_is_refused_as_a_replay(
    start_notifier: StartNotifier, fakes: Fakes
) -> None:
    notifier = await start_notifier()
    url = f"{notifier.base_url}/callbacks/sendgrid/events"
    events = [{"event": "processed", "email": "ap@initech.example", "timestamp": int(time.time())}]
    replayed = await fakes.sendgrid.post_events(url, events, signed_at=time.time() - 3600)
    assert replayed.status_code == 401, "a genuine signature from an hour ago is a replay"
    ahead = await fakes.sendgrid.post_events(url, events, signed_at=time.time() + 3600)
    assert ahead.status_code == 401
    fresh = await fakes.sendgrid.post_events(url, events, signed_at=time.time() - 60)
    assert fresh.status_code == 200, "within the tolerance (clocks differ a little)"


async def test_provider_callbacks_and_customer_pages_get_429_past_a_clients_rate(
    start_notifier: StartNotifier,
) -> None:
    notifier = await start_notifier(rate_limit_webhooks_per_minute=3, rate_limit_pages_per_minute=2)
    async with notifier.client(None) as http:
        callbacks = [
            (await http.post("/callbacks/twilio/status", data={"MessageSid": "SM1"})).status_code for _ in range(4)
        ]
        assert callbacks == [401, 401, 401, 429], callbacks
        pages = [(await http.get("/pay", params={"token": "x"})).status_code for _ in range(2)]
        assert 429 not in pages, "pages and callbacks are counted apart"
        limited = await http.get("/unsubscribe", params={"token": "x"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/v1/deliveries", headers={"Authorization": "Bearer acme-api-key"})).status_code == 200
