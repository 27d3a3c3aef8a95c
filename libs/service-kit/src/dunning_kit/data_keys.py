"""Secrets at rest: AES-GCM envelopes under data-encryption keys read from a Secret.

A stored secret (an ERP client secret, an OAuth token, a webhook signing secret) is kept as
`v1:<key_id>:<base64url(nonce + ciphertext + tag)>`. The key id says which key sealed it, so several keys can
be configured at once: the first one (the newest) seals, any of them opens, and a rotation re-seals
everything under the newest before the old one is removed (`rotate_keys` of each service).

Each ciphertext is bound to its place (table, tenant, connector, field) by AES-GCM's associated data: a
ciphertext copied to another tenant's row, or to another field, does not open. A value that does not open
is never skipped or guessed at: `UndecryptableSecret` names the record and the key id, and
`StoredSecretsHealth` turns it into readiness false with one log line per record.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field
from pydantic_settings import BaseSettings

from dunning_kit.dev_secrets import DEV_DATA_ENCRYPTION_KEYS

log = logging.getLogger("dunning.data_keys")

ENVELOPE_VERSION = "v1"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce: random per seal, so a key is good for 2**32 seals (NIST SP 800-38D)
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# DEV_DATA_ENCRYPTION_KEYS (development only, listed with the other shipped development values): `make up` and
# the tests run under it, and the production guard refuses it outside DEV_MODE. Anything sealed under it is as
# good as plain text.


class DataKeySettingError(ValueError):
    """DATA_ENCRYPTION_KEYS (or its file) cannot be used; the message names the setting, never a key."""


@dataclass(frozen=True)
class SecretRef:
    """Where a stored secret lives: names it in errors and binds its ciphertext (the associated data)."""

    table: str
    tenant_id: str
    field: str
    connector: str = ""

    def associated_data(self) -> bytes:
        # JSON, not a joined string: no tenant id can make two different places look alike.
        return json.dumps([ENVELOPE_VERSION, self.table, self.tenant_id, self.connector, self.field]).encode()

    def __str__(self) -> str:
        owner = f"tenant {self.tenant_id!r}" + (f", connector {self.connector!r}" if self.connector else "")
        return f"{self.table} ({owner}) field {self.field}"


class UndecryptableSecret(Exception):
    """A stored secret that the configured keys cannot open: the record and the key id are named."""

    def __init__(self, ref: SecretRef, key_id: str | None, reason: str) -> None:
        self.ref = ref
        self.key_id = key_id
        self.reason = reason
        key = f"key id {key_id!r}" if key_id else "no key id"
        super().__init__(f"stored secret {ref} cannot be decrypted ({key}): {reason}")


def _decode_key(text: str) -> bytes | None:
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(text.strip() + "=" * (-len(text.strip()) % 4))
        except (binascii.Error, ValueError):
            continue
    return None


class Keyring:
    """The configured data-encryption keys, newest first: the first seals, every one opens."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise DataKeySettingError("no data-encryption key configured")
        self._keys = {key_id: AESGCM(material) for key_id, material in keys}
        self.primary_id = keys[0][0]
        self.key_ids = tuple(key_id for key_id, _ in keys)

    @classmethod
    def parse(cls, text: str, setting: str = "DATA_ENCRYPTION_KEYS") -> Keyring:
        """`key_id:base64key` entries separated by commas or new lines (`#` starts a comment), newest first."""
        entries = [e.strip() for line in text.splitlines() for e in line.split("#", 1)[0].split(",")]
        keys: list[tuple[str, bytes]] = []
        for n, entry in enumerate((e for e in entries if e), start=1):
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep or not _KEY_ID.match(key_id):
                raise DataKeySettingError(
                    f"{setting}: entry {n} is not `key_id:base64key` (key id: 1-64 of A-Z a-z 0-9 . _ -)"
                )
            material = _decode_key(encoded)
            if material is None or len(material) != KEY_BYTES:
                raise DataKeySettingError(
                    f"{setting}: key {key_id!r} must be {KEY_BYTES} random bytes in base64 "
                    f"(e.g. `openssl rand -base64 32`)"
                )
            if any(key_id == known for known, _ in keys):
                raise DataKeySettingError(f"{setting}: key id {key_id!r} appears twice")
            keys.append((key_id, material))
        if not keys:
            raise DataKeySettingError(f"{setting}: no key given (`key_id:base64key`, newest first)")
        return cls(keys)

    @classmethod
    def from_settings(cls, settings: DataKeySettings) -> Keyring:
        """The keyring of a service: the mounted file when DATA_ENCRYPTION_KEYS_FILE is set, else the setting."""
        file = settings.data_encryption_keys_file
        if file is None:
            return cls.parse(settings.data_encryption_keys)
        try:
            text = file.read_text()
        except OSError as exc:
            raise DataKeySettingError(f"DATA_ENCRYPTION_KEYS_FILE: cannot read {str(file)!r}: {exc.strerror}") from None
        return cls.parse(text, setting=f"DATA_ENCRYPTION_KEYS_FILE ({file})")

    # ------------------------------------------------------------------ envelopes

    def seal(self, plaintext: str, ref: SecretRef) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.primary_id].encrypt(nonce, plaintext.encode(), ref.associated_data())
        return f"{ENVELOPE_VERSION}:{self.primary_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, envelope: object, ref: SecretRef) -> str:
        if not isinstance(envelope, str) or not is_sealed(envelope):
            raise UndecryptableSecret(ref, None, "stored in plain text (run the service's rotate_keys to encrypt it)")
        _, key_id, body = envelope.split(":", 2)
        aead = self._keys.get(key_id)
        if aead is None:
            raise UndecryptableSecret(
                ref, key_id, f"that key is not configured (configured: {', '.join(self.key_ids)})"
            )
        try:
            raw = base64.urlsafe_b64decode(body)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], ref.associated_data()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise UndecryptableSecret(
                ref, key_id, "authentication failed (another key under that id, or the value was altered or "
                "copied from another record)"
            ) from None  # fmt: skip

    def is_current(self, envelope: object) -> bool:
        """Sealed under the newest key: nothing for a rotation to do."""
        return key_id_of(envelope) == self.primary_id


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(f"{ENVELOPE_VERSION}:") and value.count(":") >= 2


def key_id_of(envelope: object) -> str | None:
    return envelope.split(":", 2)[1] if isinstance(envelope, str) and is_sealed(envelope) else None


# ---------------------------------------------------------------------- rotation


@dataclass
class RotationReport:
    """What a re-encryption pass did; `failed` names every secret it could not open (nothing is skipped quietly)."""

    records: int = 0
    resealed: int = 0
    encrypted_plaintext: int = 0
    current: int = 0
    failed: list[str] = field(default_factory=list)
    newest_key: str = ""

    def line(self) -> str:
        return (
            f"{self.records} records: {self.resealed} secrets re-encrypted under key {self.newest_key!r}, "
            f"{self.encrypted_plaintext} plain-text secrets encrypted, {self.current} already current, "
            f"{len(self.failed)} undecryptable"
        )


def reseal(keyring: Keyring, stored: object, ref: SecretRef, report: RotationReport, leftover: str) -> str | None:
    """The value to store instead of `stored` under the newest key, or None when it is current already.

    `leftover` is the plain text to seal when `stored` is not an envelope (written before encryption existed).
    Raises UndecryptableSecret for a value no configured key opens.
    """
    if is_sealed(stored):
        if keyring.is_current(stored):
            report.current += 1
            return None
        sealed = keyring.seal(keyring.open(stored, ref), ref)
        report.resealed += 1
        return sealed
    report.encrypted_plaintext += 1
    return keyring.seal(leftover, ref)


# ---------------------------------------------------------------------- settings


class DataKeySettings(BaseSettings):
    """The settings of a service that stores secrets (mixed into its Settings)."""

    data_encryption_keys: str = Field(
        DEV_DATA_ENCRYPTION_KEYS,
        description="Data-encryption keys of the secrets stored in PostgreSQL: `key_id:base64(32 bytes)` entries, "
        "comma-separated, newest first (the first encrypts, any decrypts). The default is a development key",
        json_schema_extra={"secret": True},
    )
    data_encryption_keys_file: Path | None = Field(
        None,
        description="File (a mounted Secret) with the data-encryption keys, one `key_id:base64key` a line, newest "
        "first; when set, DATA_ENCRYPTION_KEYS is not read",
    )
    # Checked by Keyring.from_settings in the composition root, not by a validator: pydantic's error would
    # print the value, and the value is the key.


# ---------------------------------------------------------------------- readiness


# Tries every stored secret; returns those the keyring cannot open.
SecretsScan = Callable[[], Awaitable[list[UndecryptableSecret]]]


class StoredSecretsHealth:
    """Readiness of a service's stored secrets: false while any is known not to open.

    Known from a full scan (at the first readiness probe, then at most every `rescan_seconds`) and from the
    service's own reads in between (`failed` / `opened`). Each record is logged once when it starts failing,
    not at every probe or retry. A pod started with a keyring that lacks a key in use thus never becomes
    ready, which stops a rollout before it serves.
    """

    def __init__(self, scan: SecretsScan, rescan_seconds: float = 60.0) -> None:
        self._scan = scan
        self._rescan_seconds = rescan_seconds
        self._scanned_at: float | None = None
        self._failing: dict[SecretRef, UndecryptableSecret] = {}

    def failed(self, exc: UndecryptableSecret) -> None:
        if exc.ref not in self._failing:
            log.error("%s", exc)
        self._failing[exc.ref] = exc

    def opened(self, ref: SecretRef) -> None:
        self._failing.pop(ref, None)

    def replaced(self, table: str, tenant_id: str, connector: str = "") -> None:
        """A record's secrets were written anew (and sealed under the newest key): its old failures are gone."""
        for ref in [r for r in self._failing if (r.table, r.tenant_id, r.connector) == (table, tenant_id, connector)]:
            del self._failing[ref]

    @property
    def failing(self) -> list[UndecryptableSecret]:
        return list(self._failing.values())

    async def ready(self) -> bool:
        now = time.monotonic()
        if self._scanned_at is None or now - self._scanned_at >= self._rescan_seconds:
            found = await self._scan()
            self._scanned_at = now
            for exc in found:
                self.failed(exc)
            for ref in set(self._failing) - {exc.ref for exc in found}:
                del self._failing[ref]
        return not self._failing


__all__ = [
    "DEV_DATA_ENCRYPTION_KEYS",
    "DataKeySettingError",
    "DataKeySettings",
    "Keyring",
    "RotationReport",
    "SecretRef",
    "StoredSecretsHealth",
    "UndecryptableSecret",
    "is_sealed",
    "key_id_of",
    "reseal",
]
