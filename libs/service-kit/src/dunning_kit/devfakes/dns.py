"""A fake DNS for tests: chosen names get chosen answers from `socket.getaddrinfo`, the call asyncio's resolver
(and so every HTTP client here) makes; every other name resolves as usual.

    with FakeDns({"hooks.acme.example": ["127.0.0.1"]}) as dns: ...   # dns.lookups: names asked, in order

A name may get successive answers (`answer(name, ["93.184.216.34"], ["127.0.0.1"])`: the last one repeats),
which is how DNS rebinding looks from the client's side.
"""

from __future__ import annotations

import socket
from types import TracebackType
from typing import Any


class FakeDns:
    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self._answers: dict[str, list[list[str]]] = {name: [list(a)] for name, a in (answers or {}).items()}
        self.lookups: list[str] = []
        self._real = socket.getaddrinfo

    def answer(self, name: str, *answers: list[str]) -> None:
        self._answers[name] = [list(a) for a in answers]

    def _getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        queue = self._answers.get(name)
        flags = kwargs.get("flags", args[3] if len(args) > 3 else 0)
        if queue is None or flags & socket.AI_NUMERICHOST:  # "parse only": a name is no address, as for real
            return self._real(host, port, *args, **kwargs)
        self.lookups.append(name)
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        number = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, number, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, number))
            for a in addresses
        ]

    def __enter__(self) -> FakeDns:
        socket.getaddrinfo = self._getaddrinfo
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        socket.getaddrinfo = self._real
