"""Rendering a reminder: sandboxed Jinja2 (customers edit templates), amounts and dates by Babel."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_currency
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(autoescape=False)

DEFAULT_SUBJECT = "Payment reminder: {{ invoices|length }} open invoice{{ 's' if invoices|length > 1 }} ({{ total }})"
DEFAULT_BODY = """Dear {{ customer_name }},

this is a reminder that the following invoice{{ 's are' if invoices|length > 1 else ' is' }} due:
{% for inv in invoices %}
  Invoice {{ inv.number }}: {{ inv.balance }} (due {{ inv.due_date }})
{%- endfor %}

Total due: {{ total }}

Kind regards,
Accounts Receivable
"""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str


def money(amount: Decimal, currency: str, locale: str) -> str:
    return format_currency(amount, currency, locale=locale)


def render_reminder(step: dict, customer_name: str, locale: str) -> Rendered:  # type: ignore[type-arg]
    currency = step["currency"]
    invoices = [
        {
            "number": inv["number"],
            "balance": money(Decimal(inv["balance"]), currency, locale),
            "due_date": format_date(_date(inv["due_date"]), format="medium", locale=locale) if inv["due_date"] else "",
        }
        for inv in step["invoices"]
    ]
    ctx = {
        "customer_name": customer_name,
        "invoices": invoices,
        "total": money(Decimal(step["amount_due"]), currency, locale),
    }
    return Rendered(_ENV.from_string(DEFAULT_SUBJECT).render(ctx), _ENV.from_string(DEFAULT_BODY).render(ctx))


def _date(value: str):  # type: ignore[no-untyped-def]
    from datetime import date

    return date.fromisoformat(value)
