"""Local time, business days, holidays, quiet hours and fees — pure rules, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

from policy_engine.domain.calendar import ContactWindow
from policy_engine.domain.fees import InvoiceFacts, step_fees
from policy_engine.domain.policy import DEFAULT_POLICY, Step, validate_policy

DOC = DEFAULT_POLICY.doc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_a_step_day_on_a_weekend_or_holiday_rolls_to_the_next_business_day_in_the_debtors_country() -> None:
    berlin = ContactWindow.for_debtor(DOC, "Europe/Berlin", "DE")
    # Good Friday 2026-04-03 and Easter Monday 2026-04-06 are German public holidays.
    assert berlin.roll_forward(date(2026, 4, 3)) == date(2026, 4, 7)
    assert berlin.plan(date(2026, 4, 3), utc(2026, 3, 1)) == utc(2026, 4, 7, 8)  # 10:00 CEST
    # In the US, Good Friday is an ordinary business day.
    ny = ContactWindow.for_debtor(DOC, "America/New_York", "US")
    assert ny.plan(date(2026, 4, 3), utc(2026, 3, 1)) == utc(2026, 4, 3, 14)  # 10:00 EDT


def test_nothing_is_planned_outside_8_to_21_local_and_a_late_moment_moves_to_the_next_allowed_one() -> None:
    w = ContactWindow.for_debtor(DOC, "America/Los_Angeles", "US")
    # 2026-03-04 05:30 UTC is Tuesday 21:30 in Los Angeles: too late, next allowed is Wednesday 08:00 PST.
    assert not w.allowed(utc(2026, 3, 4, 5, 30))
    assert w.next_allowed(utc(2026, 3, 4, 5, 30)) == utc(2026, 3, 4, 16)
    # Friday 22:00 local: the next allowed moment is Monday 08:00.
    assert w.next_allowed(utc(2026, 3, 7, 6)) == utc(2026, 3, 9, 15)  # DST began Sunday: PDT


def test_a_stricter_policy_window_is_used_as_written() -> None:
    strict = validate_policy(
        {**DOC.model_dump(mode="json"), "quiet_hours": {"start": "09:00", "end": "17:00"}, "send_time": "09:00"}
    )
    w = ContactWindow.for_debtor(strict, "Europe/Berlin", "DE")
    assert w.start == time(9) and w.end == time(17)
    assert not w.allowed(utc(2026, 3, 3, 16, 30))  # 17:30 Berlin
    assert w.next_allowed(utc(2026, 3, 3, 16, 30)) == utc(2026, 3, 4, 8)


def test_an_unknown_time_zone_uses_the_window_common_to_every_zone_of_the_country() -> None:
    w = ContactWindow.for_debtor(DOC, "Not/AZone", "US")
    assert len(w.checked) > 5
    for probe in (utc(2026, 3, 3, 13), utc(2026, 3, 4, 4)):  # 08:00 New York; 20:00 Los Angeles
        at = w.next_allowed(probe)
        for z in w.checked:
            local = at.astimezone(z).time()
            assert time(8) <= local < time(21), (z, at)


def facts(n: int, *, in_default: bool = False, comp: bool = False, due: date = date(2026, 1, 31)) -> InvoiceFacts:
    return InvoiceFacts(f"I-{n}", f"N-{n}", Decimal("1000.00"), due, in_default, comp)


FEES_STEP = Step.model_validate({
    "name": "reminder", "offset_days": 14, "channels": ["email"], "template_id": "t", "tone": "firm",
    "fees": [
        {"kind": "fixed", "amounts": {"EUR": "2.50"}},
        {"kind": "statutory_interest", "reference_rate_percent": "2.15", "points": 8},
        {"kind": "compensation"},
    ],
})  # fmt: skip


def test_eu_statutory_interest_is_ecb_plus_8_from_the_day_after_due_and_40_eur_once_per_invoice() -> None:
    fees = step_fees(FEES_STEP, [facts(1, in_default=True), facts(2, comp=True)], "EUR", date(2026, 3, 2), "FR")
    by_kind = {(f.kind, f.invoice_id): f.amount for f in fees.lines}
    # 1000 x 10.15% x 30 days / 365 = 8.342... -> 8.34
    assert by_kind[("statutory_interest", "I-1")] == Decimal("8.34")
    assert by_kind[("compensation", "I-1")] == Decimal("40")
    assert ("compensation", "I-2") not in by_kind  # charged before: never twice
    assert by_kind[("fixed", None)] == Decimal("2.50")
    assert fees.compensation_for == ["I-1"]


def test_no_fee_on_the_reminder_that_puts_a_german_debtor_in_default() -> None:
    fees = step_fees(FEES_STEP, [facts(1, in_default=False)], "EUR", date(2026, 3, 2), "DE")
    assert fees.lines == []
    assert "BGB §286" in fees.waived[0]
    # The next reminder (the debtor is in default now) may carry them.
    later = step_fees(FEES_STEP, [facts(1, in_default=True)], "EUR", date(2026, 3, 2), "DE")
    assert {f.kind for f in later.lines} == {"fixed", "statutory_interest", "compensation"}


def test_a_fixed_fee_without_an_amount_in_the_currency_is_not_invented() -> None:
    fees = step_fees(FEES_STEP, [facts(1, in_default=True)], "USD", date(2026, 3, 2), "US")
    assert "fixed" not in {f.kind for f in fees.lines} and "compensation" not in {f.kind for f in fees.lines}
    assert any("no amount configured for USD" in w for w in fees.waived)
