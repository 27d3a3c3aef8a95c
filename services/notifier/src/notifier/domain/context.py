"""The variables a template sees: one dict built from the step, the last look, branding and links (pure).

Amounts and dates arrive pre-formatted for the customer's locale, so a template author never formats
money by hand (and a `$4,820.00` / `4.820,00 €` mix-up cannot happen in a template).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from functools import cached_property
from typing import Any

from notifier.domain.last_look import LastLook
from notifier.domain.rendering import day, language_of, money


@dataclass(frozen=True)
class Branding:
    company_name: str = "Accounts Receivable"
    sender_name: str = "Accounts Receivable"
    primary_color: str = "#1F4E79"
    accent_color: str = "#EEF3F8"
    logo_url: str | None = None
    address_lines: tuple[str, ...] = ()
    phone: str | None = None
    email: str | None = None
    footer: str = ""

    @cached_property
    def as_context(self) -> dict[str, Any]:
        return {**asdict(self), "address_lines": list(self.address_lines)}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> Branding:
        cfg = dict(cfg or {})
        known = {k: v for k, v in cfg.items() if k in cls.__dataclass_fields__ and v is not None}
        if "address_lines" in known:
            known["address_lines"] = tuple(known["address_lines"])
        return cls(**known)


@dataclass(frozen=True)
class Links:
    pay_url: str
    promise_url: str
    unsubscribe_url: str | None = None


def build_context(
    *,
    customer_id: str,
    customer_name: str,
    contact_name: str | None,
    locale: str,
    currency: str,
    look: LastLook,
    step: Mapping[str, Any],
    branding: Branding,
    links: Links,
    today: date,
) -> dict[str, Any]:
    invoices = [
        {
            "number": inv.number,
            "total": money(inv.total, currency, locale),
            "balance": money(inv.balance, currency, locale),
            "due_date": day(inv.due_date, locale),
            "days_overdue": inv.days_overdue,
            "partially_paid": inv.balance < inv.total,
        }
        for inv in look.open_invoices
    ]
    fees = []
    fees_total = Decimal(0)
    for fee in step.get("fees") or []:
        amount = Decimal(str(fee["amount"]["amount"]))
        fees_total += amount
        fees.append({"description": fee.get("description", ""), "amount": money(amount, currency, locale)})
    earliest_due = min((inv.due_date for inv in look.open_invoices if inv.due_date), default=None)
    return {
        "customer": {"id": customer_id, "name": customer_name},
        "contact_name": contact_name or customer_name,
        "company": branding.as_context,
        "invoices": invoices,
        "invoice_count": len(invoices),
        "invoice_numbers": ", ".join(str(i["number"]) for i in invoices),
        "total": money(look.total, currency, locale),
        "fees": fees,
        "fees_total": money(fees_total, currency, locale) if fees else None,
        "total_with_fees": money(look.total + fees_total, currency, locale),
        "currency": currency,
        "due_date": day(earliest_due, locale),
        "max_days_overdue": max((i.days_overdue for i in look.open_invoices), default=0),
        "step": {
            "name": step.get("step_name", ""),
            "tone": step.get("tone", ""),
            "index": step.get("step_index", 0),
            "late": bool(step.get("late", False)),
        },
        "pay_url": links.pay_url,
        "promise_url": links.promise_url,
        "unsubscribe_url": links.unsubscribe_url,
        "today": day(today, locale),
        "locale": locale,
        "language": language_of(locale),
    }
