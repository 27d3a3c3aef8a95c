"""The benchmark harness: each bench module measures against raws taken in the same run.

A bench module in this folder named `bench_*.py` defines `async def run(ctx: BenchContext) -> list[Figure]`.
`make bench` measures the raws first, then runs every module, prints a table and writes
.bench/results.json (key -> value, unit, baseline, ratio) so runs can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dunning_kit.testing import BrokerBackend, PostgresBackend


@dataclass
class Figure:
    key: str
    value: float
    unit: str
    baseline: str | None = None  # key of the raw figure this one is a ratio of
    note: str = ""


@dataclass
class BenchContext:
    pg: PostgresBackend
    broker: BrokerBackend
    raws: dict[str, Figure] = field(default_factory=dict)
    scale: float = 1.0  # BENCH_SCALE shrinks workloads for a quick run (1.0 = the sizes)

    def fresh_database(self) -> str:
        return self.pg.fresh_database()

    def n(self, full: int) -> int:
        """Workload size scaled by BENCH_SCALE (never below 1000)."""
        return max(1000, int(full * self.scale))

    def ratio(self, fig: Figure) -> float | None:
        if fig.baseline is None or fig.baseline not in self.raws:
            return None
        base = self.raws[fig.baseline].value
        return fig.value / base if base else None

    def as_json(self, figures: list[Figure]) -> dict[str, Any]:
        return {
            f.key: {
                "value": round(f.value, 3),
                "unit": f.unit,
                "baseline": f.baseline,
                "ratio": None if (r := self.ratio(f)) is None else round(r, 4),
                "note": f.note,
            }
            for f in figures
        }
