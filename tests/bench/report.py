"""Render .bench/results.json as the README's benchmark table: `python -m tests.bench.report --write README.md`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{table(results)}\n{end}{tail}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--write":
        write(Path(sys.argv[2]))
    else:
        print(table(json.loads((ROOT / ".bench" / "results.json").read_text())))
