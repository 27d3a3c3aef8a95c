"""Letters: the PDF handed to a print-and-mail API (Lob-shaped: POST /v1/letters, multipart, Basic auth
with the API key, `Idempotency-Key` honoured) or written to a drop folder a print shop collects from."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx

from notifier.adapters.channels.http import (
    DEFAULT_DEADLINE_SECONDS,
    RateLimiter,
    call,
    json_or_empty,
    provider_timeout,
)
from notifier.domain.messages import OutboundMessage, PermanentSendError, SendReceipt

Today = Callable[[], date]


def render_letter_pdf(message: OutboundMessage, today: date, primary_color: str | None) -> bytes:
    # Imported on the first letter: reportlab (with PIL) is a tenth of the notifier's start-up, which is
    # how long a restarted replica is out of service.
    from notifier.adapters.pdf import render_letter_pdf as render

    return render(message, today, primary_color)


def _require_address(message: OutboundMessage) -> None:
    if message.postal_address is None:
        raise PermanentSendError("letter: the customer has no postal address on record")


class PrintApiLetters:
    name = "print_api"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        limiter: RateLimiter,
        today: Today,
        timeout: float = 30.0,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        self.limiter = limiter
        self.deadline = deadline
        self.today = today
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), auth=(api_key or "", ""), timeout=provider_timeout(timeout)
        )

    async def send(self, message: OutboundMessage) -> SendReceipt:
        _require_address(message)
        assert message.postal_address is not None
        pdf = await asyncio.to_thread(render_letter_pdf, message, self.today(), message.payload.get("primary_color"))
        addr = message.postal_address
        form: dict[str, str] = {
            "description": message.subject[:255],
            "to[name]": addr.name,
            "to[address_line1]": addr.lines[0] if addr.lines else "",
            "to[address_line2]": addr.lines[1] if len(addr.lines) > 1 else "",
            "to[address_city]": addr.city,
            "to[address_zip]": addr.postal_code,
            "to[address_country]": addr.country,
            "from[name]": message.sender.company_name,
            "from[address_line1]": message.sender.return_address[0] if message.sender.return_address else "",
            "color": "false",
            "metadata[delivery_id]": message.delivery_id,
        }
        # The print API de-duplicates on Idempotency-Key, so even a timeout may be retried safely.
        response = await call(
            self.http,
            self.name,
            "POST",
            "/v1/letters",
            idempotent=True,
            limiter=self.limiter,
            deadline=self.deadline,
            data=form,
            files={"file": (f"{message.delivery_id}.pdf", pdf, "application/pdf")},
            headers={"Idempotency-Key": message.idempotency_key},
        )
        return SendReceipt(provider=self.name, provider_message_id=str(json_or_empty(response).get("id") or ""))

    async def aclose(self) -> None:
        await self.http.aclose()


class DropFolderLetters:
    name = "drop_folder"

    def __init__(self, folder: Path, today: Today) -> None:
        self.folder = folder
        self.today = today

    async def send(self, message: OutboundMessage) -> SendReceipt:
        _require_address(message)
        pdf = await asyncio.to_thread(render_letter_pdf, message, self.today(), message.payload.get("primary_color"))
        await asyncio.to_thread(self._write, message, pdf)
        return SendReceipt(provider=self.name, provider_message_id=f"{message.delivery_id}.pdf")

    def _write(self, message: OutboundMessage, pdf: bytes) -> None:
        folder = self.folder / message.tenant_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{message.delivery_id}.pdf"
        if target.exists():
            return  # the same delivery never yields a second letter
        # Write then rename, so the print shop never collects half a file; sidecar first, PDF last.
        meta = {
            "delivery_id": message.delivery_id,
            "customer_id": message.customer_id,
            "address": message.postal_address.as_lines() if message.postal_address else [],
            "subject": message.subject,
        }
        sidecar = folder / f"{message.delivery_id}.json"
        tmp_meta = sidecar.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(meta, ensure_ascii=False, indent=1))
        os.replace(tmp_meta, sidecar)
        tmp = target.with_suffix(".pdf.tmp")
        tmp.write_bytes(pdf)
        os.replace(tmp, target)
