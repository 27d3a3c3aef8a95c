"""Request and response bodies of the ledger-sync API v1."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dunning_events.events import ConsentFlags, Contact
from dunning_events.money import ISO_CURRENCIES, DecimalStr, minor_units


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _currency(value: str) -> str:
    code = value.upper()
    if code not in ISO_CURRENCIES:
        raise ValueError(f"unknown currency {value!r}")
    return code


class CustomerIn(_In):
    id: str = Field(min_length=1, max_length=200, description="External id (the ERP's)")
    name: str = Field(min_length=1)
    contacts: list[Contact] = Field(default_factory=list)
    email: str | None = Field(None, description="Shorthand for one billing contact's email")
    phone: str | None = Field(None, description="Shorthand for one billing contact's phone")
    time_zone: str = "UTC"
    locale: str = "en"
    country: str | None = Field(None, min_length=2, max_length=2)
    tags: list[str] = Field(default_factory=list)
    segment: str | None = None
    consent: ConsentFlags = Field(default_factory=ConsentFlags)
    credit_hold: bool = False

    def all_contacts(self) -> list[Contact]:
        if self.contacts or not (self.email or self.phone):
            return self.contacts
        return [Contact(name=self.name, email=self.email, phone=self.phone)]


class InvoiceIn(_In):
    id: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1)
    number: str = Field(min_length=1, max_length=100)
    currency: str
    total: DecimalStr
    issue_date: date
    due_date: date | None = None
    terms: str | None = None

    _cur = field_validator("currency")(_currency)

    @field_validator("total", mode="before")
    @classmethod
    def _no_float(cls, v: object) -> object:
        if isinstance(v, float):
            raise ValueError("money must be a decimal string, not a float")
        return v

    @model_validator(mode="after")
    def _rules(self) -> InvoiceIn:
        if self.total < 0:
            raise ValueError("total: must not be negative")
        if self.total != self.total.quantize(Decimal(1).scaleb(-minor_units(self.currency))):
            raise ValueError(f"total: more decimals than {self.currency} allows")
        if self.due_date is not None and self.due_date < self.issue_date:
            raise ValueError("due_date: must not be before issue_date")
        return self


class AllocationIn(_In):
    invoice_id: str = Field(min_length=1)
    amount: DecimalStr


class PaymentIn(_In):
    id: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1)
    currency: str
    amount: DecimalStr = Field(gt=0)
    received_on: date
    allocations: list[AllocationIn] = Field(default_factory=list)

    _cur = field_validator("currency")(_currency)


class WriteResult(BaseModel):
    id: str
    created: bool
    changed: bool
    events: list[str]
