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


# ---------------------------------------------------------------- responses


class PromiseOut(BaseModel):
    id: str
    customer_id: str
    invoice_ids: list[str]
    amount: str
    currency: str
    received: str = Field(description="Paid towards the promise so far")
    shortfall: str = Field(description="Missing at the deadline (broken or partially kept promises)")
    promised_date: str
    deadline: str = Field(description="The end of the promised day in the customer's time zone, plus grace")
    recorded_by: str
    note: str | None
    status: str = Field(description="active, kept, partially_kept, broken or cancelled")
    plan_id: str | None
    instalment_index: int | None
    created_at: str
    resolved_at: str | None
    reason: str | None


class PlanOut(BaseModel):
    id: str
    customer_id: str
    invoice_ids: list[str]
    currency: str
    total: str
    instalment_count: int
    interval: str
    recorded_by: str
    note: str | None
    on_missed: str = Field(description="What a missed instalment does: cancel the plan, or count a strike")
    max_strikes: int
    strikes: int
    status: str = Field(description="active, completed, defaulted or cancelled")
    reason: str | None
    created_at: str
    resolved_at: str | None
    instalments: list[PromiseOut]


class PromiseRecordOut(BaseModel):
    customer_id: str
    time_zone: str
    broken_promise_count: int
    kept_promise_count: int
    active_promises: int


class PromiseRulesOut(BaseModel):
    max_horizon_days: int
    grace_days: int
    plan_on_missed: str
    plan_max_strikes: int
    plan_max_instalments: int
