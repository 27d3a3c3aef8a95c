"""The worklist's order: the amount at risk weighted by age, items without an amount after, oldest first."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from workspace.domain.worklist import WorkItem, priority, ranked

TODAY = date(2026, 3, 2)


def item(key: str, amount: str | None, age: int) -> WorkItem:
    return WorkItem("task", key, "C-1", TODAY - timedelta(days=age), None if amount is None else Decimal(amount), "EUR")


def test_an_older_smaller_amount_can_outrank_a_new_larger_one() -> None:
    old_small, new_large = item("old", "1000.00", 60), item("new", "2000.00", 0)
    assert [i.key for i in ranked([new_large, old_small], TODAY)] == ["old", "new"]  # 3,000 vs 2,000 weighted
    assert [i.key for i in ranked([item("a", "1000.00", 10), item("b", "2000.00", 10)], TODAY)] == ["b", "a"]


def test_items_without_an_amount_come_after_those_with_one_oldest_first() -> None:
    order = ranked([item("none-new", None, 1), item("small", "0.01", 0), item("none-old", None, 9)], TODAY)
    assert [i.key for i in order] == ["small", "none-old", "none-new"]


def test_equal_weighted_amounts_go_to_the_older_item_and_the_future_counts_as_today() -> None:
    assert priority(item("x", "300.00", 0), TODAY) == priority(item("y", "300.00", -5), TODAY)
    assert [i.key for i in ranked([item("young", "600.00", 0), item("aged", "300.00", 30)], TODAY)] == ["aged", "young"]
