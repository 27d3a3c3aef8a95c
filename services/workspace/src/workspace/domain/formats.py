"""Numbers, amounts and dates as a person reads them in the UI language (de: 1.234,56 EUR; en: 1,234.56 EUR).

The services answer money as exact decimal strings: they are formatted here from `Decimal`, never through a
float, and never rounded beyond what the service sent (an amount keeps its currency's minor units).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

# Thousands and decimal separators per UI language.
SEPARATORS = {"en": (",", "."), "de": (".", ",")}


def as_decimal(value: object) -> Decimal | None:
    """The service's decimal string (or int) as a Decimal; None when absent or not a number."""
    if value is None or isinstance(value, float | bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def number(value: Decimal, language: str, places: int | None = None) -> str:
    """`value` with grouped thousands; `places` fixes the decimals (half-even), None keeps the value's own."""
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places))
    thousands, decimal_mark = SEPARATORS.get(language, SEPARATORS["en"])
    sign = "-" if value < 0 else ""
    text = f"{abs(value):f}"
    whole, _, fraction = text.partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    grouped = thousands.join(groups)
    return f"{sign}{grouped}{decimal_mark}{fraction}" if fraction else f"{sign}{grouped}"


def money(amount: object, currency: str, language: str) -> str:
    """`1.234,56 EUR` / `1,234.56 EUR`; an amount the service did not send shows as a dash."""
    value = as_decimal(amount)
    if value is None:
        return "–"
    return f"{number(value, language)}\xa0{currency}"


def percent(value: object, language: str) -> str:
    """A percentage the service answered as a decimal string (e.g. "87.50"), or a dash when it is unknown."""
    found = as_decimal(value)
    return "–" if found is None else f"{number(found, language)}\xa0%"


def share(value: object, language: str) -> str:
    """A ratio the service answered (0.8750 = all but an eighth) as a percentage to 0.1 (87,5 %), or a dash."""
    found = as_decimal(value)
    return "–" if found is None else f"{number(found * 100, language, places=1)}\xa0%"


def day(value: date | str | None, language: str) -> str:
    """A business date: 05.12.2026 in German, 2026-12-05 in English (ISO, unambiguous)."""
    if value is None or value == "":
        return "–"
    found = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    return found.strftime("%d.%m.%Y") if language == "de" else found.isoformat()


def instant(value: datetime | str | None, language: str) -> str:
    """An instant in UTC to the minute (the services answer ISO 8601 with offset)."""
    if value is None or value == "":
        return "–"
    found = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if found.tzinfo is not None:
        found = found.astimezone(UTC)
    return found.strftime("%d.%m.%Y %H:%M UTC") if language == "de" else found.strftime("%Y-%m-%d %H:%M UTC")
