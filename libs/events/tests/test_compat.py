"""The schema compatibility check (dunning_events.compat, run by `make lint`): the committed schemas are compatible
with the committed release, and the check fails on each kind of breaking change unless the schema version was
bumped, while additive changes pass."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dunning_events.compat import RELEASED_DIR, SCHEMA_DIR, breaking_changes, event_schemas, main

Schemas = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def current() -> Schemas:
    return event_schemas(SCHEMA_DIR)


def test_the_committed_schemas_are_compatible_with_the_release(current: Schemas) -> None:
    released = event_schemas(RELEASED_DIR)
    assert set(released) <= set(current), "every released event type still exists"
    assert breaking_changes(released, current) == []
    assert main([]) == 0


def _remove_field(s: dict[str, Any]) -> None:
    del s["properties"]["terms"]


def _narrow_type(s: dict[str, Any]) -> None:
    s["properties"]["due_date"] = {"format": "date", "type": "string", "title": "Due Date"}  # was date | null


def _add_required(s: dict[str, Any]) -> None:
    s["properties"]["region"] = {"type": "string"}
    s["required"].append("region")


def _make_required(s: dict[str, Any]) -> None:
    s["required"].append("terms")


def _remove_enum_value(s: dict[str, Any]) -> None:
    s["properties"]["status"]["enum"].remove("written_off")


def _change_type(s: dict[str, Any]) -> None:
    s["properties"]["number"] = {"type": "integer"}


BREAKING: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    "field removed": (_remove_field, "terms", "field removed"),
    "type narrowed": (_narrow_type, "due_date", "type narrowed: null | string:date -> string:date"),
    "required field added": (_add_required, "region", "required field added"),
    "optional field made required": (_make_required, "terms", "optional field made required"),
    "enum value removed": (_remove_enum_value, "status", 'enum value removed: "written_off"'),
    "type changed": (_change_type, "number", "type narrowed: string -> integer"),
}


@pytest.mark.parametrize("change", sorted(BREAKING))
def test_a_breaking_change_fails_the_check_unless_the_schema_version_is_bumped(
    current: Schemas, change: str, tmp_path: Path
) -> None:
    edit, where, what = BREAKING[change]
    changed = copy.deepcopy(current)
    edit(changed["invoice.created"])
    assert [str(b) for b in breaking_changes(current, changed)] == [f"invoice.created: {where}: {what}"]
    # As `make lint` runs it, on files: a modified copy of the committed schemas fails.
    for name, schema in changed.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(schema))
    assert main(["--current", str(tmp_path), "--released", str(SCHEMA_DIR)]) == 1
    changed["invoice.created"]["x-schema-version"] = 2  # bumped: consumers reject the new version until upgraded
    assert breaking_changes(current, changed) == []


def test_a_nested_part_is_compared_too(current: Schemas) -> None:
    changed = copy.deepcopy(current)
    del changed["dunning.step.due"]["$defs"]["StepInvoice"]["properties"]["days_overdue"]
    changed["dunning.step.due"]["$defs"]["Money"]["properties"]["amount"] = {"type": "number"}
    assert sorted(str(b) for b in breaking_changes(current, changed)) == [
        "dunning.step.due: fees[].amount.amount: type narrowed: string -> number",
        "dunning.step.due: invoices[].days_overdue: field removed",
    ]


def test_additive_changes_pass(current: Schemas, tmp_path: Path) -> None:
    changed = copy.deepcopy(current)
    created = changed["invoice.created"]
    created["properties"]["region"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}  # optional
    created["properties"]["status"]["enum"].append("disputed")  # an enum value added
    created["properties"]["terms"] = {}  # widened to anything
    created["properties"]["issue_date"] = {"type": "string"}  # a format dropped: widened
    changed["invoice.exploded"] = {"type": "object", "properties": {}}  # a new event type
    assert breaking_changes(current, changed) == []
    for name, schema in changed.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(schema))
    assert main(["--current", str(tmp_path), "--released", str(SCHEMA_DIR)]) == 0


def test_a_removed_event_type_is_breaking(current: Schemas) -> None:
    changed = {k: v for k, v in current.items() if k != "plan.completed"}
    assert [str(b) for b in breaking_changes(current, changed)] == [
        "plan.completed: (event): the event type was removed"
    ]
