"""The pure rules: deadlines in the customer's zone, what counts toward a promise, verdicts, plan splits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promise_tracker.domain.plans import (
    add_months,
    instalment_dates,
    on_missed_instalment,
    split_balance,
    spread_over_instalments,
)
from promise_tracker.domain.promises import check_at_for, counts_toward, deadline_for, judge_at_deadline


def test_the_deadline_is_the_last_second_of_the_promised_day_in_the_customers_zone() -> None:
    assert deadline_for(date(2026, 3, 6), "UTC", 0) == datetime(2026, 3, 6, 23, 59, 59, tzinfo=UTC)
    assert deadline_for(date(2026, 3, 6), "Asia/Tokyo", 0) == datetime(2026, 3, 6, 14, 59, 59, tzinfo=UTC)
    assert deadline_for(date(2026, 3, 6), "America/Los_Angeles", 2) == datetime(2026, 3, 9, 6, 59, 59, tzinfo=UTC)


def test_the_deadline_follows_daylight_saving_changes() -> None:
    # Berlin moves to summer time on 29 March 2026: the day before ends at 22:59:59 UTC, the day after at 21:59:59.
    assert deadline_for(date(2026, 3, 28), "Europe/Berlin", 0) == datetime(2026, 3, 28, 22, 59, 59, tzinfo=UTC)
    assert deadline_for(date(2026, 3, 29), "Europe/Berlin", 0) == datetime(2026, 3, 29, 21, 59, 59, tzinfo=UTC)


def test_an_unknown_time_zone_falls_back_to_utc() -> None:
    assert deadline_for(date(2026, 3, 6), "Mars/Olympus", 0) == datetime(2026, 3, 6, 23, 59, 59, tzinfo=UTC)


def test_the_check_runs_after_the_deadlines_last_second_plus_the_settle_window() -> None:
    deadline = datetime(2026, 3, 6, 23, 59, 59, tzinfo=UTC)
    assert check_at_for(deadline, 0) == datetime(2026, 3, 7, tzinfo=UTC)
    assert check_at_for(deadline, 120) == datetime(2026, 3, 7, 0, 2, tzinfo=UTC)


CREATED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 3, 6, 23, 59, 59, tzinfo=UTC)


def counts(occurred_at: datetime, business_date: date | None = None) -> bool:
    return counts_toward(
        occurred_at=occurred_at, business_date=business_date or occurred_at.date(), promise_created_at=CREATED,
        deadline=DEADLINE, time_zone="UTC",
    )  # fmt: skip


def test_money_counts_from_the_promise_to_the_deadlines_last_second() -> None:
    assert not counts(CREATED - timedelta(seconds=1))
    assert counts(CREATED)
    assert counts(DEADLINE - timedelta(seconds=1))
    assert counts(DEADLINE + timedelta(milliseconds=999))
    assert not counts(DEADLINE + timedelta(seconds=1))


def test_a_payment_the_ledger_dates_in_time_counts_even_when_it_arrives_late() -> None:
    late = DEADLINE + timedelta(hours=5)
    assert counts(late, business_date=date(2026, 3, 6))
    assert not counts(late, business_date=date(2026, 3, 7))


def test_a_payment_the_ledger_dates_before_the_promise_does_not_count() -> None:
    assert not counts(CREATED + timedelta(hours=1), business_date=date(2026, 3, 1))


def test_verdicts() -> None:
    assert judge_at_deadline(1000, 1000, False).verdict == "kept"
    assert judge_at_deadline(1000, 1200, False).verdict == "kept"
    partly = judge_at_deadline(1000, 400, False)
    assert (partly.verdict, partly.shortfall_minor) == ("partially_kept", 600)
    broken = judge_at_deadline(1000, 0, False)
    assert (broken.verdict, broken.shortfall_minor) == ("broken", 1000)
    assert judge_at_deadline(1000, 0, True).verdict == "kept", "nothing left to pay cannot be a broken promise"


def test_the_remainder_goes_on_the_first_instalment() -> None:
    assert split_balance(100_00, 3) == [33_34, 33_33, 33_33]
    assert split_balance(10, 10) == [1] * 10
    with pytest.raises(ValueError):
        split_balance(2, 3)


@given(total=st.integers(min_value=1, max_value=10**12), count=st.integers(min_value=1, max_value=120))
def test_instalments_always_sum_exactly_to_the_balance(total: int, count: int) -> None:
    if total < count:
        return
    parts = split_balance(total, count)
    assert sum(parts) == total and len(parts) == count
    assert all(p == parts[1] for p in parts[1:]) and parts[0] >= parts[-1] > 0


def test_instalment_dates() -> None:
    assert instalment_dates(date(2026, 1, 31), 3, "monthly") == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
    ]
    assert instalment_dates(date(2026, 3, 2), 3, "weekly") == [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16)]
    assert instalment_dates(date(2026, 3, 2), 2, "fortnightly") == [date(2026, 3, 2), date(2026, 3, 16)]
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)


def test_a_missed_instalment_defaults_or_counts_a_strike() -> None:
    assert on_missed_instalment("cancel", 0, 5).defaulted
    assert not on_missed_instalment("strike", 0, 1).defaulted
    second = on_missed_instalment("strike", 1, 1)
    assert second.defaulted and second.strikes == 2


def test_payments_fill_the_earliest_open_instalment_first() -> None:
    assert spread_over_instalments(150, [100, 100, 100]) == [100, 50, 0]
    assert spread_over_instalments(500, [100, 0, 100]) == [100, 0, 100]
