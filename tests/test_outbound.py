"""The outbound guard (dunning_kit.outbound): internal targets are refused when configured and again when a
connection is opened, after the name is resolved, and the connection goes to the address that was checked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from fastapi import FastAPI, Request

from dunning_kit.devfakes.asgi_server import AsgiServer
from dunning_kit.devfakes.dns import FakeDns
from dunning_kit.outbound import ForbiddenDestination, OutboundPolicy

# Every form of an internal target the issue names, and a few more the resolver reads the same way.
INTERNAL_TARGETS = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://localhost./hook",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/computeMetadata/v1/",
    "http://10.0.0.5/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0:8000/hook",
    "http://0/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://0x7f.0.0.1/hook",
    "http://0x7f.1/hook",
    "http://127.1/hook",
    "http://0177.0.0.1/hook",
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",
    "http://[0:0:0:0:0:ffff:7f00:1]/hook",
    "http://[::127.0.0.1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://224.0.0.1/hook",
    "http://[ff02::1]/hook",
    "http://kubernetes.default.svc.cluster.local/api",
    "ftp://example.com/hook",
    "file:///etc/passwd",
]
PUBLIC_TARGETS = [
    "https://hooks.acme.example/dunning",
    "https://quickbooks.api.intuit.com/v3",
    "https://8.8.8.8/hook",
    "http://[2001:4860:4860::8888]/hook",
]


@pytest.mark.parametrize("url", INTERNAL_TARGETS)
def test_every_internal_target_form_is_refused_when_configured(url: str) -> None:
    assert OutboundPolicy().refusal_for_url(url), url


@pytest.mark.parametrize("url", PUBLIC_TARGETS)
def test_public_targets_may_be_configured(url: str) -> None:
    assert OutboundPolicy().refusal_for_url(url) is None


def test_the_allow_list_admits_only_its_own_networks() -> None:
    dev = OutboundPolicy("127.0.0.0/8,::1/128")
    assert dev.refusal_for_url("http://127.0.0.1:9000/hook") is None
    assert dev.refusal_for_url("http://2130706433:9000/hook") is None
    assert dev.refusal_for_url("http://[::ffff:127.0.0.1]:9000/hook") is None
    assert dev.refusal_for_url("http://169.254.169.254/latest/meta-data/")
    assert dev.refusal_for_url("http://10.0.0.5/hook")


# ------------------------------------------------------------------ at connect time, after resolution


class Receiver:
    """A local HTTP server recording what reaches it (the 'internal service' of these tests)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST"])
        async def anything(path: str, request: Request) -> dict[str, str]:
            self.requests.append({"path": path, "host": request.headers.get("host", "")})
            return {"ok": "yes"}

        self.server = AsgiServer(app)

    @property
    def port(self) -> int:
        return self.server.port


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.server.start()
    yield r
    await r.server.stop()


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(receiver: Receiver) -> None:
    url = f"http://hooks.acme.example:{receiver.port}/hook"
    policy = OutboundPolicy()
    assert policy.refusal_for_url(url) is None, "a public-looking name passes the configuration check"
    with FakeDns({"hooks.acme.example": ["127.0.0.1"]}):
        async with policy.client(timeout=5) as http:
            with pytest.raises(ForbiddenDestination, match="loopback"):
                await http.post(url, json={"secret": "planted"})
    assert receiver.requests == []


async def test_one_internal_answer_among_public_ones_is_refused(receiver: Receiver) -> None:
    with FakeDns({"hooks.acme.example": ["93.184.216.34", "127.0.0.1"]}):
        async with OutboundPolicy().client(timeout=5) as http:
            with pytest.raises(ForbiddenDestination):
                await http.post(f"http://hooks.acme.example:{receiver.port}/hook")
    assert receiver.requests == []


async def test_numeric_forms_are_refused_at_connect_time_too(receiver: Receiver) -> None:
    async with OutboundPolicy().client(timeout=5) as http:
        for host in ("127.0.0.1", "2130706433", "0x7f.1", "127.1", "[::ffff:127.0.0.1]"):
            with pytest.raises(ForbiddenDestination):
                await http.get(f"http://{host}:{receiver.port}/hook")
    assert receiver.requests == []


async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(receiver: Receiver) -> None:
    # Rebinding: the answer checked is the one connected to; the name is not handed to a resolver again (a
    # second lookup would get the internal address, and it would not have been checked).
    with FakeDns() as dns:
        dns.answer("erp.acme.example", ["127.0.0.1"], ["10.9.9.9"])
        async with OutboundPolicy("127.0.0.0/8").client(timeout=5) as http:
            response = await http.get(f"http://erp.acme.example:{receiver.port}/v3/company")
    assert response.status_code == 200
    assert receiver.requests == [{"path": "v3/company", "host": f"erp.acme.example:{receiver.port}"}]
    assert dns.lookups == ["erp.acme.example"], "one lookup, by the guard"


async def test_the_allow_list_lets_local_fakes_through(receiver: Receiver) -> None:
    async with OutboundPolicy("127.0.0.0/8,::1/128").client(timeout=5) as http:
        assert (await http.get(f"{receiver.server.base_url}/hook")).status_code == 200
    assert len(receiver.requests) == 1


def test_a_bad_allow_list_entry_stops_the_service_from_starting() -> None:
    from notifier.settings import Settings

    with pytest.raises(ValueError, match="nope"):
        Settings(outbound_allowed_networks="127.0.0.0/8,nope")
