"""A policy as a form: the fields a manager changes often (the steps in order, the contact caps, quiet hours,
send time) laid over the document they came from, and back to the YAML text the editor, the preview and the
publication use, so a form edit goes through the same validate / diff / preview / publish path as a YAML edit.

What the form does not show (fees, the calendar, who the policy applies to, ...) is kept from its `base` text: a
step keeps its unshown fields by the index it had there (`origin`), so adding, removing or reordering rows never
moves a fee to another step. The form sends what the person typed, numbers as numbers when they are numbers and
as text when not: the policy engine then names the field (`steps[2].offset_days`), and `field_of` puts its
reason at that field of the form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from workspace.service_layer.policy_drafts import as_yaml

CHANNELS = ("email", "sms", "voice", "letter", "webhook", "task")
ACTIONS = ("credit_hold", "hand_off_to_collections", "recommend_write_off")
TONES = ("friendly", "neutral", "gentle", "firm", "urgent", "final")
CAP_SCOPES = ("debt", "debtor")
POLICY_FIELDS = ("name", "time_zone", "send_time", "quiet_hours.start", "quiet_hours.end")
MAX_ROWS = 50  # steps or caps: a form of more is not a policy anyone edits by hand

_ROW = re.compile(r"^(steps|contact_caps)\[(\d+)\]\.origin$")
_INTEGER = re.compile(r"^[-+]?\d{1,9}$")


class _PolicyLoader(yaml.SafeLoader):
    """As the policy engine reads YAML: 21:00 is a clock time, not the base-60 integer 1260."""


_PolicyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)


@dataclass
class StepRow:
    origin: int | None  # its index in the base document (None: added in the form)
    name: str = ""
    offset_days: str = ""
    template_id: str = ""
    tone: str = "friendly"
    channels: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


@dataclass
class CapRow:
    origin: int | None
    channel: str = "voice"
    max_attempts: str = ""
    per_days: str = ""
    per: str = "debt"


@dataclass
class PolicyForm:
    base: str  # the YAML text the fields are laid over
    policy: dict[str, str]  # POLICY_FIELDS -> text
    steps: list[StepRow]
    caps: list[CapRow]

    def values(self) -> dict[str, str]:
        """Every text field of the form by its name, which is the policy engine's path of the field."""
        out = dict(self.policy)
        for i, s in enumerate(self.steps):
            out |= {f"steps[{i}].{k}": getattr(s, k) for k in ("name", "offset_days", "template_id", "tone")}
        for i, c in enumerate(self.caps):
            out |= {f"contact_caps[{i}].{k}": getattr(c, k) for k in ("channel", "max_attempts", "per_days", "per")}
        return out

    def fields(self) -> set[str]:
        """The names an error can be shown at: the fields, the check lists, each row, each list."""
        names = set(self.values()) | {"steps", "contact_caps"}
        for i in range(len(self.steps)):
            names |= {f"steps[{i}]", f"steps[{i}].channels", f"steps[{i}].actions"}
        names |= {f"contact_caps[{i}]" for i in range(len(self.caps))}
        return names


class NotAPolicy(ValueError):
    """The base text is not a YAML mapping (a form cannot be laid over it)."""


def parsed(text: str) -> dict[str, Any]:
    try:
        document = yaml.load(text, Loader=_PolicyLoader)  # a SafeLoader with the engine's integers
    except yaml.YAMLError as exc:
        raise NotAPolicy(str(exc)) from None
    if not isinstance(document, dict):
        raise NotAPolicy("the policy is not a mapping")
    return document


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def form_of(base: str) -> PolicyForm:
    """The form of a policy's YAML text (the version in force, or a draft)."""
    doc = parsed(base)
    quiet = _mapping(doc.get("quiet_hours"))
    policy = {
        "name": _text(doc.get("name")), "time_zone": _text(doc.get("time_zone", "customer")),
        "send_time": _text(doc.get("send_time", "10:00")),
        "quiet_hours.start": _text(quiet.get("start", "08:00")), "quiet_hours.end": _text(quiet.get("end", "21:00")),
    }  # fmt: skip
    steps = []
    for i, raw in enumerate(_items(doc.get("steps"))):
        s = _mapping(raw)
        steps.append(StepRow(i, _text(s.get("name")), _text(s.get("offset_days")), _text(s.get("template_id")),
                             _text(s.get("tone")), [str(c) for c in _items(s.get("channels"))],
                             [str(a) for a in _items(s.get("actions"))]))  # fmt: skip
    caps = []
    for i, raw in enumerate(_items(doc.get("contact_caps"))):
        c = _mapping(raw)
        caps.append(CapRow(i, _text(c.get("channel")), _text(c.get("max_attempts")), _text(c.get("per_days")),
                           _text(c.get("per", "debt"))))  # fmt: skip
    return PolicyForm(base, policy, steps, caps)


def _origin(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def form_from(posted: Any) -> PolicyForm:
    """The form as posted (`posted`: the request's form data, with `getlist`); rows in the order of their index."""
    rows: dict[str, list[int]] = {"steps": [], "contact_caps": []}
    for key in posted:
        if (m := _ROW.match(key)) and int(m.group(2)) < MAX_ROWS:
            rows[m.group(1)].append(int(m.group(2)))

    def get(name: str) -> str:
        return str(posted.get(name) or "").strip()

    steps = [
        StepRow(_origin(get(f"steps[{i}].origin")), get(f"steps[{i}].name"), get(f"steps[{i}].offset_days"),
                get(f"steps[{i}].template_id"), get(f"steps[{i}].tone"),
                [str(c) for c in posted.getlist(f"steps[{i}].channels")],
                [str(a) for a in posted.getlist(f"steps[{i}].actions")])
        for i in sorted(rows["steps"])
    ]  # fmt: skip
    caps = [
        CapRow(_origin(get(f"contact_caps[{i}].origin")), get(f"contact_caps[{i}].channel"),
               get(f"contact_caps[{i}].max_attempts"), get(f"contact_caps[{i}].per_days"), get(f"contact_caps[{i}].per"))
        for i in sorted(rows["contact_caps"])
    ]  # fmt: skip
    return PolicyForm(str(posted.get("base") or "").replace("\r\n", "\n"), {k: get(k) for k in POLICY_FIELDS},
                      steps, caps)  # fmt: skip


def changed(form: PolicyForm, command: str) -> PolicyForm | None:
    """The form after an add/remove button (`add_step`, `remove_step:2`, `add_cap`, `remove_cap:0`), or None
    when `command` is not one of them."""
    kind, _, index = command.partition(":")
    at = int(index) if index.isdigit() else -1
    if kind == "add_step" and len(form.steps) < MAX_ROWS:
        last = form.steps[-1] if form.steps else None
        after = int(last.offset_days) + 7 if last and _INTEGER.match(last.offset_days) else 0
        return replace(form, steps=[*form.steps, StepRow(None, offset_days=str(after), channels=["email"])])
    if kind == "remove_step" and 0 <= at < len(form.steps):
        return replace(form, steps=form.steps[:at] + form.steps[at + 1 :])
    if kind == "add_cap" and len(form.caps) < MAX_ROWS:
        return replace(form, caps=[*form.caps, CapRow(None)])
    if kind == "remove_cap" and 0 <= at < len(form.caps):
        return replace(form, caps=form.caps[:at] + form.caps[at + 1 :])
    return None


def _number(text: str) -> int | str:
    """A whole number as a number; anything else as typed (the policy engine names the field and why)."""
    return int(text) if _INTEGER.match(text) else text


def draft_of(form: PolicyForm) -> str:
    """The YAML text of the form: its base document with the form's fields in place, keys in the base's order
    (an unchanged form is the base's text, so the preview's diff shows only what the form changed)."""
    doc = parsed(form.base)
    base_steps, base_caps = _items(doc.get("steps")), _items(doc.get("contact_caps"))
    p = form.policy
    doc["name"] = p["name"]
    doc["time_zone"] = p["time_zone"]
    doc["quiet_hours"] = {
        **_mapping(doc.get("quiet_hours")),
        "start": p["quiet_hours.start"],
        "end": p["quiet_hours.end"],
    }
    doc["send_time"] = p["send_time"]
    caps = []
    for c in form.caps:
        kept = _mapping(base_caps[c.origin]) if c.origin is not None and c.origin < len(base_caps) else {}
        caps.append({**kept, "channel": c.channel, "max_attempts": _number(c.max_attempts),
                     "per_days": _number(c.per_days), "per": c.per})  # fmt: skip
    if caps or "contact_caps" in doc:  # a draft without caps has the engine's default cap: not written as none
        doc["contact_caps"] = caps
    steps = []
    for s in form.steps:
        kept = _mapping(base_steps[s.origin]) if s.origin is not None and s.origin < len(base_steps) else {}
        shown = {"name": s.name, "offset_days": _number(s.offset_days), "channels": s.channels,
                 "template_id": s.template_id, "tone": s.tone, "actions": s.actions}  # fmt: skip
        if kept:  # its own keys in their order, the shown ones as the form has them
            steps.append({**kept, **shown})
        else:  # a new step: the keys in the order the policy engine writes them
            steps.append({"name": s.name, "offset_days": shown["offset_days"], "channels": s.channels,
                          "channel_mode": "all", "template_id": s.template_id, "tone": s.tone, "fees": [],
                          "actions": s.actions})  # fmt: skip
    doc["steps"] = steps
    return as_yaml(doc)


def field_of(path: str, fields: set[str]) -> str | None:
    """The form field an engine error (`steps[1].channels[0]`, `steps[1].fees`) belongs to: the longest field
    that is the path or contains it, or None when the form does not show that part of the policy."""
    best = None
    for name in fields:
        if (path == name or path.startswith(name + ".") or path.startswith(name + "[")) and len(name) > len(best or ""):
            best = name
    return best
