"""A PostgreSQL that refuses the service (a role it does not know, a database that is not there): readiness is
false and the log has ONE line naming DATABASE_URL without its password, however often the service retries; no
crash, no stack trace per retry, and the rest of the service (its HTTP API, /healthz) keeps answering."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.engine import make_url

from dunning_kit.clock import SimulatedClock
from dunning_kit.services import SERVICES, spec
from dunning_kit.testing import BrokerBackend, poll_until, start_service

RETRIES = 3
PASSWORD = "s3cr3t-not-in-logs"


def refused_urls(database_url: str) -> dict[str, tuple[str, str]]:
    url = make_url(database_url)
    return {
        "unknown role": (
            url.set(username="no_such_role", password=PASSWORD).render_as_string(hide_password=False),
            "the role may not log in",
        ),
        "missing database": (
            url.set(database="no_such_database", password=PASSWORD).render_as_string(hide_password=False),
            "the database does not exist",
        ),
    }


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
@pytest.mark.parametrize("fault", ["unknown role", "missing database"])
async def test_a_database_that_refuses_the_service_makes_readiness_false_with_one_line_naming_the_setting(
    service: str, fault: str, database_url: str, broker: BrokerBackend, clock: SimulatedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    refused, cause = refused_urls(database_url)[fault]
    caplog.set_level(logging.INFO)
    svc = await start_service(
        spec(service), database_url=refused, bootstrap_servers=broker.bootstrap_servers, clock=clock,
        wait_for_broker=False,
    )  # fmt: skip
    try:

        async def retried() -> bool:
            return svc.runtime.database_attempts >= RETRIES

        await poll_until(retried, what=f"{RETRIES} attempts to use PostgreSQL")
        async with svc.client(key=None) as http:
            ready = await http.get("/readyz")
            alive = await http.get("/healthz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] is False, ready.text
        assert alive.status_code == 200, "the process stays up: no restart loop"
        said = [r for r in caplog.records if r.levelno >= logging.WARNING and "PostgreSQL" in r.getMessage()]
        assert len(said) == 1, [r.getMessage() for r in said]
        line = said[0].getMessage()
        assert said[0].levelno == logging.ERROR and said[0].exc_info is None, "an error, without a stack trace"
        assert "DATABASE_URL=" in line and cause in line, line
        assert PASSWORD not in line and "***" in line, "the password never reaches the log"
        assert not [r for r in caplog.records if r.exc_info], "no stack trace anywhere while it retries"
    finally:
        await svc.stop()
