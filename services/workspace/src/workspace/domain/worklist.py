"""What needs a person, and in which order: the worklist's items and the rule that ranks them.

The rule (`priority`): the amount at risk weighted by age, `amount × (1 + days / 30)`, so 1,000 open for 60 days
(3,000) comes before 2,000 found today (2,000); an item with no amount of its own (a bounced message, an ERP
record in quarantine) ranks after every item with one, oldest first. Amounts of different currencies are
compared as numbers (the page filters by currency when that matters); ties go to the older item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

KINDS = ("broken_promise", "dispute", "hand_off", "task", "bounced", "quarantined")
# What a person may answer when completing a hand-off to collections (policy-engine's acknowledge outcomes).
HAND_OFF_OUTCOMES = ("sent_to_agency", "kept_in_house", "written_off_recommended")
AGE_UNIT_DAYS = Decimal(30)


@dataclass(frozen=True)
class WorkItem:
    kind: str  # one of KINDS
    key: str  # the source's id (promise, invoice, task, delivery, record)
    customer_id: str | None  # the case it belongs to (None: an ERP record not yet tied to a customer)
    since: date  # when it started needing a person
    amount: Decimal | None = None  # at risk
    currency: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # what the page writes about it

    def age_days(self, today: date) -> int:
        return max(0, (today - self.since).days)


def priority(item: WorkItem, today: date) -> tuple[int, Decimal, int]:
    """The sort key (ascending = first): items with an amount first, by amount weighted by age, then by age."""
    age = item.age_days(today)
    if item.amount is None:
        return (1, Decimal(0), -age)
    return (0, -(item.amount * (1 + age / AGE_UNIT_DAYS)), -age)


def ranked(items: list[WorkItem], today: date) -> list[WorkItem]:
    return sorted(items, key=lambda i: priority(i, today))
