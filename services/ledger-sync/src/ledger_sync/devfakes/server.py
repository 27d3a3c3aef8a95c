"""Serve a fake ERP (an ASGI app) on a free local port for the duration of a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from dunning_kit.embedded import free_port
from dunning_kit.testing import poll_until


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())

    async def up() -> bool:
        if task.done():
            task.result()
        return bool(server.started)

    await poll_until(up, timeout=20, what="the fake ERP to listen")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
