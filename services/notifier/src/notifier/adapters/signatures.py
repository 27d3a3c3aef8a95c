"""Verifying provider callbacks: Twilio's X-Twilio-Signature and SendGrid's signed event webhook."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """base64(HMAC-SHA1(auth token, full URL + each POST parameter name+value, sorted by name))."""
    payload = url + "".join(f"{k}{v}" for k, v in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def twilio_valid(auth_token: str, url: str, params: Iterable[tuple[str, str]], presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(twilio_signature(auth_token, url, list(params)), presented)


def _public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    text = encoded.strip()
    key = (
        load_pem_public_key(text.encode()) if text.startswith("-----") else load_der_public_key(base64.b64decode(text))
    )
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the SendGrid verification key is not an EC key")
    return key


SENDGRID_TOLERANCE_S = 300.0


def sendgrid_valid(
    public_key: str | None,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = SENDGRID_TOLERANCE_S,
) -> bool:
    """ECDSA P-256 / SHA-256 over timestamp + raw body; the key is SendGrid's base64 DER (or PEM). The signed
    timestamp must be within `tolerance_s` of now (wall time, like Stripe's 300 s): a captured post replayed
    later is refused even though its signature is genuine."""
    if not (public_key and signature and timestamp):
        return False
    if not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    try:
        _public_key(public_key).verify(
            base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
