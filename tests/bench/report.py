"""Render .bench/results.json as the README's benchmark table: `python -m tests.bench.report --write README.md`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dunning_kit.settings_doc import replace_section

ROOT = Path(__file__).resolve().parents[2]


def table(results: dict) -> str:  # type: ignore[type-arg]
    lines = [
        f"Measured {results['measured_at']} on {results['machine']} (scale {results['scale']}).",
        "",
        "| Figure | Value | Unit | Ratio | Baseline |",
        "|---|---:|---|---:|---|",
    ]
    for key, fig in results["figures"].items():
        ratio = "" if fig["ratio"] is None else f"{fig['ratio']:.3f}"
        lines.append(f"| `{key}` | {fig['value']:,.1f} | {fig['unit']} | {ratio} | {fig['baseline'] or ''} |")
    return "\n".join(lines)


def write(readme: Path) -> None:
    results = json.loads((ROOT / ".bench" / "results.json").read_text())
    replace_section(readme, "bench", table(results))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--write":
        write(Path(sys.argv[2]))
    else:
        print(table(json.loads((ROOT / ".bench" / "results.json").read_text())))
