"""Serve a fake ERP (an ASGI app) on a free local port for the duration of a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from dunning_kit.devfakes.asgi_server import AsgiServer


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    server = AsgiServer(app)
    await server.start()
    try:
        yield server.base_url
    finally:
        await server.stop()
