"""Run one service in production mode: `python -m dunning_kit.serve <service>` (or `python -m <package>`).

Settings come from the environment; time from the system clock. SIGTERM drains (see runtime.py). Outside
DEV_MODE a start with empty or development secrets is refused (exit 78, see dev_secrets.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Iterator

import uvicorn

from dunning_kit.clock import clock_from_settings
from dunning_kit.dev_secrets import refuse_development_secrets
from dunning_kit.logs import configure_logging
from dunning_kit.services import spec
from dunning_kit.telemetry import configure_tracing


class _DrainingServer(uvicorn.Server):
    """uvicorn re-raises a captured SIGTERM after shutdown (exit status 143); we own the signals instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        if self.should_exit:
            self.force_exit = True  # a second signal: stop waiting for open connections
        self.should_exit = True


# Batches (a consumer's thousand events, a timer's thousand cases, a dispatch of emails) allocate hundreds of
# thousands of short-lived containers. With CPython's default thresholds (700, 10, 10) the cyclic collector
# ran so often, and its older-generation passes re-walked the large immortal heap the imports leave behind
# (SQLAlchemy, pydantic, FastAPI, aiokafka), that it took up to 30% of a service's CPU (measured on the
# notifier and the policy engine). Objects alive after start-up are frozen out of its sight and collections
# come less often; cyclic garbage is still collected.
GC_THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(service: str) -> None:
    asyncio.run(_serve(service))


async def _serve(service: str) -> None:
    # The runtime is built inside the running loop: aiokafka's clients refuse to be created outside one.
    s = spec(service)
    module = s.bootstrap()  # imports the whole service, so the freeze below covers its modules
    settings = module.Settings()
    if settings.gc_tuning:
        tune_gc()
    configure_logging(s.name, settings.log_level, settings.log_format)
    # Before anything connects or listens: outside DEV_MODE, development secrets stop the start here.
    refuse_development_secrets(settings, s.name)
    configure_tracing(s.name)
    runtime = module.build_runtime(settings, clock_from_settings(settings.clock_file))
    app = module.create_app(runtime)
    logging.getLogger("dunning").info("%s listening on %s:%d", s.name, settings.http_host, settings.http_port)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    server = _DrainingServer(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # SIGTERM starts the drain (lifespan shutdown: stop consuming, finish the batch, flush the outbox);
        # the process then exits 0, which Kubernetes reads as a clean stop.
        loop.add_signal_handler(sig, server.request_exit)
    await server.serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", help="ledger-sync | policy-engine | notifier | promise-tracker")
    serve(parser.parse_args().service)


if __name__ == "__main__":
    main()
