"""Run migrations: `python -m dunning_kit.migrate <service>|all` with DATABASE_URL (and DATABASE_SCHEMA) set.

Kubernetes runs this as a Job before each rollout; `make migrate` runs it for all four services.
"""

from __future__ import annotations

import argparse
import os

from dunning_kit.migrations import MIGRATION_LOCK_TIMEOUT_MS, upgrade
from dunning_kit.services import SERVICES, spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", help="a service name, or `all`")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--lock-timeout-ms",
        type=int,
        default=int(os.environ.get("MIGRATION_LOCK_TIMEOUT_MS", MIGRATION_LOCK_TIMEOUT_MS)),
        help="longest wait for one lock before the migration fails (env MIGRATION_LOCK_TIMEOUT_MS; 0 = forever)",
    )
    args = parser.parse_args()
    if not args.database_url:
        parser.error("set DATABASE_URL or pass --database-url")
    targets = SERVICES if args.service == "all" else (spec(args.service),)
    for s in targets:
        schema = os.environ.get("DATABASE_SCHEMA") if args.service != "all" else None
        upgrade(s.migrations_dir, args.database_url, schema or s.schema, lock_timeout_ms=args.lock_timeout_ms)
        print(f"{s.name}: migrated schema {schema or s.schema}")


if __name__ == "__main__":
    main()
