"""Fixtures for the notifier's tests: the service alone on real PostgreSQL and the real broker, with a
real SMTP sink and local fakes of Twilio, SendGrid and a print-and-mail API speaking their wire formats."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from dunning_events import topics
from dunning_kit.clock import SimulatedClock
from dunning_kit.devfakes.printmail import FakePrintApi
from dunning_kit.devfakes.sendgrid import FakeSendGrid
from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.devfakes.twilio import FakeTwilio
from dunning_kit.event_testing import OpenReader
from dunning_kit.services import spec
from dunning_kit.testing import RunningService, start_service, wait_until_quiet
from notifier.testing import EventFeed, TopicReader, open_feed

TWILIO_TOKEN = "test-twilio-auth-token"
TWILIO_SID = "AC" + "1" * 32


@dataclass
class Fakes:
    smtp: SmtpSink
    twilio: FakeTwilio
    sendgrid: FakeSendGrid
    printer: FakePrintApi
    letters: Path


@pytest_asyncio.fixture
async def fakes(smtp_sink: SmtpSink, tmp_path: Path) -> AsyncIterator[Fakes]:
    async with (
        FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN) as twilio,
        FakeSendGrid(api_key="SG.test") as sendgrid,
        FakePrintApi() as printer,
    ):
        yield Fakes(smtp_sink, twilio, sendgrid, printer, tmp_path / "letters")


@pytest.fixture
def notifier_overrides() -> dict[str, Any]:
    return {}


def settings_for(fakes: Fakes, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "smtp_host": fakes.smtp.host,
        "smtp_port": fakes.smtp.port,
        "twilio_base_url": fakes.twilio.base_url,
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": TWILIO_TOKEN,
        "twilio_from_number": "+15005550006",
        "sendgrid_api_base_url": fakes.sendgrid.base_url,
        "sendgrid_api_key": "SG.test",
        "sendgrid_webhook_public_key": fakes.sendgrid.public_key,
        "print_api_base_url": fakes.printer.base_url,
        "print_api_key": "test_print_key",
        "letter_drop_folder": fakes.letters,
        "promise_tracker_public_url": "http://promises.example",
        "dev_mode": True,
        **extra,
    }


StartNotifier = Callable[..., Any]


@pytest_asyncio.fixture
async def start_notifier(
    database_url: str, broker: Any, clock: SimulatedClock, fakes: Fakes, notifier_overrides: dict[str, Any]
) -> AsyncIterator[StartNotifier]:
    """Start (another) notifier instance on the test's database and broker; all are stopped at the end."""
    running: list[RunningService] = []

    async def start(**extra: Any) -> RunningService:
        svc = await start_service(
            spec("notifier"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
            overrides=settings_for(fakes, {**notifier_overrides, **extra}),
        )  # fmt: skip
        running.append(svc)
        return svc

    yield start
    for svc in reversed(running):
        await svc.stop()


@pytest_asyncio.fixture
async def notifier(start_notifier: StartNotifier) -> RunningService:
    return await start_notifier()  # type: ignore[no-any-return]


@pytest_asyncio.fixture
async def feed(broker: Any, clock: SimulatedClock) -> AsyncIterator[EventFeed]:
    async with await open_feed(broker.bootstrap_servers, clock) as f:
        yield f


@pytest_asyncio.fixture
async def notifications(notifier: RunningService, topic_reader: OpenReader) -> TopicReader:
    return await topic_reader(topics.NOTIFICATIONS)


@pytest.fixture
def quiet(notifier: RunningService) -> Callable[[], Any]:
    async def wait() -> None:
        await wait_until_quiet([notifier.runtime])

    return wait
