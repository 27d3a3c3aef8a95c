"""Schema compatibility: the events' current JSON Schemas against the last release of them.

    python -m dunning_events.compat            # make lint: exit 1 and name every breaking change
    python -m dunning_events.compat --release  # make release-schemas: the current schemas become the release

The release is a committed snapshot, `libs/events/schemas/released/` (one `<type>.json` per event type, copied from
`libs/events/schemas/` when a release is cut), so the check needs no git history and runs the same in a clean
clone, a shallow CI checkout and a source tarball. A change to an event's data is breaking when an event written
under the released schema, or a consumer built against it, would no longer work with the current one:

- a field removed (a consumer reading it breaks) - also an event type removed;
- a type narrowed (a value the released schema allowed is no longer allowed: `string | null` -> `string`,
  `integer | string` -> `integer`, a format added or changed, a constant changed);
- a required field added (an event written before it lacks it), or an optional field made required;
- an enum value removed.

Nested parts (objects behind `$ref`, array items, the branches of `anyOf`) are compared the same way. A breaking
change passes only with the event's `schema_version` bumped (EventData.schema_version; the schema's
`x-schema-version`): consumers then reject the newer events as poison until they are upgraded, rather than misread
them. Additive changes (an optional field, a new event type, an enum value added, a type widened) always pass.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
RELEASED_DIR = SCHEMA_DIR / "released"

Schema = Mapping[str, Any]


@dataclass(frozen=True)
class Breaking:
    event_type: str
    where: str  # the field's path, e.g. invoices[].total
    what: str

    def __str__(self) -> str:
        return f"{self.event_type}: {self.where}: {self.what}"


def event_schemas(directory: Path) -> dict[str, dict[str, Any]]:
    """The event schemas of a directory by event type (the AsyncAPI document is not one)."""
    return {
        p.name.removesuffix(".json"): json.loads(p.read_text())
        for p in sorted(directory.glob("*.json"))
        if p.name != "asyncapi.json" and not p.name.startswith("openapi")
    }


def breaking_changes(released: Mapping[str, Schema], current: Mapping[str, Schema]) -> list[Breaking]:
    """Every breaking change from `released` to `current` in an event whose schema version was not bumped."""
    found: list[Breaking] = []
    for event_type, old in sorted(released.items()):
        new = current.get(event_type)
        if new is None:
            found.append(Breaking(event_type, "(event)", "the event type was removed"))
            continue
        if _version(new) > _version(old):
            continue  # bumped: consumers tell the versions apart
        found.extend(Breaking(event_type, where, what) for where, what in _compare(old, new, old, new, ""))
    return found


def _version(schema: Schema) -> int:
    return int(schema.get("x-schema-version", 1))


def _resolve(schema: Schema, root: Schema) -> Schema:
    seen = 0
    while "$ref" in schema and seen < 32:  # local references only: the exporter writes `#/$defs/...`
        path = str(schema["$ref"]).removeprefix("#/").split("/")
        target: Any = root
        for part in path:
            target = target[part]
        schema, seen = target, seen + 1
    return schema


def _branches(schema: Schema, root: Schema) -> list[Schema]:
    schema = _resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [b for branch in schema[key] for b in _branches(branch, root)]
    return [schema]


def _types(schema: Schema, root: Schema) -> set[str]:
    """The JSON types a schema allows (with their format, which narrows a string)."""
    out: set[str] = set()
    for branch in _branches(schema, root):
        if "const" in branch:
            out.add(f"const {json.dumps(branch['const'])}")
            continue
        if "enum" in branch:
            out.add("enum")
            continue
        kinds = branch.get("type")
        if kinds is None:
            out.add("any")
            continue
        for kind in [kinds] if isinstance(kinds, str) else kinds:
            fmt = branch.get("format")
            out.add(f"{kind}:{fmt}" if fmt and kind == "string" else ("object" if "properties" in branch else kind))
    return out


def _covered(kind: str, allowed: set[str]) -> bool:
    """Whether the values of `kind` are still allowed: a wider type (number for integer, a string without format
    for a formatted one) covers them."""
    if kind in allowed:
        return True
    if kind == "integer":
        return "number" in allowed
    if kind.startswith("string:"):
        return "string" in allowed
    if kind.startswith("const "):
        value = json.loads(kind.removeprefix("const "))
        plain = {str: "string", bool: "boolean", int: "integer", float: "number"}.get(type(value))
        return plain is not None and _covered(plain, allowed)
    return False


def _enum_values(schema: Schema, root: Schema) -> set[str] | None:
    values: set[str] = set()
    has_enum = False
    for branch in _branches(schema, root):
        if "enum" in branch:
            has_enum = True
            values.update(json.dumps(v) for v in branch["enum"])
    return values if has_enum else None


def _compare(old: Schema, new: Schema, old_root: Schema, new_root: Schema, where: str) -> Iterator[tuple[str, str]]:
    here = where or "(data)"
    old_types, new_types = _types(old, old_root), _types(new, new_root)
    if "any" not in new_types:
        lost = {t for t in old_types - {"enum"} if not _covered(t, new_types)}
        if lost:
            yield here, f"type narrowed: {' | '.join(sorted(old_types))} -> {' | '.join(sorted(new_types))}"
    old_enum, new_enum = _enum_values(old, old_root), _enum_values(new, new_root)
    if old_enum is not None and new_enum is not None and old_enum - new_enum:
        yield here, f"enum value removed: {', '.join(sorted(old_enum - new_enum))}"
    elif old_enum is None and new_enum is not None and "any" not in new_types:
        yield here, "type narrowed: now an enum"
    old_objects = [b for b in _branches(old, old_root) if "properties" in b]
    new_objects = [b for b in _branches(new, new_root) if "properties" in b]
    if old_objects and new_objects:
        yield from _compare_objects(old_objects[0], new_objects[0], old_root, new_root, where)
    old_items = [b["items"] for b in _branches(old, old_root) if "items" in b]
    new_items = [b["items"] for b in _branches(new, new_root) if "items" in b]
    if old_items and new_items:
        yield from _compare(old_items[0], new_items[0], old_root, new_root, f"{where}[]")


def _compare_objects(
    old: Schema, new: Schema, old_root: Schema, new_root: Schema, where: str
) -> Iterator[tuple[str, str]]:
    prefix = f"{where}." if where else ""
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name in old_props:
        if name not in new_props:
            yield f"{prefix}{name}", "field removed"
    for name in sorted(new_required - old_required):
        what = "optional field made required" if name in old_props else "required field added"
        yield f"{prefix}{name}", what
    for name in old_props:
        if name in new_props:
            yield from _compare(old_props[name], new_props[name], old_root, new_root, f"{prefix}{name}")


def release(source: Path = SCHEMA_DIR, target: Path = RELEASED_DIR) -> int:
    """Make the current schemas the released ones (what `make release-schemas` runs when a release is cut)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    schemas = event_schemas(source)
    for event_type in schemas:
        shutil.copyfile(source / f"{event_type}.json", target / f"{event_type}.json")
    return len(schemas)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dunning_events.compat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", action="store_true", help="copy the current schemas to the released snapshot")
    parser.add_argument("--current", type=Path, default=SCHEMA_DIR, help="the current schemas (default: %(default)s)")
    parser.add_argument("--released", type=Path, default=RELEASED_DIR, help="the release (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.release:
        count = release(args.current, args.released)
        print(f"released {count} event schemas to {args.released}")
        return 0
    if not args.released.is_dir():
        print(f"compat: no released schemas in {args.released}: run `make release-schemas` once", file=sys.stderr)
        return 1
    problems = breaking_changes(event_schemas(args.released), event_schemas(args.current))
    for problem in problems:
        print(f"breaking change without a schema_version bump: {problem}", file=sys.stderr)
    if problems:
        print(
            "compat: bump the event's schema_version (EventData.schema_version), or make the change additive; "
            "see dunning_events.compat",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
