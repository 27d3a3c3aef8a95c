"""`make bench`: measure the raws, run every bench_*.py module, print ratios, write .bench/results.json."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from dunning_kit.telemetry import configure_tracing
from dunning_kit.testing import BrokerBackend, PostgresBackend

from .harness import BenchContext, Figure
from .raw import measure_raws

ROOT = Path(__file__).resolve().parents[2]


def modules(only: list[str]) -> list[str]:
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    return [n for n in names if not only or n.removeprefix("bench_") in only or n in only]


async def main(only: list[str]) -> int:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    # As `serve` does in production: spans are created (not exported unless OTEL_TRACES_EXPORTER says so), so
    # the figures include what tracing costs.
    configure_tracing("bench")
    pg = PostgresBackend.embedded()
    await asyncio.to_thread(pg.build_template)  # alembic runs its own event loop
    broker = BrokerBackend.embedded()
    ctx = BenchContext(pg=pg, broker=broker, scale=scale)
    figures: list[Figure] = []
    failures = 0
    try:
        print(f"measuring raw baselines (scale {scale}) ...", flush=True)
        for fig in await measure_raws(ctx):
            ctx.raws[fig.key] = fig
            figures.append(fig)
        for name in modules(only):
            print(f"running {name} ...", flush=True)
            started = time.perf_counter()
            # A fresh broker per module: one module's events must not land in the next one's topics.
            ctx.broker.stop()
            ctx.broker = BrokerBackend.embedded()
            try:
                module = importlib.import_module(f"tests.bench.{name}")
                figures.extend(await module.run(ctx))
            except Exception:
                failures += 1
                traceback.print_exc()
            print(f"  {name} took {time.perf_counter() - started:.1f}s", flush=True)
    finally:
        ctx.broker.stop()
        pg.stop()

    print(f"\n{'figure':<38} {'value':>14} {'unit':<10} {'ratio':>8}  baseline")
    for fig in figures:
        ratio = ctx.ratio(fig)
        r = f"{ratio:.3f}" if ratio is not None else ""
        print(f"{fig.key:<38} {fig.value:>14,.1f} {fig.unit:<10} {r:>8}  {fig.baseline or ''}")
    out = ROOT / ".bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    doc = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "scale": scale,
        "figures": ctx.as_json(figures),
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=[], help="bench module names (e.g. plumbing ledger)")
    raise SystemExit(asyncio.run(main(parser.parse_args().only)))
