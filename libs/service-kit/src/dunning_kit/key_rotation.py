"""The key-rotation command every service that stores secrets offers (`python -m <package>.rotate_keys`).

Rotation: put the new key first in DATA_ENCRYPTION_KEYS (the old one stays, after it), roll the pods, run the
command (every secret re-encrypted under the new key, a batch per transaction, plain-text leftovers encrypted),
then remove the old key. Running it twice changes nothing the second time. Exit status 1 when a secret could
not be opened: each is named, none is skipped quietly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_kit.data_keys import DataKeySettingError, DataKeySettings, Keyring, RotationReport
from dunning_kit.db import make_engine, make_sessions
from dunning_kit.services import spec
from dunning_kit.settings import ServiceSettings

ResealAll = Callable[[async_sessionmaker[AsyncSession], Keyring, int], Awaitable[RotationReport]]


async def rotate(settings: ServiceSettings, schema: str, reseal_all: ResealAll, batch_size: int) -> RotationReport:
    assert isinstance(settings, DataKeySettings)
    keyring = Keyring.from_settings(settings)
    engine = make_engine(settings.database_url, settings.database_schema or schema, pool_size=2)
    try:
        report = await reseal_all(make_sessions(engine), keyring, batch_size)
        report.newest_key = keyring.primary_id
        return report
    finally:
        await engine.dispose()


def main(service: str, reseal_all: ResealAll, argv: list[str] | None = None) -> int:
    s = spec(service)
    parser = argparse.ArgumentParser(
        prog=f"python -m {s.package}.rotate_keys",
        description=f"Re-encrypt every secret {s.name} stores under the newest data-encryption key",
    )
    parser.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")
    args = parser.parse_args(argv)
    settings = s.bootstrap().Settings()
    try:
        report = asyncio.run(rotate(settings, s.schema, reseal_all, args.batch_size))
    except DataKeySettingError as exc:
        print(f"{s.name}: {exc}", file=sys.stderr)
        return 2
    for failure in report.failed:
        print(f"{s.name}: {failure}", file=sys.stderr)
    print(f"{s.name}: {report.line()}")
    return 1 if report.failed else 0
