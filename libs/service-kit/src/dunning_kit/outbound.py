"""Requests to targets a tenant configured (webhook endpoints, ERP base and token URLs) never reach an
internal address: not loopback, not the cloud metadata service, not a private network, not the cluster.

One rule, applied twice:
- when the target is configured, `OutboundPolicy.refusal_for_url` reads the URL as the HTTP client will: an
  address in any form the system resolver accepts (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`, `[::1]`,
  `[::ffff:127.0.0.1]`, NAT64 and 6to4 wrappings) and names that are internal by definition (`localhost`,
  `*.internal` such as `metadata.google.internal`, `*.local`, single-label names the cluster's search domains
  complete). The route answers 422 naming the field.
- when a connection is opened, the transport from `OutboundPolicy.client` resolves the name itself, checks
  every address it gets, and connects to a checked address. The name is never handed to a resolver again, so
  a name that resolves to a public address when configured and to 127.0.0.1 later (DNS rebinding) is refused.
  TLS still sends SNI and verifies the certificate for the name, and the Host header is the name: only the
  socket is pinned.

`OUTBOUND_ALLOWED_NETWORKS` (CIDRs) is the explicit exception for development and tests, whose fakes listen
on 127.0.0.1; in production it stays empty.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Annotated, Any

import httpcore
import httpx
from pydantic import AfterValidator

log = logging.getLogger("dunning.outbound")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Development and tests: the local fakes (and the dev stack's services) listen on loopback.
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"

# Names that only ever mean something inside a network: refused whatever they resolve to (unless every
# address they resolve to is on the allow-list). `internal` covers metadata.google.internal and GCE hosts.
_INTERNAL_SUFFIXES = ("localhost", "internal", "local", "localdomain", "home.arpa", "lan", "intranet", "corp")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SCHEMES = ("http", "https")


class ForbiddenDestination(Exception):
    """A connection to an internal address was refused. Not an httpx error on purpose: callers that retry
    transport errors must not retry this one; it is permanent until the tenant changes the target."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(
            f"refused to connect to {host}: {reason}; requests to internal addresses are not allowed "
            "(OUTBOUND_ALLOWED_NETWORKS lists the exceptions)"
        )
        self.host = host
        self.reason = reason


def parse_networks(value: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _check_networks(value: str) -> str:
    parse_networks(value)  # a ValueError names the bad entry: the setting is refused at start-up
    return value


AllowedNetworks = Annotated[str, AfterValidator(_check_networks)]
"""A settings field's type: comma-separated CIDRs, checked when the settings are read."""


def literal_address(host: str) -> IPAddress | None:
    """The address a host string stands for without any lookup, in every form the system resolver reads as
    an address (decimal, octal, hex and short IPv4; IPv6 with or without brackets and zone); None for a name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    try:
        # AI_NUMERICHOST: parse only, never a DNS query (safe in a validator). This is the parser the
        # connection would use, so `2130706433` and `0x7f.1` mean here exactly what they would mean there.
        infos = socket.getaddrinfo(bare, None, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    packed = int(address)
    if address in _NAT64 or (packed >> 32 == 0 and packed > 1):  # 64:ff9b::a.b.c.d and ::a.b.c.d
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def internal_reason(address: IPAddress) -> str | None:
    """Why an address is internal (None when it is a public unicast address)."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        reason = internal_reason(inner)
        return f"{reason} (an IPv4 address inside an IPv6 one)" if reason else None
    if address.is_unspecified:
        return "the unspecified address (reaches this host)"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private-network address"
    if address.is_reserved or not address.is_global:
        return "a reserved or non-public address"
    return None


def internal_name(host: str) -> str | None:
    """Why a name is internal by definition (None for an ordinary public name)."""
    name = host.rstrip(".").lower()
    for suffix in _INTERNAL_SUFFIXES:
        if name == suffix or name.endswith("." + suffix):
            return f"an internal name (*.{suffix})"
    if "." not in name:
        return "a single-label name (completed by the local search domains)"
    return None


class OutboundPolicy:
    """Which targets outbound requests may reach: every public address, plus the allow-listed networks."""

    def __init__(self, allowed_networks: str | Iterable[str] = ()) -> None:
        self.allowed = parse_networks(allowed_networks)

    def _allow_listed(self, address: IPAddress) -> bool:
        inner = _embedded_ipv4(address)
        return any(address in net or (inner is not None and inner in net) for net in self.allowed)

    def refusal(self, address: IPAddress) -> str | None:
        """Why a connection to this address is refused; None when it may be made."""
        if self._allow_listed(address):
            return None
        return internal_reason(address)

    def refusal_for_url(self, url: str) -> str | None:
        """Why a configured target URL is refused (the reason a 422 carries); None when it may be saved.

        Checks what can be known without a lookup; the connection checks the resolved addresses again."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            return f"not a valid URL ({exc})"
        if parsed.scheme not in _SCHEMES:
            return "must be an http:// or https:// URL"
        host = parsed.host
        if not host:
            return "must name a host"
        address = literal_address(host)
        if address is not None:
            reason = self.refusal(address)
            return f"{host} is {reason}; requests to internal addresses are not allowed" if reason else None
        reason = internal_name(host)
        if reason and not self.allowed:  # with an allow-list, the connection decides from what it resolves to
            return f"{host} is {reason}; requests to internal addresses are not allowed"
        return None

    async def vetted_addresses(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """Resolve `host` once and return its addresses, each of them checked; raise ForbiddenDestination if
        any is internal (one bad answer among good ones is still a rebinding attempt)."""
        literal = literal_address(host) is not None
        by_name = None if literal else internal_name(host)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for raw in addresses:
            address = ipaddress.ip_address(raw.split("%", 1)[0])
            reason = self.refusal(address)
            if reason is None and by_name is not None and not self._allow_listed(address):
                reason = by_name
            if reason is not None:
                log.warning("outbound request to %s refused: it resolves to %s (%s)", host, raw, reason)
                raise ForbiddenDestination(host, f"it is {reason}" if literal else f"it resolves to {reason}")
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        return addresses

    def transport(self, **kwargs: Any) -> httpx.AsyncHTTPTransport:
        """An httpx transport whose every connection goes through `vetted_addresses` (no proxy: a proxy
        would connect on our behalf to an address nobody checked)."""
        if "proxy" in kwargs:
            raise ValueError("a guarded transport cannot use a proxy")
        transport = httpx.AsyncHTTPTransport(**kwargs)
        pool = getattr(transport, "_pool", None)
        # httpx builds the httpcore pool but takes no network backend; swap it in before any connection exists.
        if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
            raise RuntimeError("this httpx version builds its pool differently: the outbound guard cannot attach")
        pool._network_backend = _VettedNetwork(self, pool._network_backend)
        return transport

    def client(self, *, limits: httpx.Limits | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client for tenant-configured targets: guarded transport, no proxies or .netrc from the
        environment, redirects not followed (a redirect is a new target nobody configured)."""
        transport = self.transport(limits=limits) if limits is not None else self.transport()
        return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False, **kwargs)


class _VettedNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the name resolved and checked here, then the socket opened to the
    checked address (the inner backend gets an address, so it resolves nothing)."""

    def __init__(self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self.policy = policy
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.policy.vetted_addresses(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # the next address of the name, as a resolver-driven connect would try
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise ForbiddenDestination(path, "a unix socket is local by definition")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
