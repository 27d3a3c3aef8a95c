"""A local fake of a print-and-mail API (Lob-shaped): POST /v1/letters, multipart with the PDF in `file`,
Basic auth with the API key as user, `Idempotency-Key` honoured (the same key returns the same letter)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from dunning_kit.devfakes.asgi_server import AsgiServer


@dataclass
class FakePrintApi:
    host: str = "127.0.0.1"
    port: int = 0
    letters: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    _by_key: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.app = self._build_app()
        self._server = AsgiServer(self.app, self.host, self.port)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    async def __aenter__(self) -> FakePrintApi:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._server.stop()

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Fake print-and-mail API", docs_url=None, redoc_url=None)

        @app.post("/v1/letters")
        async def create_letter(request: Request) -> JSONResponse:
            self.requests += 1
            header = request.headers.get("authorization", "")
            if not header.lower().startswith("basic ") or not base64.b64decode(header[6:]).decode().split(":")[0]:
                return JSONResponse(
                    {"error": {"message": "Missing authentication", "status_code": 401}}, status_code=401
                )
            key = request.headers.get("idempotency-key")
            if key and key in self._by_key:
                return JSONResponse(self._by_key[key])
            form = await request.form()
            upload = form.get("file")
            pdf = await upload.read() if isinstance(upload, UploadFile) else b""
            if not pdf.startswith(b"%PDF"):
                return JSONResponse({"error": {"message": "file must be a PDF", "status_code": 422}}, status_code=422)
            if not form.get("to[address_line1]"):
                return JSONResponse(
                    {"error": {"message": "to.address_line1 is required", "status_code": 422}}, status_code=422
                )
            letter = {
                "id": f"ltr_{uuid.uuid4().hex[:16]}",
                "object": "letter",
                "description": form.get("description"),
                "to": {k[3:-1]: v for k, v in form.items() if k.startswith("to[")},
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
                "pages": pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") or 1,
            }
            self.letters.append({**letter, "_pdf": pdf})
            if key:
                self._by_key[key] = letter
            return JSONResponse(letter)

        return app
