"""The in-loop server of the tests and the local fakes: its port is reserved when it is made, and a server that
cannot start is an error of its start, never a SystemExit escaping into the shared test loop (which broke every
later test of a worker in CI)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dunning_kit.devfakes.asgi_server import AsgiServer


async def hello(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
        assert message["type"] == "lifespan.startup"
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def test_the_port_is_the_servers_from_the_moment_it_is_made() -> None:
    server = AsgiServer(hello)
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", server.port))  # what a parallel worker's free_port() + bind would meet
    with pytest.raises(OSError):
        AsgiServer(hello, port=server.port)
    await server.start()
    try:
        async with httpx.AsyncClient() as http:
            assert (await http.get(server.base_url)).text == "hello"
    finally:
        await server.stop()


async def test_a_server_that_cannot_start_raises_from_start_and_the_loop_goes_on() -> None:
    server = AsgiServer(hello, lifespan="on")  # the app refuses its start-up
    with pytest.raises(RuntimeError, match="could not start"):
        await server.start()
    await server.stop()
    after = AsgiServer(hello)  # lifespan off: it serves
    await after.start()  # the same loop serves the next test
    await after.stop()
