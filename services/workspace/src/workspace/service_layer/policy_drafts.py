"""A policy edited as YAML: where each validation error is in the text, what the draft changes against the version
in force, and the proof that what is published is what was previewed.

The policy engine validates (it names a field, `steps[3].offset_days`); the workspace finds that field's line in
the person's own text, so the error is shown at its line. A YAML syntax error is found here, before any call.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import yaml

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class DraftError:
    field: str
    reason: str
    line: int | None  # 1-based line of the field in the draft (None: not found, e.g. a missing field)


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "same" | "added" | "removed" | "skipped" (text: how many unchanged lines are not shown)
    text: str
    old_line: int | None
    new_line: int | None


def as_yaml(document: dict[str, Any]) -> str:
    """A policy document (as the API answers it) as the YAML a person edits, fields in the API's order."""
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def fingerprint(text: str) -> str:
    """What the publish form carries: publishing a text other than the one previewed is refused."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode()).hexdigest()


def syntax_error(text: str) -> DraftError | None:
    """The text's YAML syntax error, at its line, or None."""
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return DraftError("(policy)", f"not valid YAML: {exc.problem or exc}", line)
    except yaml.YAMLError as exc:
        return DraftError("(policy)", f"not valid YAML: {exc}", None)
    return None


def line_of(text: str, field: str) -> int | None:
    """The 1-based line where `field` (`steps[3].offset_days`, `quiet_hours.end`) is in the YAML text: the
    deepest part of the path that exists (a missing field points at its parent)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for name, index in _PART.findall(field):
        if isinstance(node, yaml.MappingNode) and name:
            found = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == name), None)
            key = next((k for k, _ in node.value if isinstance(k, yaml.ScalarNode) and k.value == name), None)
            if found is None or key is None:
                break
            line, node = key.start_mark.line + 1, found
        elif isinstance(node, yaml.SequenceNode) and index and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def located(text: str, errors: list[dict[str, Any]]) -> list[DraftError]:
    """The policy engine's field errors with their lines in the draft, in line order (unplaced ones first)."""
    out = [DraftError(str(e.get("field", "(policy)")), str(e.get("reason", "")), None) for e in errors]
    out = [DraftError(e.field, e.reason, line_of(text, e.field)) for e in out]
    return sorted(out, key=lambda e: (e.line or 0, e.field))


def diff(in_force: str, draft: str, context: int = 3) -> list[DiffLine]:
    """Line diff of the draft against the version in force: the changes with `context` unchanged lines around
    them; a longer unchanged stretch is one `skipped` line saying how many lines it hides."""
    old, new = in_force.splitlines(), draft.splitlines()
    out: list[DiffLine] = []
    opcodes = difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes()
    for n, (op, a1, a2, b1, b2) in enumerate(opcodes):
        if op != "equal":
            out += [DiffLine("removed", old[i], i + 1, None) for i in range(a1, a2)]
            out += [DiffLine("added", new[j], None, j + 1) for j in range(b1, b2)]
            continue
        same = [DiffLine("same", old[a1 + k], a1 + k + 1, b1 + k + 1) for k in range(a2 - a1)]
        head = same[:context] if n > 0 else []  # after a change
        tail = same[-context:] if n < len(opcodes) - 1 else []  # before the next one
        if len(head) + len(tail) >= len(same):
            out += same
            continue
        out += head
        out.append(DiffLine("skipped", str(len(same) - len(head) - len(tail)), None, None))
        out += tail
    return out
