"""Structured logs: one JSON object per line, with trace id, and secrets and card/bank data redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

# Card numbers (13-19 digits, spaces or dashes allowed) and IBANs never reach a log line whole.
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_BEARER = re.compile(r"(?i)(bearer\s+|api[_-]?key[\"'=: ]+|password[\"'=: ]+|secret[\"'=: ]+)([^\s\"',]+)")

_CONTEXT_FIELDS = (
    "tenant_id", "subject", "event_id", "event_type", "customer_id", "invoice_id", "step_id", "consumer_group",
)  # fmt: skip


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add_secret(self, value: str | None) -> None:
        if value and len(value) >= 6:
            self._secrets.add(value)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[REDACTED]")
        text = _BEARER.sub(lambda m: m.group(1) + "[REDACTED]", text)
        text = _CARD.sub(_mask_digits, text)
        return _IBAN.sub(lambda m: m.group(0)[:4] + "…[REDACTED]", text)


def _mask_digits(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return f"[CARD …{digits[-4:]}]"


REDACT = Redactor()

_SECRET_SETTING = ("password", "token", "secret", "api_key", "signing_key", "private_key")


def register_secret_settings(settings: object) -> None:
    """Every setting whose name says it is a secret is never printed, whatever logs it."""
    for name in getattr(type(settings), "model_fields", {}):
        if any(marker in name for marker in _SECRET_SETTING):
            value = getattr(settings, name, None)
            REDACT.add_secret(value if isinstance(value, str) else None)
    url = getattr(settings, "database_url", "")
    if "@" in url and ":" in url.split("@")[0].split("//")[-1]:
        REDACT.add_secret(url.split("@")[0].split("//")[-1].split(":", 1)[1])


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": REDACT(record.getMessage()),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = str(value)
        ctx = trace.get_current_span().get_span_context()
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            doc["trace_id"] = trace_id
        elif ctx.is_valid:
            doc["trace_id"] = format(ctx.trace_id, "032x")
            doc["span_id"] = format(ctx.span_id, "016x")
        if record.exc_info:
            doc["exc"] = REDACT(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return REDACT(super().format(record))


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(service) if fmt == "json" else TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
