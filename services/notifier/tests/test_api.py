"""The notifier's HTTP API: templates (save, preview, sandbox), channel configuration, deliveries,
suppressions, tenant isolation and keys, the dev outbox page."""

from __future__ import annotations

import httpx

from dunning_kit.testing import RunningService
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes

CUSTOM = {
    "locale": "en",
    "subject": "{{ company.company_name }}: {{ invoice_count }} invoice(s), {{ total_with_fees }}",
    "text": "Hi {{ contact_name }}, please pay {{ total }}.\n{% include 'invoices.en.txt' %}\nPay: {{ pay_url }}\nPromise: {{ promise_url }}",
}


async def test_templates_are_listed_saved_previewed_and_used_for_real_sends(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader
) -> None:
    async with notifier.client() as api, notifier.client("acme-admin-key") as admin:
        listed = (await api.get("/v1/templates")).json()["items"]
        assert {("firm_reminder", "de"), ("firm_reminder", "en")} <= {(t["template_id"], t["locale"]) for t in listed}
        assert (await api.put("/v1/templates/firm_reminder", json=CUSTOM)).status_code == 403, "admin key needed"
        bad = await admin.put("/v1/templates/firm_reminder", json={**CUSTOM, "html": "<p>{% if %}</p>"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "html"
        missing = await admin.put("/v1/templates/firm_reminder", json={"locale": "en"})
        assert missing.status_code == 422 and {d["field"] for d in missing.json()["errors"]} == {"subject", "text"}
        assert (await admin.put("/v1/templates/firm_reminder", json=CUSTOM)).status_code == 200

        sample_en = (await api.post("/v1/templates/firm_reminder/preview", json={"locale": "en"})).json()
        assert sample_en["origin"] == "tenant" and sample_en["text"].startswith(
            "Hi Initech Inc., please pay $5,570.00."
        )
        sample_de = (await api.post("/v1/templates/firm_reminder/preview", json={"locale": "de"})).json()
        assert sample_de["origin"] == "shipped" and "5.570,00 €" in sample_de["subject"].replace("\xa0", " ")
        assert (await api.post("/v1/templates/nope/preview", json={})).status_code == 404

        # Unsaved edits can be previewed; an injection attempt is stopped by the sandbox with a 422.
        evil = {**CUSTOM, "text": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"}
        blocked = await api.post("/v1/templates/firm_reminder/preview", json={"template": evil})
        assert blocked.status_code == 422
        assert (
            blocked.json()["errors"][0]["field"] == "template.text"
            and "sandbox" in blocked.json()["errors"][0]["reason"]
        )

        # Real data: this customer's open invoices from the ledger projection.
        await feed.publish(feed.customer(locale="en-US"), feed.invoice(currency="USD"))
        await notifications_quiet(notifier)
        real = (await api.post("/v1/templates/firm_reminder/preview", json={"customer_id": "C-1"})).json()
        assert real["sample"] is False and "please pay $4,820.00" in real["text"]
        unknown = await api.post("/v1/templates/firm_reminder/preview", json={"customer_id": "C-404"})
        assert (unknown.status_code, unknown.json()["detail"]) == (
            404, "unknown customer C-404: the notifier has applied every event published so far and none was about it"
        )  # fmt: skip

    await feed.publish(feed.step(template_id="firm_reminder", currency="USD"))
    await notifications.wait_for("notification.sent")
    [mail] = fakes.smtp.received
    assert mail.subject == "Accounts Receivable: 1 invoice(s), $4,820.00"
    assert mail.message.get_body(("html",)) is None, "the tenant's template has no HTML part"


async def notifications_quiet(notifier: RunningService) -> None:
    from dunning_kit.testing import wait_until_quiet

    await wait_until_quiet([notifier.runtime])


async def test_channel_config_is_validated_and_never_echoes_the_webhook_secret(notifier: RunningService) -> None:
    async with notifier.client("acme-admin-key") as admin, notifier.client("globex-api-key") as globex:
        bad = await admin.put("/v1/channel-config", json={
            "branding": {"primary_color": "red;background:url(x)"}, "email": {"provider": "carrier-pigeon"},
            "webhook": {"secret": "plain"}, "sms": {"from_number": "12"},
        })  # fmt: skip
        assert bad.status_code == 422
        fields = {d["field"] for d in bad.json()["errors"]}
        assert fields == {"branding.primary_color", "email.provider", "webhook.secret", "sms.from_number"}
        ok = await admin.put("/v1/channel-config", json={
            "webhook": {"url": "https://hooks.acme.example/dunning", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
            "sms": {"from_number": "+1 415 555 0100"}, "default_locale": "de",
        })  # fmt: skip
        assert ok.status_code == 200 and ok.json()["sms"]["from_number"] == "+14155550100"
        got = (await admin.get("/v1/channel-config")).json()
        assert got["webhook"]["secret"] == "whsec_…(set)" and got["effective"]["email_provider"] == "smtp"
        assert (await globex.get("/v1/channel-config")).json()["webhook"]["url"] is None, "tenants never share config"


async def test_keys_and_tenants_are_enforced_and_the_dev_page_lists_messages(
    notifier: RunningService, feed: EventFeed, notifications: TopicReader
) -> None:
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step())
    [sent] = await notifications.wait_for("notification.sent")
    delivery_id = sent.data.delivery_id
    async with httpx.AsyncClient(base_url=notifier.base_url) as anonymous:
        for path in ("/v1/deliveries", "/v1/tasks", "/v1/templates", "/v1/suppressions", "/v1/channel-config"):
            assert (await anonymous.get(path)).status_code == 401, path
        page = await anonymous.get("/dev/outbox")
        assert page.status_code == 200 and "ap@initech.example" in page.text and "Payment due" in page.text
        notifier.runtime.objects.settings.dev_mode = False
        assert (await anonymous.get("/dev/outbox")).status_code == 404
    async with notifier.client() as acme, notifier.client("globex-api-key") as globex:
        mine = (await acme.get(f"/v1/deliveries/{delivery_id}")).json()
        assert mine["status"] == "sent" and "2026-0042" in mine["body_text"]
        assert (await globex.get(f"/v1/deliveries/{delivery_id}")).status_code == 404
        assert (await globex.get("/v1/deliveries")).json()["items"] == []
        assert (await acme.get("/v1/deliveries/not-a-uuid")).status_code == 404


async def test_manual_suppressions_are_normalised_and_can_be_lifted(
    notifier: RunningService, notifications: TopicReader
) -> None:
    async with notifier.client("acme-admin-key") as admin:
        bad = await admin.post("/v1/suppressions", json={"kind": "phone", "address": "not a number"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "address"
        made = await admin.post(
            "/v1/suppressions", json={"kind": "phone", "address": "+1 (415) 555-0100", "customer_id": "C-1"}
        )
        assert made.status_code == 201 and made.json()["address"] == "+14155550100"
        await notifications.wait_for("consent.revoked", count=2)
        assert (await admin.delete("/v1/suppressions/phone/+14155550100")).status_code == 204
        assert (await admin.delete("/v1/suppressions/phone/+14155550100")).status_code == 404
        assert (await admin.get("/v1/suppressions")).json()["items"] == []


async def test_the_dev_page_shows_the_send_time_by_the_simulated_clock_and_the_record_time_by_the_wall(
    notifier: RunningService, feed: EventFeed, notifications: TopicReader
) -> None:
    feed.clock.advance(days=40, hours=3, minutes=7)  # simulated time, far from today's date
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step())
    await notifications.wait_for("notification.sent")
    async with notifier.client() as api:
        [delivery] = (await api.get("/v1/deliveries")).json()["items"]
    async with httpx.AsyncClient(base_url=notifier.base_url) as anonymous:
        page = (await anonymous.get("/dev/outbox")).text
    simulated = feed.clock.now()
    assert delivery["sent_at"] == simulated.isoformat()
    assert "a simulated clock, now at 2026-04-11 12:07:00 UTC" in page
    row = page[page.index("<tbody>") :]
    sent_cell = f'<time datetime="{simulated.isoformat()}" title="notifier clock">2026-04-11 12:07:00 UTC</time>'
    recorded = delivery["created_at"][:10]  # the database's wall clock, not the simulation's
    assert sent_cell in row and recorded != "2026-04-11"
    assert f'<time datetime="{delivery["created_at"]}" title="wall clock">{recorded}' in row
    assert row.index("notifier clock") < row.index("wall clock"), "columns: Sent (notifier clock), Recorded (wall)"


async def test_a_channel_config_that_would_not_read_back_is_refused_and_the_stored_one_stays_readable(
    notifier: RunningService,
) -> None:
    # Found by fuzzing: 420 characters pass the 2083 limit, but percent-encoded the stored URL has 2420, and
    # a stored config that no longer validates failed every later read, preview and send with a 500.
    portal = "https://pay.example/" + "ä" * 400
    async with notifier.client("acme-admin-key") as admin:
        good = {"branding": {"company_name": "Acme", "payment_portal_url": "https://pay.example/acme"}}
        assert (await admin.put("/v1/channel-config", json=good)).status_code == 200
        r = await admin.put("/v1/channel-config", json={"branding": {"payment_portal_url": portal}})
        assert (r.status_code, r.headers["content-type"]) == (422, "application/problem+json"), r.text
        assert r.json()["errors"][0]["field"] == "branding.payment_portal_url"
        read = await admin.get("/v1/channel-config")
        assert read.status_code == 200 and read.json()["branding"]["payment_portal_url"] == "https://pay.example/acme"
        assert (await admin.post("/v1/templates/firm_reminder/preview", json={"locale": "en"})).status_code == 200
