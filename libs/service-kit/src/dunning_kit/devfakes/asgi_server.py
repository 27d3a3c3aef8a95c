"""Serve an ASGI app with uvicorn inside the running event loop (tests, local fakes) or standalone (dev).

The listening socket is bound when the server is made, so its port is the server's from then on. Choosing a free
port first and binding it later lost races under the parallel suite: another worker's PostgreSQL or broker took
the port in between, and uvicorn's `sys.exit(3)` on a failed bind, raised inside a task of the shared test loop,
broke every test that worker ran afterwards. A start-up failure here is a RuntimeError of the caller's start.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any, Literal

import uvicorn


def bound_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket listening on `host:port` (0: any free port): the port is the caller's from now. It listens at
    once because Linux lets a second SO_REUSEADDR socket bind a port that is bound but not listening; connections
    made before the server runs wait in the backlog."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's own servers: restarts on a port
        sock.bind((host, port))
        sock.listen(100)
    except OSError:
        sock.close()
        raise
    return sock


async def _without_exit(serving: Coroutine[Any, Any, None], what: str) -> None:
    """uvicorn ends a failed start with SystemExit, which asyncio lets escape the loop; make it an error."""
    try:
        await serving
    except SystemExit as exc:
        raise RuntimeError(f"{what} could not start (uvicorn exit status {exc.code})") from None


class AsgiServer:
    def __init__(
        self, app: Any = None, host: str = "127.0.0.1", port: int = 0, lifespan: Literal["on", "off"] = "off"
    ) -> None:
        self.host = host
        self.app = app
        self.lifespan = lifespan
        self._socket = bound_socket(host, port)
        self.port = int(self._socket.getsockname()[1])
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def started(self) -> bool:
        return self._server is not None and self._server.started

    @property
    def serving(self) -> bool:
        """Started and neither stopped nor failed since."""
        return self._task is not None and not self._task.done()

    async def start(self, app: Any = None, timeout: float = 30) -> None:
        """Serve `app` (or the one given when made) and return once it accepts connections."""
        config = uvicorn.Config(app or self.app, log_level="warning", lifespan=self.lifespan)
        self._server = uvicorn.Server(config)
        what = f"the server on {self.base_url}"
        self._task = asyncio.create_task(
            _without_exit(self._server.serve(sockets=[self._socket]), what), name=f"asgi-{self.port}"
        )
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._server.started:
            if self._task.done():
                self._task.result()
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise TimeoutError(f"{what} did not start within {timeout} s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._socket.close()
