"""Money on the wire: an exact Decimal amount with its ISO 4217 currency, never a float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer, field_validator

# Minor units per ISO 4217 for the currencies whose exponent is not 2. Everything else has 2.
_MINOR_UNITS: dict[str, int] = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "CLF": 4,
}

# Accepted currency codes: the active ISO 4217 list (a code outside it is a typo, not a currency).
ISO_CURRENCIES: frozenset[str] = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYI",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWL",
    ]
)


def minor_units(currency: str) -> int:
    """Number of decimal places the currency uses (2 unless ISO 4217 says otherwise)."""
    return _MINOR_UNITS.get(currency.upper(), 2)


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    """Exact conversion to integer minor units; refuses amounts finer than the currency allows."""
    scaled = amount.scaleb(minor_units(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows ({minor_units(currency)})")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-minor_units(currency)).quantize(quantum(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Banker's rounding to the currency's minor unit, for computed amounts such as interest."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_EVEN)


def _decimal_to_str(value: Decimal) -> str:
    return format(value, "f")


# Decimals travel as JSON strings so no consumer ever parses them into a binary float.
DecimalStr = Annotated[Decimal, PlainSerializer(_decimal_to_str, return_type=str, when_used="json")]

# The largest amount anyone may send: below 10^14 in every currency, its minor units (at most 4 decimals, CLF)
# stay inside a PostgreSQL bigint with room for sums, and every computation stays inside Decimal's 28 digits
# (`"1e400"` would otherwise fail a quantize with InvalidOperation, far from the field that carried it).
MAX_AMOUNT = Decimal(10) ** 14


def storable_amount(value: Decimal) -> Decimal:
    """`value` if the platform can hold it (finite, below MAX_AMOUNT in absolute value), else ValueError."""
    if not value.is_finite():
        raise ValueError("must be a finite decimal amount")
    if abs(value) >= MAX_AMOUNT:
        raise ValueError(f"must be less than {MAX_AMOUNT:,} in absolute value")
    return value


# An amount a request carries: a DecimalStr that the platform can store (see MAX_AMOUNT).
AmountStr = Annotated[DecimalStr, AfterValidator(storable_amount)]


class Money(BaseModel):
    """An amount in one currency, exact to the currency's minor unit."""

    model_config = ConfigDict(frozen=True)

    amount: DecimalStr
    currency: str

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        code = value.upper()
        if code not in ISO_CURRENCIES:
            raise ValueError(f"unknown currency {value!r} (expected an ISO 4217 code)")
        return code

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError("money must be a decimal string or integer, never a float")
        try:
            Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal amount: {value!r}") from exc
        return value

    def __str__(self) -> str:
        return f"{_decimal_to_str(self.amount)} {self.currency}"
