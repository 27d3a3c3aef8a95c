"""OS processes for the bench modules: the CPU a process used, and services run as replica processes.

Wall-clock figures are noisy on a shared machine; CPU per unit of work is not, so the modules report both.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import httpx

from dunning_kit.clock import set_file_clock
from dunning_kit.embedded import free_port
from dunning_kit.testing import poll_until

from .harness import BenchContext


def _stat(pid: int | str) -> list[str]:
    # The fields after the command name, which may itself hold spaces or parentheses.
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (Linux /proc); 0 for one that has gone (or pid 0, a
    provider process that never started), so a meter never fails the figure it annotates."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(ctx: BenchContext) -> float | None:
    """CPU of the embedded PostgreSQL so far: the postmaster and its backends, whose CPU is theirs, not the
    postmaster's (None when the server is not embedded)."""
    server = getattr(ctx.pg, "embedded_server", None)
    if server is None:
        return None
    postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat(entry)
            if int(entry) == postmaster or int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            continue  # a backend that exited while we read it
    return total


def broker_cpu_seconds(ctx: BenchContext) -> float | None:
    """CPU of the embedded broker process so far (None when it is not embedded)."""
    broker = getattr(ctx.broker, "embedded_broker", None)
    proc = broker._proc if broker is not None else None
    return cpu_seconds(proc.pid) if proc is not None else None


class ServiceReplicas:
    """`count` replicas of a service, each its own OS process (`python -m <module>`, as its pods run it), on
    one database and broker: the bench's client and readers then do not share the service's interpreter.

    With `clock`, the replicas share a simulated clock through CLOCK_FILE (`.clock_file`; move it with
    set_file_clock). Each replica logs to a file, whose tail is raised when a replica exits early.
    """

    def __init__(
        self,
        module: str,
        count: int,
        *,
        database_url: str,
        bootstrap_servers: str,
        env: dict[str, str],
        clock: datetime | None = None,
    ) -> None:
        self.module = module
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"bench-{module}-"))
        self.clock_file = self.run_dir / "clock"
        if clock is not None:
            set_file_clock(self.clock_file, clock)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        for i in range(count):
            port = free_port()
            replica_env = {
                **os.environ,
                "DATABASE_URL": database_url,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
                "HTTP_HOST": "127.0.0.1",
                "HTTP_PORT": str(port),
                "DEV_MODE": "true",  # the bench runs on the development defaults (signing key, Twilio token)
                **({"CLOCK_FILE": str(self.clock_file)} if clock is not None else {}),
                **env,
            }
            with self._log(i).open("wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", module], env=replica_env, stdout=out, stderr=subprocess.STDOUT
                    )
                )
            self.urls.append(f"http://127.0.0.1:{port}")

    def _log(self, i: int) -> Path:
        return self.run_dir / f"replica-{i}.log"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu(self) -> float:
        """CPU seconds all replicas have used so far."""
        return sum(cpu_seconds(pid) for pid in self.pids)

    def check_alive(self) -> None:
        """Raise, with the tail of its log, if a replica has exited: waiting on it would only time out."""
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                log = self._log(i).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"a {self.module} replica exited with {proc.returncode}:\n{log}")

    async def wait_until(self, path: str, timeout: float, what: str, interval: float = 0.2) -> None:
        """Every replica answers `path` (/readyz, /quietz) with 200."""
        async with httpx.AsyncClient(timeout=5) as http:
            last: list[str] = []  # what the last replica that was not ok answered, for the timeout's message

            async def all_ok() -> bool:
                self.check_alive()
                for url in self.urls:
                    try:
                        r = await http.get(f"{url}{path}")
                    except httpx.HTTPError:
                        return False  # not listening yet
                    if r.status_code != 200:
                        last[:] = [f"{url}{path} {r.status_code} {r.text[:500]}"]
                        return False
                return True

            try:
                await poll_until(all_ok, timeout=timeout, interval=interval, what=what)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {last[0] if last else 'no answer'}") from None

    async def stop(self) -> None:
        """SIGTERM (a graceful drain, as in a pod), then kill whatever has not exited within a minute."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.to_thread(proc.wait, 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        shutil.rmtree(self.run_dir, ignore_errors=True)
