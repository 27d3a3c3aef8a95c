"""The other services' pieces of a personal-data export, fetched over HTTP with the caller's own credentials.

Each peer answers `GET /v1/customers/{id}/personal-data` with `{service, customer_id, erased, data}`. A peer
that cannot be reached, answers anything but 200, or answers another shape fails the whole export naming the
peer (PeerFailure): an export that silently leaves a service out would tell the person the platform holds less
than it does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import AfterValidator

# Where the peers listen in the Kubernetes manifests (their Services' names and ports).
IN_CLUSTER_PEERS = (
    "policy-engine=http://policy-engine:8002,notifier=http://notifier:8003,promise-tracker=http://promise-tracker:8004"
)


@dataclass(frozen=True)
class Peer:
    name: str
    url: str


def parse_peers(text: str) -> list[Peer]:
    """`name=url,...` (empty: no peers). ValueError names the entry that is wrong."""
    peers: list[Peer] = []
    for n, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, url = (part.strip() for part in entry.partition("="))
        parts = urlsplit(url)
        if not sep or not name or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"entry {n} ({entry!r}): expected name=http(s)://host:port")
        if any(p.name == name for p in peers):
            raise ValueError(f"entry {n}: {name!r} is listed twice")
        peers.append(Peer(name, url.rstrip("/")))
    return peers


def _check_peers(value: str) -> str:
    parse_peers(value)
    return value


PeerList = Annotated[str, AfterValidator(_check_peers)]
"""A settings field's type: `name=url` comma-separated, checked when the settings are read."""


class PeerFailure(Exception):
    """A peer gave no usable piece: `status` is 503 when it could not be reached, 502 when it answered wrongly."""

    def __init__(self, peer: str, status: int, reason: str) -> None:
        super().__init__(f"{peer}: {reason}")
        self.peer = peer
        self.status = status
        self.reason = reason


async def _piece(http: httpx.AsyncClient, peer: Peer, customer_id: str, authorization: str) -> dict[str, Any]:
    url = f"{peer.url}/v1/customers/{quote(customer_id, safe='')}/personal-data"
    try:
        answer = await http.get(url, headers={"Authorization": authorization})
    except httpx.HTTPError as exc:
        raise PeerFailure(peer.name, 503, f"unreachable at {peer.url}: {type(exc).__name__} {exc}".strip()) from None
    if answer.status_code != 200:
        raise PeerFailure(peer.name, 502, f"answered {answer.status_code}: {answer.text[:300]}")
    try:
        piece = answer.json()
    except ValueError:
        raise PeerFailure(peer.name, 502, "answered 200 without a JSON document") from None
    if not (
        isinstance(piece, dict)
        and piece.get("customer_id") == customer_id
        and isinstance(piece.get("erased"), bool)
        and isinstance(piece.get("data"), dict)
    ):
        raise PeerFailure(peer.name, 502, "answered a document without customer_id, erased and data")
    return piece


async def fetch_pieces(
    peers: list[Peer], customer_id: str, authorization: str, *, timeout_s: float
) -> dict[str, dict[str, Any]]:
    """Every peer's piece, asked at once; the first failure (in the peers' order) is raised."""
    async with httpx.AsyncClient(timeout=timeout_s) as http:
        results = await asyncio.gather(
            *(_piece(http, peer, customer_id, authorization) for peer in peers), return_exceptions=True
        )
    pieces: dict[str, dict[str, Any]] = {}
    for peer, result in zip(peers, results, strict=True):
        if isinstance(result, BaseException):
            raise result
        pieces[peer.name] = result
    return pieces
