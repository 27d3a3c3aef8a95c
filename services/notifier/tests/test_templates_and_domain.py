"""Pure domain tests: the sandbox, locale formatting, the shipped templates, retry backoff, recipients,
the last look, opt-out words and template choice. No database, no broker."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from notifier.adapters.signatures import twilio_signature
from notifier.domain.context import Branding, Links, build_context
from notifier.domain.default_templates import LANGUAGES, PARTIALS, SHIPPED, TONES
from notifier.domain.last_look import ProjectedInvoice, last_look
from notifier.domain.messages import PermanentSendError, TransientSendError
from notifier.domain.opt_out import is_stop_request
from notifier.domain.recipients import InvalidAddress, normalize_phone
from notifier.domain.rendering import Renderer, TemplateRenderError, TemplateSource, money
from notifier.domain.retry import GiveUp, RetryAt, RetryPolicy, after_failure
from notifier.domain.template_choice import choose_template

RENDERER = Renderer(PARTIALS)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STEP_INVOICES = [
    {"invoice_id": "I-1", "number": "2026-0042", "total": "4820.00", "balance": "4820.00", "due_date": "2026-02-20", "days_overdue": 10},
    {"invoice_id": "I-2", "number": "2026-0057", "total": "1250.00", "balance": "1250.00", "due_date": "2026-02-25", "days_overdue": 5},
]  # fmt: skip


def context(
    locale: str = "en", currency: str = "EUR", invoices: list[dict[str, object]] | None = None
) -> dict[str, object]:
    look = last_look(invoices or STEP_INVOICES, {}, currency)
    step = {
        "step_name": "firm_reminder_1",
        "tone": "firm",
        "fees": [{"description": "Reminder fee", "amount": {"amount": "5.00", "currency": currency}}],
    }
    return build_context(
        customer_id="C-1", customer_name="Initech GmbH", contact_name="Peter", locale=locale, currency=currency,
        look=look, step=step, branding=Branding(company_name="ACME"),
        links=Links("https://pay.example/p?token=x", "https://promise.example/s?token=y", "https://u.example/u"),
        today=NOW.date(),
    )  # fmt: skip


# ---------------------------------------------------------------- sandbox (template injection)

INJECTIONS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].system('id') }}",
    "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ request.application.__globals__ }}",
    "{{ customer.__class__ }}",
    "{{ 'x' * 100000000 }}",
    "{{ 9 ** 999999 }}",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_template_injection_cannot_reach_python_internals(payload: str) -> None:
    template = TemplateSource("evil", "en", "Hi", payload)
    with pytest.raises(TemplateRenderError) as err:
        RENDERER.render(template, context())
    assert err.value.part == "text"


def test_an_undefined_variable_is_an_error_not_a_blank() -> None:
    with pytest.raises(TemplateRenderError, match="'totl' is undefined"):
        RENDERER.render(TemplateSource("t", "en", "{{ totl }}", "x"), context())


def test_html_parts_escape_customer_data() -> None:
    ctx = context()
    ctx["customer"] = {"id": "C-1", "name": "<script>alert(1)</script>"}
    out = RENDERER.render(TemplateSource("t", "en", "s", "{{ customer.name }}", html="<p>{{ customer.name }}</p>"), ctx)
    assert out.html == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>" and out.text == "<script>alert(1)</script>"


# ---------------------------------------------------------------- locale formatting, shipped templates


def test_amounts_follow_the_customers_locale() -> None:
    assert money(Decimal("4820.00"), "USD", "en-US") == "$4,820.00"
    assert money(Decimal("4820.00"), "EUR", "de-DE") == "4.820,00\xa0€"
    assert money(Decimal("4820"), "JPY", "ja") == "￥4,820"


@pytest.mark.parametrize(("template_id", "language"), sorted(SHIPPED))
def test_every_shipped_template_renders_every_part_with_the_consolidated_table_and_both_links(
    template_id: str, language: str
) -> None:
    out = RENDERER.render(SHIPPED[(template_id, language)], context(language))
    amount = "4.820,00" if language == "de" else "4,820.00"
    for part in (out.text, out.html):
        assert part is not None and "2026-0042" in part and "2026-0057" in part and amount in part
        assert "https://pay.example/p?token=x" in part and "https://promise.example/s?token=y" in part
        assert "Reminder fee" in part and ("6.075,00" in part if language == "de" else "6,075.00" in part)
    assert out.subject and "\n" not in out.subject
    assert "STOP" in (out.sms or "") and "https://pay.example/p?token=x" in (out.sms or "")
    assert "Initech GmbH" in (out.voice or "")


def test_defaults_cover_every_step_of_the_default_policy_in_english_and_german() -> None:
    policy_template_ids = {"pre_due_reminder", "due_date_notice", "gentle_follow_up", "firm_reminder", "escalation_sms",
                           "escalation_call", "final_notice", "collections_hand_off"}  # fmt: skip
    for template_id in policy_template_ids:
        for language in LANGUAGES:
            assert (template_id, language) in SHIPPED
    assert {tone for tone, _ in TONES.values()} >= {"friendly", "neutral", "gentle", "firm", "urgent", "final"}


def test_template_choice_prefers_the_tenants_own_and_falls_back_by_language() -> None:
    own = TemplateSource("firm_reminder", "de-AT", "Servus", "x", origin="tenant")
    chosen = choose_template({("firm_reminder", "de-AT"): own}, "firm_reminder", "de-AT")
    assert chosen is own
    assert choose_template({}, "firm_reminder", "de-CH").locale == "de"  # type: ignore[union-attr]
    assert choose_template({}, "firm_reminder", "fr").locale == "en"  # type: ignore[union-attr]
    assert choose_template({}, "firm", "en").template_id == "firm_reminder"  # type: ignore[union-attr]
    assert choose_template({}, "nope", "en") is None


# ---------------------------------------------------------------- last look


def test_last_look_drops_settled_invoices_and_uses_current_balances() -> None:
    projection = {"I-1": ProjectedInvoice(400000, "open"), "I-2": ProjectedInvoice(0, "paid")}
    look = last_look(STEP_INVOICES, projection, "EUR")
    assert [(i.invoice_id, i.balance) for i in look.open_invoices] == [("I-1", Decimal("4000.00"))]
    assert look.settled_ids == ["I-2"] and look.total == Decimal("4000.00")
    voided = last_look(
        STEP_INVOICES, {"I-1": ProjectedInvoice(482000, "void"), "I-2": ProjectedInvoice(0, "paid")}, "EUR"
    )
    assert voided.all_settled and voided.skip_reason() == "every invoice of the step is already settled (I-1, I-2)"


# ---------------------------------------------------------------- retries


def test_backoff_grows_exponentially_with_jitter_and_is_bounded() -> None:
    policy = RetryPolicy(max_attempts=6, base_seconds=60, max_seconds=600)
    rng = random.Random(7)
    for attempt, (low, high) in enumerate([(30, 60), (60, 120), (120, 240), (240, 480), (300, 600)], start=1):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert low <= min(delays) and max(delays) <= high
        assert max(delays) - min(delays) > (high - low) / 2, "jitter spreads the retries"


def test_transient_retries_until_the_bound_and_permanent_fails_at_once() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=60, max_seconds=600)
    rng = random.Random(1)
    retry = after_failure(policy, 1, TransientSendError("503", retry_after=1000), NOW, rng)
    assert isinstance(retry, RetryAt) and retry.at >= NOW + timedelta(seconds=1000)
    give_up = after_failure(policy, 3, TransientSendError("503"), NOW, rng)
    assert isinstance(give_up, GiveUp) and give_up.permanent is False and "after 3 attempts" in give_up.reason
    assert after_failure(policy, 1, PermanentSendError("21211"), NOW, rng) == GiveUp("21211", permanent=True)


# ---------------------------------------------------------------- recipients, opt-out words, signatures


def test_phone_numbers_are_normalised_to_e164_or_refused() -> None:
    assert normalize_phone("0151 23456789", "DE") == "+4915123456789"
    assert normalize_phone("(415) 555-0100", "US") == "+14155550100"
    with pytest.raises(InvalidAddress):
        normalize_phone("12345", "US")


@pytest.mark.parametrize(("body", "stop"), [
    ("STOP", True), ("stop.", True), ("Unsubscribe", True), ("opt out", True), ("Stopp", True), ("STOP ALL", True),
    ("Please stop texting me", False), ("I paid yesterday", False), ("", False),
])  # fmt: skip
def test_stop_words(body: str, stop: bool) -> None:
    assert is_stop_request(body) is stop


def test_twilio_signature_matches_twilios_documented_example() -> None:
    # The example from Twilio's security documentation (auth token 12345).
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_a_date_is_formatted_for_the_locale() -> None:
    from notifier.domain.rendering import day

    assert day(date(2026, 3, 12), "de-DE") == "12.03.2026"
    assert day(date(2026, 3, 12), "en-US") == "Mar 12, 2026"


@pytest.mark.parametrize(("currency", "locale"), [
    ("USD", "en-US"), ("EUR", "de-DE"), ("CHF", "de-CH"), ("EUR", "fr-FR"), ("EUR", "nl"), ("JPY", "ja"),
    ("INR", "hi-IN"), ("KWD", "ar"), ("SEK", "sv"), ("GBP", "en-GB"),
])  # fmt: skip
def test_the_money_shortcut_formats_exactly_as_babel(currency: str, locale: str) -> None:
    from babel.numbers import format_currency

    from notifier.domain.rendering import babel_locale

    rng = random.Random(f"{currency}{locale}")
    for _ in range(500):
        amount = Decimal(rng.randint(-(10**9), 10**9)).scaleb(-rng.choice([0, 1, 2, 3]))
        assert money(amount, currency, locale) == format_currency(amount, currency, locale=babel_locale(locale))
