"""A partner that answers one byte at a time: the slow server a total request deadline is for.

It reads a request whole, sends a status line and headers announcing a body of `size` bytes, then one byte
every `interval` seconds - each byte well inside any per-read timeout, so only a deadline on the whole request
ends it. `async with TricklingServer() as server:` -> server.base_url (any path, any method).
"""

from __future__ import annotations

import asyncio
from typing import Any


class TricklingServer:
    def __init__(self, interval: float = 1.5, size: int = 20, status: int = 200, host: str = "127.0.0.1") -> None:
        self.interval = interval
        self.size = max(2, size)
        self.status = status
        self.host = host
        self.requests = 0  # requests read whole (the partner "took" them)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"

    async def __aenter__(self) -> TricklingServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            self.requests += 1
            body = b"{" + b" " * (self.size - 2) + b"}"  # valid JSON once it is all there
            writer.write(
                f"HTTP/1.1 {self.status} Slow\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            await writer.drain()
            for i in range(len(body)):
                await asyncio.sleep(self.interval)
                writer.write(body[i : i + 1])
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client gave up: that is the point
        finally:
            writer.close()
            self._handlers.discard(task)
