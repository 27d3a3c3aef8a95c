"""Email over SMTP end to end inside the notifier: step event -> delivery record -> a real SMTP socket."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from dunning_kit import signed_links
from dunning_kit.testing import RunningService, poll_until
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes


async def test_a_step_becomes_one_html_and_text_email_with_signed_links(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet
) -> None:
    await feed.publish(feed.customer(locale="de-DE"), feed.invoice())
    await feed.publish(feed.step(template_id="firm_reminder", tone="firm"))

    sent = await notifications.wait_for("notification.sent")
    await quiet()
    assert len(fakes.smtp.received) == 1
    mail = fakes.smtp.received[0]
    assert mail.rcpt_tos == ["ap@initech.example"]
    assert mail.subject == "Mahnung: Bitte zahlen Sie 4.820,00 € jetzt"
    assert mail.message.get_content_type() == "multipart/alternative"
    text = mail.message.get_body(("plain",)).get_content()
    html = mail.message.get_body(("html",)).get_content()
    assert "Rechnung 2026-0042" in text and "4.820,00" in text
    assert "<table" in html and "2026-0042" in html and 'lang="de"' in html
    # Opt-out: one-click List-Unsubscribe (RFC 8058) plus the link in the footer.
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/unsubscribe?token=" in mail.message["List-Unsubscribe"]
    # The promise link points at the promise-tracker's self-service page with the agreed token payload.
    promise_url = next(line.split(": ", 1)[1] for line in text.splitlines() if "promises.example" in line)
    parsed = urlparse(promise_url)
    assert parsed.path == "/self-service/promise"
    token = parse_qs(parsed.query)["token"][0]
    payload = signed_links.verify("dev-only-change-me", token, feed.clock.now())
    assert {k: payload[k] for k in ("tenant_id", "customer_id", "invoice_ids")} == {
        "tenant_id": "acme", "customer_id": "C-1", "invoice_ids": ["INV-1"],
    }  # fmt: skip
    assert sent[0].data.provider == "smtp" and sent[0].data.recipient == "a***@initech.example"
    async with notifier.client() as api:
        deliveries = (await api.get("/v1/deliveries")).json()["items"]
    assert [(d["status"], d["channel"], d["template_id"], d["locale"]) for d in deliveries] == [
        ("sent", "email", "firm_reminder", "de")
    ]


async def test_several_invoices_are_one_consolidated_email_in_us_format(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader
) -> None:
    await feed.publish(
        feed.customer(locale="en-US"),
        feed.invoice("INV-1", number="A-1", total="4820.00", currency="USD"),
        feed.invoice("INV-2", number="A-2", total="150.50", currency="USD"),
    )
    await feed.publish(feed.step(invoices=[("INV-1", "A-1", "4820.00"), ("INV-2", "A-2", "150.50")], currency="USD"))
    await notifications.wait_for("notification.sent")
    mail = await poll_until(lambda: _first(fakes), what="the email")
    text = mail.message.get_body(("plain",)).get_content()
    assert "$4,820.00" in text and "$150.50" in text and "Total due: $4,970.50" in text
    assert mail.subject == "Payment due: A-1, A-2 ($4,970.50)"


async def _first(fakes: Fakes):  # type: ignore[no-untyped-def]
    return fakes.smtp.received[0] if fakes.smtp.received else None
