"""Who a step reaches on each channel: address selection, E.164 normalisation, suppression keys (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import phonenumbers

_EMAIL = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
# Billing contacts are who dunning is addressed to; anyone else only when there is no billing contact.
_ROLE_ORDER = {"billing": 0, "accounts_payable": 1, "primary": 2}


class InvalidAddress(ValueError):
    """An address or number that can never be delivered to."""


def _ordered(contacts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(contacts, key=lambda c: _ROLE_ORDER.get(str(c.get("role") or ""), 9))


def normalize_email(raw: str) -> str:
    address = raw.strip()
    if not _EMAIL.match(address):
        raise InvalidAddress(f"'{raw}' is not a valid email address")
    local, domain = address.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """E.164 (`+4930123456`), or InvalidAddress saying why."""
    try:
        number = phonenumbers.parse(raw, None if raw.strip().startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress(f"'{raw}' is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidAddress(f"'{raw}' is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_of(contacts: Iterable[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """(address, contact name) of the first contact with an email, billing first."""
    for c in _ordered(contacts):
        if c.get("email"):
            return str(c["email"]), c.get("name")
    return None, None


def phone_of(contacts: Iterable[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    for c in _ordered(contacts):
        if c.get("phone"):
            return str(c["phone"]), c.get("name")
    return None, None


def suppression_key(channel: str) -> str | None:
    """Suppressions are kept per address kind: an SMS STOP also stops calls to that number."""
    return {"email": "email", "sms": "phone", "voice": "phone"}.get(channel)


def mask(recipient: str | None) -> str | None:
    """Events carry addresses masked: consumers need to tell them apart, not to read them."""
    if not recipient:
        return recipient
    if "@" in recipient:
        local, domain = recipient.split("@", 1)
        return f"{local[:1]}***@{domain}"
    if recipient.startswith("+") and len(recipient) > 6:
        return recipient[:3] + "*" * (len(recipient) - 6) + recipient[-3:]
    return recipient
