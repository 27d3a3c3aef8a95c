"""Regenerate a service's initial migration from its metadata: `python -m dunning_kit.autogen <service>`.

Until the first release each service keeps one initial migration; after it, use `alembic revision`.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from alembic import command

from dunning_kit.embedded import EmbeddedPostgres
from dunning_kit.migrations import alembic_config
from dunning_kit.services import spec


def regenerate(service: str) -> Path:
    s = spec(service)
    target = s.migrations_dir / "versions" / "0001_initial_schema.py"
    target.unlink(missing_ok=True)
    pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="autogen-")) / "data").start()
    try:
        pg.psql("postgres", "CREATE DATABASE autogen")
        cfg = alembic_config(s.migrations_dir, pg.dsn("autogen"), s.schema)
        command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
    finally:
        pg.destroy()
    text = re.sub(r"Create Date: .*\n", "", target.read_text())
    target.write_text(text)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service")
    print(f"wrote {regenerate(parser.parse_args().service)}")


if __name__ == "__main__":
    main()
