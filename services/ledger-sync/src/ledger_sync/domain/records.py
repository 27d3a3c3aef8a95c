"""Canonical ledger records: what the API, the CSV import and every connector hand to the ledger.

Validation that needs no database lives here, so each door rejects the same things with the same
field names: unknown currency, negative or too-precise amounts, due date before issue date, and anything
larger than the size limits below.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dunning_events.events import ConsentFlags, Contact
from dunning_events.money import ISO_CURRENCIES, AmountStr, minor_units, to_minor
from ledger_sync.domain.ledger import InvoiceTerms

_LOCALE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")

# Size limits (README "Size limits"): what the API, the CSV import and the connectors accept. A record within them
# becomes an event of at most a few hundred kilobytes, far below the broker's largest message (1 MB by default):
# one tenant's megabytes of tags or contacts must never become an event the broker refuses (it would then sit in
# the outbox's dead letters instead of reaching the other services).
MAX_TAGS = 100
MAX_TAG_LENGTH = 100
MAX_CONTACTS = 50
MAX_ALLOCATIONS = 1000
MAX_NAME_LENGTH = 500
MAX_EMAIL_LENGTH = 320  # RFC 5321: 64 local part + @ + 255 domain
MAX_PHONE_LENGTH = 50

Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH)]


class ContactIn(BaseModel):
    """A contact as a door accepts it: the event's Contact, with size limits."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    name: str | None = Field(None, max_length=MAX_NAME_LENGTH)
    email: str | None = Field(None, max_length=MAX_EMAIL_LENGTH)
    phone: str | None = Field(None, max_length=MAX_PHONE_LENGTH)
    role: str = Field("billing", max_length=50)

    def contact(self) -> Contact:
        return Contact(name=self.name, email=self.email, phone=self.phone, role=self.role)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _check_currency(value: str) -> str:
    code = value.upper()
    if code not in ISO_CURRENCIES:
        raise ValueError(f"unknown currency {value!r} (expected an ISO 4217 code)")
    return code


def _check_amount(value: Any, info: ValidationInfo, *, positive: bool) -> Decimal:
    if not isinstance(value, Decimal):
        raise ValueError("not a decimal amount")
    if not value.is_finite():
        raise ValueError("not a finite amount")
    if positive and value <= 0:
        raise ValueError("must be positive")
    if value < 0:
        raise ValueError("must not be negative")
    currency = info.data.get("currency")
    if currency:
        exponent = minor_units(currency)
        if value != value.quantize(Decimal(1).scaleb(-exponent)):
            raise ValueError(f"has more decimals than {currency} allows ({exponent})")
    return value


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("money must be a decimal string, never a float")
    return value


class CustomerRecord(_Record):
    id: str = Field(min_length=1, max_length=200, description="External id (the ERP's)")
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    contacts: list[ContactIn] = Field(default_factory=list, max_length=MAX_CONTACTS)
    email: str | None = Field(
        None, max_length=MAX_EMAIL_LENGTH, description="Shorthand for one billing contact's email"
    )
    phone: str | None = Field(
        None, max_length=MAX_PHONE_LENGTH, description="Shorthand for one billing contact's phone"
    )
    time_zone: str = Field("UTC", max_length=64, description="IANA zone, e.g. Europe/Berlin")
    locale: str = Field("en", max_length=35, description="BCP 47 language tag, e.g. de-DE")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    segment: str | None = Field(None, max_length=100)
    consent: ConsentFlags = Field(default_factory=ConsentFlags)
    credit_hold: bool = False

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name such as Europe/Berlin)") from None
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if not _LOCALE.match(value):
            raise ValueError(f"not a language tag: {value!r}")
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError("expected an ISO 3166-1 alpha-2 code such as DE")
        return value.upper()

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and "@" not in value:
            raise ValueError("not an email address")
        return value or None

    def all_contacts(self) -> list[Contact]:
        if self.contacts or not (self.email or self.phone):
            return [c.contact() for c in self.contacts]
        return [Contact(name=self.name, email=self.email, phone=self.phone)]


class InvoiceRecord(_Record):
    id: str = Field(min_length=1, max_length=200, description="External id (the ERP's)")
    customer_id: str = Field(min_length=1, max_length=200)
    number: str = Field(min_length=1, max_length=100)
    currency: str = Field(max_length=10, description="ISO 4217 code")
    total: AmountStr = Field(description='Decimal string in the currency\'s minor unit, e.g. "4820.00"')
    issue_date: date
    due_date: date | None = None
    terms: str | None = Field(None, max_length=100)

    _cur = field_validator("currency")(_check_currency)
    _float = field_validator("total", mode="before")(_no_float)

    @field_validator("total")
    @classmethod
    def _total(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        return _check_amount(value, info, positive=False)

    @field_validator("due_date")
    @classmethod
    def _due(cls, value: date | None, info: ValidationInfo) -> date | None:
        issued = info.data.get("issue_date")
        if value is not None and issued is not None and value < issued:
            raise ValueError("must not be before issue_date")
        return value

    def total_minor(self) -> int:
        return to_minor(self.total, self.currency)

    def ledger_terms(self) -> InvoiceTerms:
        """What the ledger needs of it, in minor units (ValueError if the total is finer than the currency)."""
        return InvoiceTerms(
            self.id, self.customer_id, self.number, self.currency, self.total_minor(), self.issue_date,
            self.due_date, self.terms,
        )  # fmt: skip


class AllocationRecord(_Record):
    invoice_id: str = Field(min_length=1, max_length=200)
    amount: AmountStr

    _float = field_validator("amount", mode="before")(_no_float)

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        return _check_amount(value, info, positive=True)


class PaymentRecord(_Record):
    id: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1, max_length=200)
    currency: str = Field(max_length=10)
    amount: AmountStr
    received_on: date
    reference: str | None = Field(None, max_length=200, description="Check number, bank reference, ...")
    allocations: list[AllocationRecord] = Field(default_factory=list, max_length=MAX_ALLOCATIONS)

    _cur = field_validator("currency")(_check_currency)
    _float = field_validator("amount", mode="before")(_no_float)

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        return _check_amount(value, info, positive=True)


class CreditNoteRecord(_Record):
    id: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1, max_length=200)
    number: str | None = Field(None, max_length=100)
    currency: str = Field(max_length=10)
    total: AmountStr
    issued_on: date
    allocations: list[AllocationRecord] = Field(default_factory=list, max_length=MAX_ALLOCATIONS)

    _cur = field_validator("currency")(_check_currency)
    _float = field_validator("total", mode="before")(_no_float)

    @field_validator("total")
    @classmethod
    def _total(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        return _check_amount(value, info, positive=True)
