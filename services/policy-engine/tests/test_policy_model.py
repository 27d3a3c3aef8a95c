"""Policies as data: validation names the path and the reason of every error; YAML and JSON are the same."""

from __future__ import annotations

import json
from datetime import time
from decimal import Decimal

import pytest

from policy_engine.domain.policy import (
    DEFAULT_POLICY,
    InvalidPolicy,
    Policy,
    load_policy_yaml,
    parse_policy_text,
    validate_policy,
)

EXAMPLE_YAML = """
id: eu-b2b
name: EU B2B with statutory interest
priority: 10
applies_to: {currencies: [EUR], segments: [b2b], amount: {min: 50}}
quiet_hours: {start: 09:00, end: 18:00}
send_time: 09:30
minimum_balance: {EUR: 25.00}
steps:
  - {name: due, offset_days: 0, channels: [email], template_id: due, tone: neutral}
  - name: first_reminder
    offset_days: 7
    channels: [email, letter]
    template_id: mahnung_1
    tone: firm
    fees:
      - {kind: statutory_interest, reference_rate_percent: 2.15}
      - {kind: compensation}
  - {name: hand_off, offset_days: 60, channels: [task], template_id: hand_off, tone: final,
     actions: [hand_off_to_collections]}
"""


def errors_of(raw: object) -> list[str]:
    with pytest.raises(InvalidPolicy) as exc:
        validate_policy(raw)
    return [str(e) for e in exc.value.errors]


def step(name: str, offset: object, **kw: object) -> dict[str, object]:
    return {"name": name, "offset_days": offset, "channels": ["email"], "template_id": "t", "tone": "gentle", **kw}


def test_an_error_names_the_path_and_the_reason() -> None:
    steps = [step("a", 1), step("b", 2), step("c", 3), step("d", "three")]
    assert errors_of({"id": "p", "steps": steps}) == ["steps[3].offset_days: must be an integer"]


def test_every_error_is_listed_and_nothing_is_accepted() -> None:
    raw = {
        "id": "Bad Id",
        "quiet_hours": {"start": "07:00", "end": "22:00"},
        "minimum_balance": {"EUR": "0.001", "XXX": 1},
        "surprise": True,
        "steps": [
            step("a", 1.5, channels=["fax"], tone="angry"),
            {"name": "b", "offset_days": 2, "channels": [], "tone": "firm"},
            step("c", 3, fees=[{"kind": "fixed", "amounts": {"EUR": "x"}}, {"kind": "bribe"}]),
        ],
    }
    got = errors_of(raw)
    assert "id: must be lower-case letters, digits, '_' or '-' (at most 80)" in got
    assert "quiet_hours.start: must not be before 08:00 (a policy may only be stricter)" in got
    assert "quiet_hours.end: must not be after 21:00 (a policy may only be stricter)" in got
    assert any(e.startswith("minimum_balance: ") for e in got)
    assert "surprise: is not a known field" in got
    assert "steps[0].offset_days: must be an integer" in got
    assert "steps[0].channels[0]: must be one of email, sms, voice, letter, webhook or task" in got
    assert "steps[0].tone: must be one of friendly, neutral, gentle, firm, urgent or final" in got
    assert "steps[1].channels: must have at least 1 item(s)" in got
    assert "steps[1].template_id: is required" in got
    assert "steps[2].fees[0].amounts: must be a decimal amount" in got
    assert "steps[2].fees[1]: kind must be one of fixed, percentage, statutory_interest, compensation" in got
    assert len(got) == 12, got


def test_rules_across_fields_are_checked_with_paths() -> None:
    raw = {
        "id": "p",
        "quiet_hours": {"start": "09:00", "end": "17:00"},
        "send_time": "18:00",
        "steps": [
            step("a", 5),
            step("a", 3),
            step("z", 9, actions=["hand_off_to_collections"]),
            step("y", 10, fees=[{"kind": "fixed", "amounts": {"EUR": 5}}, {"kind": "fixed", "amounts": {"EUR": 1}}]),
            step("pre", 11, fees=[]),
        ],
    }
    got = errors_of(raw)
    assert got == [
        "send_time: must be inside the quiet-hours window 09:00-17:00",
        "steps[1].name: duplicates steps[0].name",
        "steps[1].offset_days: must be greater than steps[0].offset_days (5)",
        "steps[2].actions: hand_off_to_collections must be on the last step",
        "steps[3].fees: lists fixed more than once",
    ]


def test_a_policy_may_only_be_stricter_than_8_to_21() -> None:
    ok = validate_policy({"id": "p", "quiet_hours": {"start": "09:00", "end": "20:00"}, "steps": [step("a", 1)]})
    assert (ok.quiet_hours.start, ok.quiet_hours.end) == (time(9), time(20))
    assert errors_of({"id": "p", "quiet_hours": {"end": "21:30"}, "steps": [step("a", 1)]}) == [
        "quiet_hours.end: must not be after 21:00 (a policy may only be stricter)"
    ]


def test_yaml_clock_times_are_times_not_base_60_integers() -> None:
    doc = load_policy_yaml(EXAMPLE_YAML)
    assert doc.quiet_hours.end == time(18)  # YAML 1.1 would read 18:00 as 1080
    assert doc.send_time == time(9, 30)
    assert doc.minimum_balance == {"EUR": Decimal("25.00")}


def test_yaml_and_json_describe_the_same_policy() -> None:
    from_yaml = load_policy_yaml(EXAMPLE_YAML)
    as_json = json.dumps(from_yaml.model_dump(mode="json"))
    assert validate_policy(parse_policy_text(as_json, "application/json")) == from_yaml


def test_malformed_yaml_is_one_clear_error() -> None:
    with pytest.raises(InvalidPolicy) as exc:
        parse_policy_text("id: [unclosed", "application/yaml")
    assert exc.value.errors[0].path == "(policy)"
    assert "not valid YAML" in exc.value.errors[0].reason


def test_the_default_policy_follows_the_common_modern_sequence() -> None:
    steps = DEFAULT_POLICY.steps
    assert steps[0].offset_days == -5 and steps[1].offset_days == 0
    gentle = [s.offset_days for s in steps if s.tone == "gentle"]
    firm = [s.offset_days for s in steps if s.tone == "firm"]
    assert gentle and all(1 <= d <= 30 for d in gentle)
    assert firm and all(31 <= d <= 60 for d in firm)
    escalation = [s for s in steps if 61 <= s.offset_days <= 90]
    assert {"sms", "voice"} <= {c for s in escalation for c in s.channels}
    final = [s for s in steps if s.offset_days > 90]
    assert set(final[0].channels) == {"letter", "email"} and final[0].tone == "final"
    assert final[-1].actions == ["hand_off_to_collections"]
    assert DEFAULT_POLICY.doc.contact_caps[0].model_dump() == {
        "channel": "voice", "max_attempts": 7, "per_days": 7, "per": "debt",
    }  # fmt: skip


def test_remaining_steps_never_include_what_was_handled_even_across_versions() -> None:
    v2 = Policy(
        validate_policy({"id": "p", "steps": [step("a", 1), step("b", 5), step("b2", 6), step("c", 9)]}), version=2
    )
    # Sent a (1) and b (5) under v1; v2 inserted b2 at 6: it comes next, a and b are never sent again.
    assert [s.name for s in v2.remaining_steps(["a", "b"], 5)] == ["b2", "c"]
    # A renamed step at an offset already passed is not sent either.
    assert [s.name for s in v2.remaining_steps(["x"], 5)] == ["b2", "c"]


def test_policy_files_are_validated_from_the_command_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from policy_engine.validate import main

    good = tmp_path / "eu.yaml"
    good.write_text(EXAMPLE_YAML)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "b", "steps": [step("a", "1")]}))
    assert main([str(good)]) == 0
    assert main([str(good), str(bad)]) == 1
    assert f"{bad}: steps[0].offset_days: must be an integer" in capsys.readouterr().out
