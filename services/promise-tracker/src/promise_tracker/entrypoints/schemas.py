"""Request bodies of the promise-tracker API v1 (responses are the views' dicts)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dunning_events.events import RecordedBy
from dunning_events.money import ISO_CURRENCIES, AmountStr, minor_units


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _currency(value: str) -> str:
    code = value.upper()
    if code not in ISO_CURRENCIES:
        raise ValueError(f"unknown currency {value!r} (expected an ISO 4217 code)")
    return code


def _no_float(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("money must be a decimal string, never a float")
    return value


def _fits_currency(amount: Decimal | None, info: ValidationInfo) -> Decimal | None:
    """Runs after `currency` (declared first); an unknown currency already failed on its own field."""
    currency = info.data.get("currency")
    if amount is not None and currency and amount != amount.quantize(Decimal(1).scaleb(-minor_units(currency))):
        raise ValueError(f"more decimals than {currency} allows ({minor_units(currency)})")
    return amount


class PromiseIn(_In):
    customer_id: str = Field(min_length=1, max_length=200)
    invoice_ids: list[str] = Field(min_length=1, max_length=200, description="Invoices the promise covers")
    currency: str = Field(description="ISO 4217; must match the invoices")
    amount: AmountStr = Field(description="Promised amount, a decimal string in the invoices' currency")
    promised_date: date = Field(description="The day the customer promises to pay by, in their time zone")
    recorded_by: RecordedBy = Field(description="collector, customer (self-service) or inbound_reply")
    note: str | None = Field(None, max_length=2000)

    _cur = field_validator("currency")(_currency)
    _amount = field_validator("amount", mode="before")(_no_float)
    _amount_fits = field_validator("amount")(_fits_currency)


class PlanIn(_In):
    customer_id: str = Field(min_length=1, max_length=200)
    invoice_ids: list[str] = Field(min_length=1, max_length=200)
    currency: str
    total: AmountStr | None = Field(None, description="Amount to split; default the invoices' open balance")
    instalment_count: int = Field(ge=1, le=120)
    first_due_date: date = Field(description="Due day of the first instalment, in the customer's time zone")
    interval: Literal["weekly", "fortnightly", "monthly"] = "monthly"
    recorded_by: RecordedBy
    note: str | None = Field(None, max_length=2000)

    _cur = field_validator("currency")(_currency)
    _total = field_validator("total", mode="before")(_no_float)
    _total_fits = field_validator("total")(_fits_currency)


class CancelIn(_In):
    reason: str | None = Field(None, max_length=500)


class PromiseRulesIn(_In):
    max_horizon_days: int = Field(ge=0, le=3650)
    grace_days: int = Field(ge=0, le=90)
    plan_on_missed: Literal["cancel", "strike"]
    plan_max_strikes: int = Field(ge=0, le=100)
    plan_max_instalments: int = Field(ge=1, le=120)
