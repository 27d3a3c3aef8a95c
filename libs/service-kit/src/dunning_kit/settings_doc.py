"""Print every service's settings as a Markdown table: `python -m dunning_kit.settings_doc`.

The README's settings section is this output; a test fails when a setting is missing from the README.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from dunning_kit.services import SERVICES
from dunning_kit.settings import ServiceSettings


def rows() -> list[tuple[str, str, str, str]]:
    """(env var, default, services, meaning) for every setting, shared ones first."""
    seen: dict[str, tuple[str, str, list[str], str]] = {}
    for name, field in ServiceSettings.model_fields.items():
        seen[name] = (name.upper(), _default(field.default), ["all"], field.description or "")
    for s in SERVICES:
        settings_cls = importlib.import_module(f"{s.package}.settings").Settings
        for name, field in settings_cls.model_fields.items():
            if name in ServiceSettings.model_fields and field.default == ServiceSettings.model_fields[name].default:
                continue
            if name in seen and seen[name][2] != ["all"]:
                seen[name][2].append(s.name)
                continue
            if name in ServiceSettings.model_fields:
                seen[f"{name}@{s.name}"] = (name.upper(), _default(field.default), [s.name], field.description or "")
            else:
                seen[name] = (name.upper(), _default(field.default), [s.name], field.description or "")
    return [(env, default, ", ".join(svcs), doc) for env, default, svcs, doc in seen.values()]


def _default(value: object) -> str:
    if value is None:
        return "(unset)"
    if value == "":
        return '""'
    return str(value)


def markdown() -> str:
    lines = ["| Variable | Default | Service | Meaning |", "|---|---|---|---|"]
    for env, default, svcs, doc in rows():
        lines.append(f"| `{env}` | `{default}` | {svcs} | {doc} |")
    return "\n".join(lines)


def replace_section(path: Path, marker: str, body: str) -> None:
    """Replace what stands between `<!-- {marker}:start -->` and `<!-- {marker}:end -->` in a document."""
    text = path.read_text()
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def write_readme(path: Path) -> None:
    """Replace the README's settings section (between the settings markers) with the current table."""
    replace_section(path, "settings", markdown())


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--write":
        write_readme(Path(sys.argv[2]))
    else:
        print(markdown())
