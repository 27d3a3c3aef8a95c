"""The AR formulas, checked against examples worked by hand (insights/domain/formulas.py)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from insights.domain.formulas import (
    aging_bucket,
    average_days_delinquent,
    best_possible_dso,
    cei,
    collection_rate,
    dso_countback,
    dso_standard,
)

D = Decimal


def test_the_textbook_cei_example() -> None:
    # Beginning AR 200,000, credit sales 300,000, ending AR 250,000 of which 150,000 not yet due:
    # (200,000 + 300,000 - 250,000) / (200,000 + 300,000 - 150,000) x 100 = 250,000 / 350,000 x 100 = 71.43 %.
    value = cei(D(200_000), D(300_000), D(250_000), D(150_000))
    assert value is not None and value.quantize(D("0.01")) == D("71.43")
    # Everything collected that could be: 100 %.
    assert cei(D(100), D(50), D(30), D(30)) == D(100)


def test_countback_walks_three_months_by_hand() -> None:
    # AR 250,000 at 31 March. March's sales 100,000 are covered whole (31 days, 150,000 left), February's 90,000
    # too (28 days, 60,000 left); January's 120,000 only half: 60,000 / 120,000 x 31 = 15.5 days.
    # 31 + 28 + 15.5 = 74.5 days.
    windows = [(D(100_000), 31), (D(90_000), 28), (D(120_000), 31)]
    assert dso_countback(D(250_000), windows) == D("74.5")
    # Covered inside the first window: 40,000 / 100,000 x 31 = 12.4 days.
    assert dso_countback(D(40_000), windows) == D("12.4")
    # A month without sales is covered by any AR and adds its days.
    assert dso_countback(D(150_000), [(D(100_000), 31), (D(0), 28), (D(100_000), 31)]) == D(31 + 28 + D("15.5"))


def test_countback_edges() -> None:
    assert dso_countback(D(0), [(D(100), 30)]) == D(0)
    assert dso_countback(D(-5), [(D(100), 30)]) == D(0)
    # AR beyond every window given counts as all their days.
    assert dso_countback(D(1_000), [(D(100), 30), (D(100), 31)]) == D(61)
    assert dso_countback(D(100), [(D(0), 30), (D(0), 31)]) is None


def test_standard_and_best_possible_dso_and_add() -> None:
    # AR 120,000 of which 45,000 not yet due; 90 days of sales 270,000 (3,000 a day): DSO 40, best 15, ADD 25.
    dso = dso_standard(D(120_000), D(270_000), 90)
    best = best_possible_dso(D(45_000), D(270_000), 90)
    assert (dso, best) == (D(40), D(15))
    assert average_days_delinquent(dso, best) == D(25)


@pytest.mark.parametrize("formula", [dso_standard, best_possible_dso])
def test_zero_sales_leave_dso_undefined(formula: Callable[[Decimal, Decimal, int], Decimal | None]) -> None:
    assert formula(D(500), D(0), 90) is None


def test_undefined_inputs_stay_undefined() -> None:
    assert average_days_delinquent(None, D(3)) is None
    assert cei(D(0), D(0), D(0), D(0)) is None
    assert collection_rate(D(10), D(0)) is None
    assert collection_rate(D(75), D(100)) == D("0.75")


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(-10, "current"), (0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"), (61, "61-90"),
     (90, "61-90"), (91, "91+"), (400, "91+")],
)  # fmt: skip
def test_aging_bucket_boundaries(days: int, bucket: str) -> None:
    assert aging_bucket(days) == bucket
