"""Test harness: real PostgreSQL and a real broker, the four services in-process on real sockets,
one shared simulated clock, and `wait_until_quiet` (no due timers, empty outboxes, no consumer lag).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from dunning_events.handler_table import HandlerTable, table_problems, tables_read_by
from dunning_kit.actor import Actor
from dunning_kit.auth import hash_key
from dunning_kit.clock import Clock, SystemClock
from dunning_kit.devfakes.asgi_server import AsgiServer
from dunning_kit.embedded import EmbeddedBroker, EmbeddedPostgres
from dunning_kit.migrations import upgrade
from dunning_kit.outbound import LOOPBACK_NETWORKS
from dunning_kit.runtime import QuietReport, ServiceRuntime
from dunning_kit.services import SERVICES, ServiceSpec
from dunning_kit.services import spec as service_spec

T = TypeVar("T")

# Keys every test stack accepts: two tenants, so isolation tests have someone to try to reach.
TEST_KEYS = {
    "acme-api-key": ("acme", "api"),
    "acme-admin-key": ("acme", "admin"),
    "globex-api-key": ("globex", "api"),
    "globex-admin-key": ("globex", "admin"),
}
TEST_API_KEYS = ",".join(f"{tenant}:{scope}:{hash_key(key)}" for key, (tenant, scope) in TEST_KEYS.items())
TEMPLATE_DB = "dunning_template"
# Consumer session timeout of every consumer the tests start: Tansu keeps a group's join open for half of it, so
# the production 10 s made each service start wait 5 s; 2 s joins in 1 s (Tansu's floor) and still allows a
# test's event loop a 2 s stall before a member is evicted (heartbeats every 200 ms).
TEST_SESSION_TIMEOUT_MS = 2_000


async def poll_until(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Call `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        last = await check()
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")
        await asyncio.sleep(interval)


class PostgresBackend:
    """The session's PostgreSQL server plus a migrated template database every test copies."""

    def __init__(self, server_url: str, admin: Callable[[str, str], str], stop: Callable[[], None]) -> None:
        self.server_url = server_url
        self._admin = admin
        self._stop = stop

    @classmethod
    def embedded(cls) -> PostgresBackend:
        root = Path(tempfile.mkdtemp(prefix="dunning-test-pg-"))
        pg = EmbeddedPostgres(root / "data", fsync=False).start()

        def stop() -> None:
            pg.destroy()
            shutil.rmtree(root, ignore_errors=True)  # every worker of every run made one

        backend = cls(pg.url, pg.psql, stop)
        backend.embedded_server = pg  # type: ignore[attr-defined]
        return backend

    @classmethod
    def containers(cls) -> PostgresBackend:
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:17", driver="asyncpg").start()
        url = container.get_connection_url().rsplit("/", 1)[0]

        def admin(db: str, sql: str) -> str:
            code, out = container.exec(["psql", "-U", container.username, "-d", db, "-Atc", sql])
            if code:
                raise RuntimeError(out.decode())
            return str(out.decode())

        return cls(url, admin, container.stop)

    def sql(self, sql: str, database: str = "postgres") -> str:
        return self._admin(database, sql)

    def url(self, database: str) -> str:
        return f"{self.server_url}/{database}"

    def build_template(self, services: Iterable[ServiceSpec] = SERVICES) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        self.sql(f"CREATE DATABASE {TEMPLATE_DB}")
        for spec in services:
            upgrade(spec.migrations_dir, self.url(TEMPLATE_DB), spec.schema)

    def fresh_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        # FILE_COPY copies the template's files behind one checkpoint: measured 0.1-0.3 s here against 0.4-0.5 s for
        # the default WAL_LOG, which writes every page of the template to the WAL.
        self.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB} STRATEGY FILE_COPY")
        return self.url(name)

    def stop(self) -> None:
        self._stop()


class BrokerBackend:
    def __init__(self, bootstrap_servers: str, stop: Callable[[], None], restart: Callable[[], None] | None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.stop = stop
        self.restart = restart

    @classmethod
    def embedded(cls) -> BrokerBackend:
        broker = EmbeddedBroker().start()
        backend = cls(broker.bootstrap_servers, broker.stop, broker.restart)
        backend.embedded_broker = broker  # type: ignore[attr-defined]
        return backend

    @classmethod
    def containers(cls) -> BrokerBackend:
        from testcontainers.kafka import KafkaContainer

        container = KafkaContainer().start()
        return cls(container.get_bootstrap_server(), container.stop, None)


def use_containers() -> bool:
    return os.environ.get("DUNNING_TEST_BACKEND", "embedded") == "containers"


@dataclass
class RunningService:
    spec: ServiceSpec
    runtime: ServiceRuntime
    app: FastAPI
    server: AsgiServer
    base_url: str

    def client(self, key: str | None = "acme-api-key", **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # Idle connections are dropped before uvicorn's 5 s keep-alive ends them: a request sent on a connection
        # the server is closing at that moment fails with ReadError (seen under the loaded parallel suite).
        kwargs.setdefault("limits", httpx.Limits(keepalive_expiry=2.0))
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30, **kwargs)

    async def stop(self) -> None:
        await self.server.stop()


async def start_service(
    spec: ServiceSpec,
    *,
    database_url: str,
    bootstrap_servers: str,
    clock: Clock,
    overrides: dict[str, Any] | None = None,
    wait_for_broker: bool = True,
) -> RunningService:
    """Build the service through its own composition root and serve it with uvicorn on a free port.

    `wait_for_broker=False`: return once HTTP is served, for tests of a broker the service cannot use."""
    module = spec.bootstrap()
    server = AsgiServer(host="127.0.0.1", lifespan="on")  # its port is reserved from here (asgi_server.py)
    port = server.port
    settings = module.Settings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap_servers,
        http_host="127.0.0.1",
        http_port=port,
        api_keys=TEST_API_KEYS,
        public_base_url=f"http://127.0.0.1:{port}",
        # The fakes of ERPs and webhook receivers listen on loopback: the outbound guard lets them through here
        # (a test of the guard itself overrides this with ""). DEV_MODE as under `make up`: the harness runs on
        # the development secrets (a test of production behaviour overrides it with False). A test may override
        # any of these.
        **{
            "timer_poll_interval": 0.2,
            "outbox_poll_interval": 0.05,
            "kafka_session_timeout_ms": TEST_SESSION_TIMEOUT_MS,
            "outbound_allowed_networks": LOOPBACK_NETWORKS,
            "dev_mode": True,
            **(overrides or {}),
        },
    )
    runtime: ServiceRuntime = module.build_runtime(settings, clock)
    app: FastAPI = module.create_app(runtime)
    await server.start(app)
    running = RunningService(spec, runtime, app, server, server.base_url)
    if wait_for_broker:
        await runtime.wait_started()
        await wait_for_assignment([runtime])
    return running


async def wait_for_assignment(runtimes: Iterable[ServiceRuntime], timeout: float = 30) -> None:
    """Consumers have joined their groups and own partitions (before that, lag is unknown)."""

    async def assigned() -> bool:
        for rt in runtimes:
            for consumer in rt.consumers:
                if await consumer.lag() is None:
                    return False
        return True

    await poll_until(assigned, timeout=timeout, what="consumer group assignment")


async def wait_until_quiet(
    runtimes: Iterable[ServiceRuntime], *, timeout: float = 30.0, settle: int = 2
) -> list[QuietReport]:
    """Wait until no service has due timers, unpublished outbox rows or consumer lag, `settle` polls in a row."""
    rts = list(runtimes)
    streak = 0
    reports: list[QuietReport] = []

    async def quiet() -> bool:
        nonlocal streak, reports
        reports = [await rt.quiet_report() for rt in rts]
        streak = streak + 1 if all(r.quiet for r in reports) else 0
        return streak >= settle

    try:
        await poll_until(quiet, timeout=timeout, interval=0.05, what="the system to be quiet")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {[r for r in reports if not r.quiet]}") from None
    return reports


@dataclass
class Platform:
    """All four services, one database (a schema each), one broker, one simulated clock."""

    clock: Any
    services: dict[str, RunningService] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> RunningService:
        return self.services[name]

    @property
    def runtimes(self) -> list[ServiceRuntime]:
        return [s.runtime for s in self.services.values()]

    async def wait_until_quiet(self, timeout: float = 30.0) -> list[QuietReport]:
        return await wait_until_quiet(self.runtimes, timeout=timeout)

    async def advance(self, **delta: float) -> None:
        """Advance the shared clock, then wait until every consequence has played out."""
        from datetime import timedelta

        await self.wait_until_quiet()
        self.clock.advance(timedelta(**delta))
        await self.wait_until_quiet()

    async def stop(self) -> None:
        # Together: each stop waits out its server's shutdown and its consumers' last poll and leave.
        await asyncio.gather(*(svc.stop() for svc in self.services.values()))


async def start_platform(
    *,
    database_url: str,
    bootstrap_servers: str,
    clock: Clock,
    overrides: dict[str, dict[str, Any]] | None = None,
    only: Iterable[str] | None = None,
) -> Platform:
    platform = Platform(clock=clock)
    wanted = [s for s in SERVICES if not only or s.name in set(only)]
    # Concurrently: each consumer group's first join waits out the broker's rebalance delay.
    results = await asyncio.gather(
        *(
            start_service(
                spec,
                database_url=database_url,
                bootstrap_servers=bootstrap_servers,
                clock=clock,
                overrides=(overrides or {}).get(spec.name),
            )
            for spec in wanted
        ),
        return_exceptions=True,
    )
    for spec, result in zip(wanted, results, strict=True):
        if isinstance(result, RunningService):
            platform.services[spec.name] = result
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        with contextlib.suppress(Exception):
            await platform.stop()
        raise failures[0]
    return platform


async def raw_schema_dump(runtime: ServiceRuntime) -> str:
    """Every row of every table of the service's schema as PostgreSQL prints it: what someone reading the
    database directly would see (the check that a secret or an erased person is not in it)."""
    async with runtime.sessions() as session:
        tables = (
            await session.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": runtime.schema},
            )
        ).scalars()
        rows: list[str] = []
        for table in list(tables):
            query = text(f'SELECT CAST(t AS text) FROM "{runtime.schema}"."{table}" t')
            rows += (await session.execute(query)).scalars().all()
    return "\n".join(rows)


PROBLEM_MEMBERS = ("type", "title", "status", "detail", "instance")


def problem_fields(body: dict[str, Any]) -> list[str]:
    """The fields a validation problem (400/422) names, in order: `errors[].field` (RFC 9457 body)."""
    return [e.get("field") for e in body.get("errors") or ()]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """`response` is an RFC 9457 problem of `status` for its request's path; returns the body."""
    assert response.status_code == status, (status, response.status_code, response.text[:500])
    assert response.headers.get("content-type") == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert set(PROBLEM_MEMBERS) <= body.keys(), body
    assert (body["status"], body["instance"]) == (status, response.request.url.path), body
    assert isinstance(body["type"], str) and isinstance(body["title"], str) and body["title"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    if status in (400, 422) and body["type"] != "about:blank":
        assert body["errors"] and all(isinstance(e["field"], str) and e["reason"] for e in body["errors"]), body
    return body


FAULT_PATH = "/_test/fault"  # a route only the problem tests add: it raises, to provoke the 500
PROBLEM_TEST_BODY_LIMIT = 16_384  # small enough to send a 413 cheaply, large enough for every real body
PROBLEM_TEST_RATE = 2  # /quietz and /metrics: the third call in a minute is a 429


@contextlib.asynccontextmanager
async def service_for_problem_tests(
    name: str, pg_backend: PostgresBackend, clock: Clock, overrides: dict[str, Any] | None = None
) -> AsyncIterator[RunningService]:
    """One service on its own database and broker for a module of problem tests, with a small body limit, a low
    operations rate limit and a route that fails (FAULT_PATH): every error status is cheap to provoke."""
    broker = BrokerBackend.embedded()
    try:
        svc = await start_service(
            service_spec(name),
            database_url=pg_backend.fresh_database(),
            bootstrap_servers=broker.bootstrap_servers,
            clock=clock,
            overrides={
                "max_request_body_bytes": PROBLEM_TEST_BODY_LIMIT,
                "rate_limit_operations_per_minute": PROBLEM_TEST_RATE,
                **(overrides or {}),
            },
        )

        async def fault() -> None:
            raise RuntimeError("password=hunter2 in a message no client may see")

        svc.app.add_api_route(FAULT_PATH, fault, methods=["GET"], include_in_schema=False)
        try:
            yield svc
        finally:
            await svc.stop()
    finally:
        broker.stop()


async def assert_common_problems(svc: RunningService, *, tenant_route: str, admin_route: str) -> None:
    """The statuses the kit itself answers on every service: 401 and 403 (on the given GET routes), 404 (no
    such path), 413 (a body over the default limit posted to `admin_route`), 429 (the operations rate limit)
    and 500 (FAULT_PATH, whose message is not leaked)."""
    async with svc.client(None) as anonymous, svc.client() as api:
        unauthorised = await anonymous.get(tenant_route)
        assert_problem(unauthorised, 401)
        assert unauthorised.headers["www-authenticate"] == "Bearer"
        assert_problem(await api.get(admin_route), 403)
        assert_problem(await api.get("/v1/no-such-thing"), 404)
        too_large = await api.post(admin_route, content=b"x" * (PROBLEM_TEST_BODY_LIMIT + 1))
        assert "larger than" in assert_problem(too_large, 413)["detail"]
        for _ in range(PROBLEM_TEST_RATE):  # the bucket's burst (it refills one call per 30 s)
            await anonymous.get("/quietz")
        limited = await anonymous.get("/quietz")
        assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        failed = assert_problem(await api.get(FAULT_PATH), 500)
        assert "hunter2" not in str(failed) and "RuntimeError" not in str(failed), failed


async def assert_tables_cover_their_topics(service: str, *tables: HandlerTable[Any]) -> None:
    """The service's consumers run exactly these handler tables, and every key of each is a published event type
    on a topic the consumers running it subscribe to (a key on another topic would never be called). The runtime
    is built offline: nothing connects to a database or a broker."""
    module = service_spec(service).bootstrap()
    settings = module.Settings(
        dev_mode=True,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        kafka_bootstrap_servers="127.0.0.1:1",
    )
    runtime: ServiceRuntime = module.build_runtime(settings, SystemClock())
    try:
        read = tables_read_by(runtime.consumers)
        assert {id(table) for table, _ in read} == {id(t) for t in tables}
        for table, topics in read:
            assert table_problems(table, topics) == [], sorted(topics)
    finally:
        await runtime.producer.stop()
        await runtime.engine.dispose()


# People the services' tests act for (dunning_kit.actor), as the workspace would send them.
COLIN = Actor(sub="colin", name="Colin Collector", email="colin@acme.test", role="collector", tenant="acme")
MONA = Actor(sub="mona", name="Mona Manager", email="mona@acme.test", role="manager", tenant="acme")


def acting_as(
    actor: Actor, clock: Clock, *, at: datetime | None = None, lifetime: timedelta = timedelta(minutes=5),
    key: str | None = None,
) -> dict[str, str]:  # fmt: skip
    """The `Dunning-Actor` header naming `actor`, signed at the service's clock with the shipped development key
    (what a service in DEV_MODE trusts); `at`, `lifetime` and `key` make the tokens a test wants refused."""
    from dunning_kit.actor import HEADER, sign, signing_key
    from dunning_kit.dev_secrets import DEV_ACTOR_SIGNING_KEY

    signer = signing_key(key or DEV_ACTOR_SIGNING_KEY)
    return {HEADER: sign(actor, signer, at or clock.now(), lifetime)}
