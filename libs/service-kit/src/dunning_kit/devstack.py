"""`make up`: the whole platform on one machine with embedded defaults; Ctrl-C (or `make down`) stops it.

Starts (unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS point elsewhere) an embedded PostgreSQL and an
embedded Tansu broker, runs every service's migrations, then the five services (insights, the read model, with
the others), a local SMTP sink, a fake Twilio and the workspace's development identity provider (`python -m
workspace.dev_idp`, its people from dev_secrets.DEV_IDP_USERS), and prints where each listens and who may sign
in. State lives under .run/ (delete it for a clean start).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dunning_kit.auth import hash_key
from dunning_kit.dev_secrets import DEV_API_KEYS, DEV_IDP_USERS
from dunning_kit.embedded import EmbeddedBroker, EmbeddedPostgres, wait_for_port
from dunning_kit.migrations import upgrade
from dunning_kit.outbound import LOOPBACK_NETWORKS
from dunning_kit.services import REPO_ROOT, SERVICES

RUN_DIR = Path(os.environ.get("DUNNING_RUN_DIR", REPO_ROOT / ".run"))
DEV_KEYS = DEV_API_KEYS
DEMO_SEGMENT = "demo"  # the quick start's customer is in it (README)
# The services whose personal-data piece ledger-sync's export gathers (its in-cluster default names the same three);
# insights, a read model rebuilt from the stream, serves none.
PERSONAL_DATA_PEERS = ("policy-engine", "notifier", "promise-tracker")
# The services insights' backfill reads (their export APIs); the workspace, which exports nothing, is not one.
EXPORTERS = ("ledger-sync", "policy-engine", "notifier", "promise-tracker")
EMBEDDED_KAFKA_SECURITY = {
    "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    **{
        f"KAFKA_{name}": ""
        for name in ("SASL_MECHANISM", "SASL_USERNAME_FILE", "SASL_PASSWORD_FILE", "SSL_CA_FILE", "SSL_CERT_FILE",
                     "SSL_KEY_FILE")
    },
}  # fmt: skip


@dataclass
class Ports:
    postgres: int = int(os.environ.get("DEV_PG_PORT", "55432"))
    kafka: int = int(os.environ.get("DEV_KAFKA_PORT", "19092"))
    smtp: int = int(os.environ.get("DEV_SMTP_PORT", "1025"))
    twilio: int = int(os.environ.get("DEV_TWILIO_PORT", "8025"))
    base: int = int(os.environ.get("DEV_HTTP_BASE_PORT", "8001"))
    # The workspace's development identity provider; 0: the port after the services' (8007 with the defaults).
    idp: int = int(os.environ.get("DEV_IDP_PORT", "0"))


def migrations_fingerprint(migrations_dir: Path) -> str:
    """What a service's schema is built from: the text of its migration files."""
    digest = hashlib.sha256()
    for path in sorted((migrations_dir / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _say(msg: str) -> None:
    print(msg, flush=True)


class DevStack:
    def __init__(
        self, ports: Ports, extra_env: dict[str, dict[str, str]] | None = None, run_dir: Path = RUN_DIR
    ) -> None:
        self.ports = ports
        self.run_dir = run_dir
        self.extra_env = extra_env or {}
        self.pg: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.service_env: dict[str, dict[str, str]] = {}
        self.urls: dict[str, str] = {}
        self.logs = run_dir / "logs"

    # ------------------------------------------------------------------ infrastructure

    def database_url(self) -> str:
        external = os.environ.get("DATABASE_URL")
        if external:
            _say(f"PostgreSQL: external ({external.split('@')[-1]})")
            return external
        self.pg = EmbeddedPostgres(self.run_dir / "pg", port=self.ports.postgres).start()
        if "dunning" not in self.pg.psql("postgres", "SELECT datname FROM pg_database").split():
            self.pg.psql("postgres", "CREATE DATABASE dunning")
        return self.pg.dsn("dunning")

    def reset_schemas_whose_migrations_changed(self) -> None:
        """Until the first release each service keeps ONE initial migration, rewritten when its tables change;
        alembic sees the same revision and would leave an old development schema as it is (every request then
        fails on a missing table). So the embedded database remembers what each schema was built from, and a
        schema built from another version of the migrations is dropped and rebuilt, saying so.

        The services' data is one history (each learnt the others' facts from events, and the embedded broker keeps
        none across runs), so when one schema is rebuilt every schema is: a policy engine that lost its cases next
        to a ledger that kept its invoices would never hear of them again (a repeated create is no change, so no
        event)."""
        assert self.pg is not None
        known_file = self.run_dir / "schema-fingerprints.json"
        known: dict[str, str] = json.loads(known_file.read_text()) if known_file.exists() else {}
        existing = set(self.pg.psql("dunning", "SELECT nspname FROM pg_namespace").split())
        now = {s.name: migrations_fingerprint(s.migrations_dir) for s in SERVICES}
        changed = [s.name for s in SERVICES if s.schema in existing and known.get(s.name) != now[s.name]]
        if changed:
            _say(f"{', '.join(changed)}: migration changed since .run/ was made; every service's development data is "
                 "reset (they share one history)")  # fmt: skip
            for s in SERVICES:
                if s.schema in existing:
                    self.pg.psql("dunning", f'DROP SCHEMA "{s.schema}" CASCADE')
        known_file.write_text(json.dumps(now, indent=2))

    def bootstrap_servers(self) -> str:
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if external:
            _say(f"Kafka: external ({external})")
            return external
        self.broker = EmbeddedBroker(port=self.ports.kafka, log_file=self.logs / "broker.log").start()
        return self.broker.bootstrap_servers

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        proc = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
        self.children.append((name, proc))
        return proc

    # ------------------------------------------------------------------ lifecycle

    def up(self, timeout: float = 90.0) -> dict[str, str]:
        started = time.monotonic()
        self.logs.mkdir(parents=True, exist_ok=True)
        db_url = self.database_url()
        kafka = self.bootstrap_servers()
        if self.pg is not None:
            self.reset_schemas_whose_migrations_changed()
        _say("migrating: " + ", ".join(s.name for s in SERVICES))
        for s in SERVICES:
            upgrade(s.migrations_dir, db_url, s.schema)

        self.spawn("smtp-sink", ["-m", "dunning_kit.devfakes.smtp_sink", "--port", str(self.ports.smtp),
                                 "--maildir", str(self.run_dir / "mail")], {})  # fmt: skip
        twilio_url = ""
        if importlib.util.find_spec("dunning_kit.devfakes.twilio") is not None:
            self.spawn("fake-twilio", ["-m", "dunning_kit.devfakes.twilio", "--port", str(self.ports.twilio)], {})
            twilio_url = f"http://127.0.0.1:{self.ports.twilio}"

        api_keys = ",".join(f"{t}:{scope}:{hash_key(k)}" for k, (t, scope) in DEV_KEYS.items())
        all_urls = {s.name: f"http://127.0.0.1:{self.ports.base + n}" for n, s in enumerate(SERVICES)}
        idp_port, idp_url = self.ports.idp or self.ports.base + len(SERVICES), ""
        if "workspace" in all_urls and importlib.util.find_spec("workspace.dev_idp") is not None:
            # Before the workspace: staff sign in there. It registers the workspace's callback and signed-out page.
            idp_url = f"http://127.0.0.1:{idp_port}"
            # On the workspace's clock (a simulation's CLOCK_FILE): its tokens are checked against that clock.
            clock = {k: v for k, v in self.extra_env.get("workspace", {}).items() if k == "CLOCK_FILE"}
            self.spawn("dev-idp", ["-m", "workspace.dev_idp", "--port", str(idp_port),
                                   "--workspace-url", all_urls["workspace"]], clock)  # fmt: skip
        urls: dict[str, str] = {}
        for offset, s in enumerate(SERVICES):
            port = self.ports.base + offset
            urls[s.name] = f"http://127.0.0.1:{port}"
            env = {
                "DATABASE_URL": db_url,
                "KAFKA_BOOTSTRAP_SERVERS": kafka,
                "HTTP_HOST": "127.0.0.1",
                "HTTP_PORT": str(port),
                "API_KEYS": api_keys,
                "LOG_FORMAT": os.environ.get("LOG_FORMAT", "json"),
                "PUBLIC_BASE_URL": urls[s.name],
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(self.ports.smtp),
                # Development secrets (the signing key's and Twilio token's defaults, the dev API keys) are
                # refused at start outside DEV_MODE: the dev stack says explicitly that it is one.
                "DEV_MODE": "true",
                "PROMISE_TRACKER_PUBLIC_URL": f"http://127.0.0.1:{self.ports.base + 3}",
                # Development only: tenant-configured targets (webhooks, ERP URLs) may be local fakes.
                "OUTBOUND_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
            }
            if twilio_url:
                env["TWILIO_BASE_URL"] = twilio_url
            if self.broker is not None:
                # The embedded broker speaks plaintext: Kafka security settings in the shell (meant for an external
                # cluster) must not reach the services. With KAFKA_BOOTSTRAP_SERVERS set they pass through as they are.
                env.update(EMBEDDED_KAFKA_SECURITY)
            if s.name == "ledger-sync":  # its personal-data export gathers the others' pieces
                env["PERSONAL_DATA_PEERS"] = ",".join(
                    f"{p.name}=http://127.0.0.1:{self.ports.base + n}"
                    for n, p in enumerate(SERVICES)
                    if p.name in PERSONAL_DATA_PEERS
                )
            if s.name == "insights":  # its backfill reads the others' export APIs, as tenant acme
                env["INSIGHTS_EXPORT_URLS"] = ",".join(
                    f"{p.name}=http://127.0.0.1:{self.ports.base + n}"
                    for n, p in enumerate(SERVICES)
                    if p.name in EXPORTERS
                )
                env["INSIGHTS_EXPORT_KEYS"] = "acme=dev-acme-key"
            if s.name == "workspace":  # staff sign in at the dev IdP; pages call the others with acme's admin key
                env["WORKSPACE_PUBLIC_URL"] = urls[s.name]
                env["WORKSPACE_API_KEYS"] = "acme=dev-acme-admin"
                env["WORKSPACE_COOKIE_SECURE"] = "false"  # plain http on a developer machine
                env["WORKSPACE_SERVICE_URLS"] = ",".join(f"{n}={u}" for n, u in all_urls.items() if n != s.name)
                if idp_url:
                    env["WORKSPACE_OIDC_ISSUER"] = idp_url
            env.update(self.extra_env.get(s.name, {}))
            self.service_env[s.name] = env
            self.start_service(s.name)
        self.urls = urls

        wait_for_port(self.ports.smtp, 30)
        deadline = started + timeout
        if idp_url:  # it starts with the services, so it shares their deadline
            wait_for_port(idp_port, max(1.0, deadline - time.monotonic()))
        for name, url in urls.items():
            self._wait_ready(name, url, deadline)
        seed_demo_policy(urls["policy-engine"])
        # Written before the banner, so whoever reads the banner finds the addresses.
        (self.run_dir / "urls.json").write_text(json.dumps(urls))
        _say(f"\nall services ready in {time.monotonic() - started:.1f}s\n")
        rows = [(name, url, f"{url}/docs") for name, url in urls.items()]
        rows.append(("smtp sink", f"smtp://127.0.0.1:{self.ports.smtp}", f"mail stored in {self.run_dir / 'mail'}"))
        if twilio_url:
            rows.append(("fake twilio", twilio_url, "Twilio REST API stand-in"))
        if idp_url:
            rows.append(("dev idp", idp_url, "the workspace's OpenID Connect provider (development only)"))
        if self.pg:
            rows.append(("postgresql", self.pg.dsn("dunning"), "embedded"))
        if self.broker:
            rows.append(("kafka", self.broker.bootstrap_servers, "embedded Tansu (memory storage)"))
        else:
            security = os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
            rows.append(("kafka", kafka, f"external ({security})"))
        for name, where, note in rows:
            _say(f"  {name:<16} {where:<48} {note}")
        _say(f"\n  API keys (tenant acme): dev-acme-key (api), dev-acme-admin (admin); logs in {self.logs}")
        _say(f"  tenant acme's customers in segment '{DEMO_SEGMENT}' get policy 'demo': every day of the week")
        _say(f"  sent messages: {urls['notifier']}/dev/outbox")
        if idp_url:
            people = ", ".join(f"{user}/{password} ({role})" for user, (password, role) in DEV_IDP_USERS.items())
            _say(f"  workspace: {urls['workspace']} - sign in as {people}")
        _say(f"  figures: {urls['insights']}/v1/figures/aging, /v1/figures/dso (the read model of the stream)")
        _say("  Ctrl-C or `make down` stops everything.")
        return urls

    # ------------------------------------------------------------------ one service (fault tests use these)

    def start_service(self, name: str) -> subprocess.Popen[bytes]:
        return self.spawn(name, ["-m", "dunning_kit.serve", name], self.service_env[name])

    def process(self, name: str) -> subprocess.Popen[bytes]:
        for child_name, proc in reversed(self.children):
            if child_name == name:
                return proc
        raise KeyError(name)

    def stop_service(self, name: str, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal one service and wait for it to exit; returns its exit code."""
        proc = self.process(name)
        proc.send_signal(sig)
        code = proc.wait(timeout)
        self.children = [(n, p) for n, p in self.children if p is not proc]
        return code

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        self._wait_ready(name, self.urls[name], time.monotonic() + timeout)

    def _wait_ready(self, name: str, url: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            for child_name, proc in self.children:
                if proc.poll() is not None:
                    raise RuntimeError(f"{child_name} exited with {proc.returncode}; see {self.logs / child_name}.log")
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        _say(f"  {name} ready")
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"{name} was not ready at {url}/readyz in time")

    def down(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(self.children):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                _say(f"  {name} did not stop in 30s; killing it")
                proc.kill()
        self.children.clear()
        if self.broker:
            self.broker.stop()
        if self.pg:
            self.pg.stop()
        _say("stopped")


def seed_demo_policy(policy_engine_url: str) -> None:
    """Give the dev tenant a policy `demo` for its customers in segment `demo`: the built-in default sequence
    with business days and holidays switched off, so the quick start shows a reminder on a Saturday too.

    Only the calendar is relaxed: the contact window (08:00-21:00 in the debtor's local time) and everything
    else is the default's; the quick start picks a customer time zone where it is daytime. Created through the
    public admin API, like any tenant's policy; an existing `demo` (an earlier run, or the developer's own
    edits) is left alone.
    """
    auth = {"Authorization": "Bearer dev-acme-admin"}
    with urllib.request.urlopen(
        urllib.request.Request(f"{policy_engine_url}/v1/policies/default", headers=auth), timeout=10
    ) as resp:
        default = json.loads(resp.read())
    default.pop("version", None)
    demo = {
        **default,
        "id": "demo",
        "name": "Demo: the default sequence on every day of the week",
        "description": f"Seeded by `make up` for tenant acme's segment {DEMO_SEGMENT!r} (development only).",
        "priority": 10,
        "applies_to": {"segments": [DEMO_SEGMENT]},
        "calendar": {**default["calendar"], "business_days_only": False, "holidays": False},
    }
    request = urllib.request.Request(
        f"{policy_engine_url}/v1/policies",
        data=json.dumps(demo).encode(),
        headers={**auth, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            _say(f"  policy 'demo' created for tenant acme, segment {DEMO_SEGMENT!r}")
    except urllib.error.HTTPError as exc:
        if exc.code != 409:  # 409: it exists already (state under .run/ survives restarts)
            raise RuntimeError(f"seeding the demo policy failed: {exc.code} {exc.read().decode()}") from None


def cmd_up(args: argparse.Namespace) -> int:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    pidfile = RUN_DIR / "devstack.pid"
    stack = DevStack(Ports())
    stopping = {"now": False}

    def on_signal(signum: int, _frame: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    pidfile.write_text(str(os.getpid()))
    try:
        stack.up(timeout=args.timeout)
        while not stopping["now"]:
            for name, proc in stack.children:
                if proc.poll() is not None:
                    _say(f"{name} exited with {proc.returncode}; stopping (see {stack.logs / name}.log)")
                    stopping["now"] = True
            time.sleep(0.5)
        _say("\nstopping...")
        return 0
    except Exception as exc:
        _say(f"make up failed: {exc}")
        return 1
    finally:
        stack.down()
        pidfile.unlink(missing_ok=True)


def cmd_down(_args: argparse.Namespace) -> int:
    pidfile = RUN_DIR / "devstack.pid"
    if not pidfile.exists():
        _say("nothing is running (no .run/devstack.pid)")
        return 0
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        return 0
    for _ in range(120):
        if not pidfile.exists():
            _say("stopped")
            return 0
        time.sleep(0.5)
    _say("the stack did not stop within 60s")
    return 1


def cmd_migrate(_args: argparse.Namespace) -> int:
    stack = DevStack(Ports())
    try:
        url = stack.database_url()
        for s in SERVICES:
            upgrade(s.migrations_dir, url, s.schema)
            _say(f"{s.name}: migrated")
    finally:
        if stack.pg:
            stack.pg.stop()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything and wait for Ctrl-C")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds allowed for every service to be ready")
    sub.add_parser("down", help="stop a running `up`")
    sub.add_parser("migrate", help="run every service's migrations (embedded DB unless DATABASE_URL is set)")
    args = parser.parse_args()
    raise SystemExit({"up": cmd_up, "down": cmd_down, "migrate": cmd_migrate}[args.command](args))


if __name__ == "__main__":
    main()
