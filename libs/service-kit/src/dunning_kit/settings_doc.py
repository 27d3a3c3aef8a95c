"""Print every service's settings as a Markdown table: `python -m dunning_kit.settings_doc`.

The README's settings section is this output; a test fails when a setting is missing from the README.
"""

from __future__ import annotations

import importlib

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


if __name__ == "__main__":
    print(markdown())
