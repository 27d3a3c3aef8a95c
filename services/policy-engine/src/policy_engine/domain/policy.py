"""Dunning policies as data: the model, its validation into path-named errors, YAML/JSON loading. No I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from decimal import Decimal, InvalidOperation
from functools import cached_property
from importlib import resources
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)

from dunning_events.money import ISO_CURRENCIES, minor_units, storable_amount

Channel = Literal["email", "sms", "voice", "letter", "webhook", "task"]
Action = Literal["credit_hold", "hand_off_to_collections", "recommend_write_off"]
Tone = Literal["friendly", "neutral", "gentle", "firm", "urgent", "final"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

# Escalation after a broken promise jumps to the next step whose tone ranks higher than the last one sent.
TONE_RANK: dict[str, int] = {"friendly": 0, "neutral": 1, "gentle": 2, "firm": 3, "urgent": 4, "final": 5}
WEEKDAYS: dict[str, int] = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}

# The widest contact window any policy may use (12 CFR 1006.6(b)(1)): a policy may only narrow it.
EARLIEST_CONTACT = time(8, 0)
LATEST_CONTACT = time(21, 0)

# Channels that reach the debtor themselves (a collector task or the tenant's own webhook do not): a reminder
# on one of these is what a hand-off to collections must come after.
DEBTOR_CHANNELS = frozenset({"email", "sms", "voice", "letter"})

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,79}$")


class _Part(BaseModel):
    # Unknown keys are errors: a typo in a policy must never silently change who gets chased.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _amount(value: Any) -> Any:
    """Config amounts: decimal strings or numbers (YAML writes 5.00 as a float; its shortest repr is exact)."""
    if isinstance(value, bool):
        raise ValueError("must be a decimal amount")
    if isinstance(value, (int, float)):
        value = repr(value)
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("must be a decimal amount") from None
        if not parsed.is_finite():
            raise ValueError("must be a decimal amount")
        return storable_amount(parsed)
    raise ValueError("must be a decimal amount")


def _currency_amounts(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("must be an object mapping ISO 4217 currency codes to amounts")
    out: dict[str, Decimal] = {}
    for code, raw in value.items():
        cur = str(code).upper()
        if cur not in ISO_CURRENCIES:
            raise ValueError(f"{code!r} is not an ISO 4217 currency code")
        amount = _amount(raw)
        if amount < 0:
            raise ValueError(f"{cur}: must not be negative")
        if amount != amount.quantize(Decimal(1).scaleb(-minor_units(cur))):
            raise ValueError(f"{cur}: more decimals than {cur} allows")
        out[cur] = amount
    return out


CurrencyAmounts = Annotated[dict[str, Decimal], Field(default_factory=dict)]


def _time(value: Any) -> Any:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}(:00)?", value.strip()):
        hh, mm = (int(p) for p in value.strip().split(":")[:2])
        if hh < 24 and mm < 60:
            return time(hh, mm)
    raise ValueError("must be a local time like 08:00")


LocalTime = Annotated[time, PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str, when_used="json")]


class QuietHours(_Part):
    """Contact is allowed from `start` (inclusive) to `end` (exclusive), in the debtor's local time."""

    start: LocalTime = EARLIEST_CONTACT
    end: LocalTime = LATEST_CONTACT

    _t = field_validator("start", "end", mode="before")(_time)

    @field_validator("start")
    @classmethod
    def _not_earlier(cls, v: time) -> time:
        if v < EARLIEST_CONTACT:
            raise ValueError("must not be before 08:00 (a policy may only be stricter)")
        return v

    @field_validator("end")
    @classmethod
    def _not_later(cls, v: time) -> time:
        if v > LATEST_CONTACT:
            raise ValueError("must not be after 21:00 (a policy may only be stricter)")
        return v


class Calendar(_Part):
    business_days_only: StrictBool = Field(True, description="Steps go out on business days only")
    weekend: list[Weekday] = Field(default_factory=lambda: list[Weekday](("sat", "sun")))
    holidays: StrictBool = Field(True, description="Skip public holidays of the customer's country")
    holiday_country: str | None = Field(None, description="Use this country's holidays instead of the customer's")

    @field_validator("holiday_country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z]{2}", v):
            raise ValueError("must be an ISO 3166-1 alpha-2 country code")
        return v.upper() if v else v


class AmountRange(_Part):
    min: Decimal | None = None
    max: Decimal | None = None

    _a = field_validator("min", "max", mode="before")(lambda v: None if v is None else _amount(v))


class Applicability(_Part):
    """Which customers and invoices a policy is for. Empty lists mean 'any'."""

    segments: list[str] = Field(default_factory=list)
    tags_any: list[str] = Field(default_factory=list, description="Customer has at least one of these tags")
    tags_none: list[str] = Field(default_factory=list, description="Customer has none of these tags")
    currencies: list[str] = Field(default_factory=list)
    amount: AmountRange = Field(default_factory=AmountRange, description="Invoice balance, in its own currency")
    late_payer: Literal["any", "first_time", "chronic"] = "any"
    chronic_late_after: StrictInt = Field(3, ge=1, description="Late invoices that make a chronic late payer")
    promise_breaker: Literal["any", "chronic", "not_chronic"] = "any"
    chronic_promise_breaker_after: StrictInt = Field(2, ge=1, description="Broken promises that make a chronic one")

    @field_validator("currencies")
    @classmethod
    def _currencies(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c.upper() not in ISO_CURRENCIES]
        if bad:
            raise ValueError(f"not ISO 4217 currency codes: {', '.join(bad)}")
        return [c.upper() for c in v]


class FixedFee(_Part):
    kind: Literal["fixed"]
    amounts: CurrencyAmounts
    description: str = "Reminder fee"

    _a = field_validator("amounts", mode="before")(_currency_amounts)


class PercentageFee(_Part):
    kind: Literal["percentage"]
    percent: Decimal = Field(description="Of each invoice's open balance")
    description: str = "Late fee"

    @field_validator("percent", mode="before")
    @classmethod
    def _pct(cls, v: Any) -> Any:
        d = _amount(v)
        if not Decimal(0) < d <= Decimal(100):
            raise ValueError("must be greater than 0 and at most 100")
        return d


class StatutoryInterest(_Part):
    """Interest from the day after the due date: balance x (reference rate + points) / 100 x days / 365.

    EU Late Payment Directive (B2B): the ECB main refinancing rate + 8 points. The reference rate
    changes twice a year: publish a new policy version when it does.
    """

    kind: Literal["statutory_interest"]
    reference_rate_percent: Decimal
    points: Decimal = Decimal(8)
    basis: str = "ECB main refinancing rate"
    description: str = "Statutory interest"

    _r = field_validator("reference_rate_percent", "points", mode="before")(_amount)


class Compensation(_Part):
    """Fixed compensation for recovery costs, charged once per invoice (EU: EUR 40)."""

    kind: Literal["compensation"]
    amounts: CurrencyAmounts = Field(default_factory=lambda: {"EUR": Decimal(40)})
    description: str = "Compensation for recovery costs (Directive 2011/7/EU art. 6)"

    _a = field_validator("amounts", mode="before")(_currency_amounts)


FeeRule = Annotated[FixedFee | PercentageFee | StatutoryInterest | Compensation, Field(discriminator="kind")]


class Step(_Part):
    name: str
    offset_days: StrictInt = Field(description="Days relative to the due date; negative = before it")
    channels: list[Channel] = Field(min_length=1)
    channel_mode: Literal["all", "fallback"] = "all"
    template_id: str = Field(min_length=1)
    tone: Tone
    fees: list[FeeRule] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError("must be lower-case letters, digits, '_' or '-' (at most 80)")
        return v

    @field_validator("channels")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("must not list a channel twice")
        return v

    @property
    def hands_off(self) -> bool:
        return "hand_off_to_collections" in self.actions


class ContactCap(_Part):
    """At most `max_attempts` on `channel` in `per_days` days, about one debt (invoice) or one debtor."""

    channel: Channel
    max_attempts: StrictInt = Field(ge=1)
    per_days: StrictInt = Field(ge=1)
    per: Literal["debt", "debtor"] = "debt"


class ReEscalation(_Part):
    """What happens when a promise is broken or a payment plan defaults."""

    action: Literal["escalate", "resume"] = Field(
        "escalate", description="escalate: jump to the next firmer step; resume: continue where it was"
    )
    delay_business_days: StrictInt = Field(1, ge=0, description="Business days until that step goes out")


class CatchUp(_Part):
    """Which step an invoice gets when the days of some of its steps have already passed: on first sight (the
    day a company connects its ERP, an import of old invoices) and when the engine was down for longer than
    `after_downtime_hours`. Whatever is chosen, the steps before it are skipped (logged, never sent in a
    burst) and the rest of the schedule keeps its spacing after it."""

    start_with: Literal["latest_passed_step", "first_overdue_step", "skip_passed_steps"] = Field(
        "latest_passed_step",
        description=(
            "latest_passed_step: the step that matches the invoice's age now; first_overdue_step: the first step "
            "after the due date; skip_passed_steps: none of the passed ones, wait for the next step's day"
        ),
    )
    after_downtime_hours: StrictInt = Field(
        24, ge=1, description="A step reached later than this (the engine was down) is caught up by the same rule"
    )


class PolicyDocument(_Part):
    """A policy as written in YAML or posted as JSON (the engine adds the version)."""

    id: str
    name: str = ""
    description: str = ""
    priority: StrictInt = Field(100, description="Lower is tried first when several policies apply")
    applies_to: Applicability = Field(default_factory=Applicability)
    time_zone: str = Field("customer", description="`customer` (the debtor's own zone) or an IANA zone name")
    calendar: Calendar = Field(default_factory=Calendar)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    send_time: LocalTime = Field(time(10, 0), description="Local time steps are planned for")
    minimum_balance: CurrencyAmounts
    consolidation: Literal["per_customer", "per_invoice"] = "per_customer"
    late_step: Literal["send", "skip"] = Field(
        "send", description="A step found overdue after downtime: send it late, or skip it (logged)"
    )
    late_grace_minutes: StrictInt = Field(60, ge=0, description="How late a step may fire and still count as on time")
    min_days_between_steps: StrictInt = Field(2, ge=0, description="Spacing after a step when steps catch up")
    catch_up: CatchUp = Field(default_factory=CatchUp)
    hand_off_requires_reminder: StrictBool = Field(
        True, description="A hand-off to collections waits until at least one reminder has reached the debtor"
    )
    contact_caps: list[ContactCap] = Field(
        default_factory=lambda: [ContactCap(channel="voice", max_attempts=7, per_days=7, per="debt")]
    )
    on_promise_broken: ReEscalation = Field(default_factory=ReEscalation)
    on_plan_defaulted: ReEscalation = Field(default_factory=ReEscalation)
    steps: list[Step] = Field(min_length=1)

    _st = field_validator("send_time", mode="before")(_time)
    _mb = field_validator("minimum_balance", mode="before")(_currency_amounts)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError("must be lower-case letters, digits, '_' or '-' (at most 80)")
        return v

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        if v == "customer":
            return v
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be `customer` or an IANA time zone name such as Europe/Berlin") from None
        return v


@dataclass(frozen=True)
class PolicyError:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class InvalidPolicy(ValueError):
    """Every problem found in a policy document; nothing of it is used."""

    def __init__(self, errors: list[PolicyError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class Policy:
    """A validated policy at one version, with indexes the engine uses on every decision."""

    doc: PolicyDocument
    version: int

    @property
    def id(self) -> str:
        return self.doc.id

    @property
    def steps(self) -> list[Step]:
        return self.doc.steps

    @cached_property
    def step_by_name(self) -> dict[str, Step]:
        return {s.name: s for s in self.doc.steps}

    @cached_property
    def index_of(self) -> dict[str, int]:
        return {s.name: i for i, s in enumerate(self.doc.steps)}

    @cached_property
    def windows(self) -> dict[tuple[str | None, str | None], Any]:
        """ContactWindow per (time zone, country), built once per policy version (see cases.window)."""
        return {}

    @cached_property
    def cap_by_channel(self) -> dict[str, list[ContactCap]]:
        out: dict[str, list[ContactCap]] = {}
        for cap in self.doc.contact_caps:
            out.setdefault(cap.channel, []).append(cap)
        return out

    @cached_property
    def _remaining(self) -> dict[tuple[tuple[str, ...], int | None], tuple[Step, ...]]:
        return {}

    @cached_property
    def _minimum_minor(self) -> dict[str, int]:
        return {}

    def remaining_steps(self, done: tuple[str, ...] | list[str], last_offset: int | None) -> tuple[Step, ...]:
        """Steps not yet sent or skipped, after the last one handled. Across versions a step is the same
        step by name, and nothing at or before the last handled offset is ever sent again.

        Memoised per (steps handled, last offset): the same few histories recur across every case, and the
        timer asks for every decision. A tuple, so no caller can change the shared answer."""
        key = (tuple(done), last_offset)
        found = self._remaining.get(key)
        if found is None:
            found = tuple(
                s for s in self.doc.steps if s.name not in done and (last_offset is None or s.offset_days > last_offset)
            )
            if len(self._remaining) < 10_000:
                self._remaining[key] = found
        return found

    def minimum_minor(self, currency: str) -> int:
        found = self._minimum_minor.get(currency)
        if found is None:
            amount = self.doc.minimum_balance.get(currency)
            found = self._minimum_minor[currency] = 0 if amount is None else int(amount.scaleb(minor_units(currency)))
        return found

    def to_json(self) -> dict[str, Any]:
        return {**self.doc.model_dump(mode="json"), "version": self.version}


# ---------------------------------------------------------------- validation


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    skip_next_tag = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            skip_next_tag = True
            continue
        # A discriminated union adds its tag to the location (fees[0].fixed.amounts): drop it.
        if skip_next_tag and part in ("fixed", "percentage", "statutory_interest", "compensation"):
            skip_next_tag = False
            continue
        skip_next_tag = False
        out += f".{part}" if out else str(part)
    return out or "(policy)"


_REASONS = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "decimal_parsing": "must be a decimal amount",
    "decimal_type": "must be a decimal amount",
    "union_tag_not_found": "needs a `kind` (fixed, percentage, statutory_interest or compensation)",
}


def _reason(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _REASONS:
        return _REASONS[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}".replace("'", "")
    if kind == "union_tag_invalid":
        return f"kind must be one of {ctx.get('expected_tags', '')}".replace("'", "")
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {
            "greater_than_equal": "at least",
            "greater_than": "greater than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }
        bound = next(iter(ctx.values()), "")
        return f"must be {words[kind]} {bound}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    msg = str(err["msg"])
    return msg[:1].lower() + msg[1:]


def _cross_checks(doc: PolicyDocument) -> list[PolicyError]:
    """Rules spanning several fields; run once every field on its own is valid."""
    errors: list[PolicyError] = []
    q = doc.quiet_hours
    if q.start >= q.end:
        errors.append(PolicyError("quiet_hours.end", "must be after quiet_hours.start"))
    elif not q.start <= doc.send_time < q.end:
        errors.append(PolicyError("send_time", f"must be inside the quiet-hours window {q.start:%H:%M}-{q.end:%H:%M}"))
    seen: dict[str, int] = {}
    for i, step in enumerate(doc.steps):
        if step.name in seen:
            errors.append(PolicyError(f"steps[{i}].name", f"duplicates steps[{seen[step.name]}].name"))
        seen.setdefault(step.name, i)
        if i and step.offset_days <= doc.steps[i - 1].offset_days:
            errors.append(
                PolicyError(
                    f"steps[{i}].offset_days",
                    f"must be greater than steps[{i - 1}].offset_days ({doc.steps[i - 1].offset_days})",
                )
            )
        if "hand_off_to_collections" in step.actions and i != len(doc.steps) - 1:
            errors.append(PolicyError(f"steps[{i}].actions", "hand_off_to_collections must be on the last step"))
        kinds = [f.kind for f in step.fees]
        for kind in set(kinds):
            if kinds.count(kind) > 1:
                errors.append(PolicyError(f"steps[{i}].fees", f"lists {kind} more than once"))
        if step.fees and step.offset_days <= 0:
            errors.append(PolicyError(f"steps[{i}].fees", "fees apply only to steps after the due date"))
    a = doc.applies_to.amount
    if a.min is not None and a.max is not None and a.min > a.max:
        errors.append(PolicyError("applies_to.amount.max", "must not be less than applies_to.amount.min"))
    if len(set(doc.calendar.weekend)) == 7:
        errors.append(PolicyError("calendar.weekend", "must leave at least one business day"))
    return errors


def validate_policy(raw: Any) -> PolicyDocument:
    """Validate a parsed policy (dict); raise InvalidPolicy listing every error with its path and reason."""
    if not isinstance(raw, dict):
        raise InvalidPolicy([PolicyError("(policy)", "must be an object")])
    try:
        doc = PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        raise InvalidPolicy([PolicyError(_path(e["loc"]), _reason(e)) for e in exc.errors()]) from None
    errors = _cross_checks(doc)
    if errors:
        raise InvalidPolicy(errors)
    return doc


# ---------------------------------------------------------------- YAML / JSON


class _PolicyYamlLoader(yaml.SafeLoader):
    """YAML 1.1 reads 21:00 as the base-60 integer 1260; policies are full of clock times, so
    integers here are plain decimal integers only."""


_PolicyYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)


def parse_policy_text(text: str | bytes, content_type: str = "application/json") -> Any:
    """Parse a policy body as YAML or JSON (by content type; YAML is a superset, so it is the fallback)."""
    try:
        if "json" in content_type:
            return json.loads(text)
        return yaml.load(text, Loader=_PolicyYamlLoader)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidPolicy(
            [PolicyError("(policy)", f"not valid {'JSON' if 'json' in content_type else 'YAML'}: {exc}")]
        ) from None


def load_policy_yaml(text: str | bytes) -> PolicyDocument:
    return validate_policy(parse_policy_text(text, "application/yaml"))


DEFAULT_POLICY_ID = "default"


def _builtin_default() -> Policy:
    text = resources.files("policy_engine.domain").joinpath("default_policy.yaml").read_text()
    return Policy(load_policy_yaml(text), version=1)


DEFAULT_POLICY: Policy = _builtin_default()
