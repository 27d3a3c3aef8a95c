"""When a debtor may be contacted: local time zones, business days, public holidays, quiet hours. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_calendars

from policy_engine.domain.policy import WEEKDAYS, PolicyDocument

_ZONE_TAB = Path("/usr/share/zoneinfo/zone1970.tab")


@lru_cache(maxsize=4096)
def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=1)
def _zones_by_country() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    try:
        lines = _ZONE_TAB.read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        for cc in parts[0].split(","):
            out.setdefault(cc, []).append(parts[2])
    return {k: tuple(v) for k, v in out.items()}


def debtor_zones(time_zone: str | None, country: str | None) -> tuple[ZoneInfo, ...]:
    """The zones the debtor may be in: their own, or — when it is unknown — every zone of their country
    (contact only when it is allowed in all of them: 12 CFR 1006.6(b)(1)), or UTC as the last resort."""
    own = zone(time_zone) if time_zone else None
    if own is not None:
        return (own,)
    names = _zones_by_country().get((country or "").upper(), ())
    zones = tuple(z for z in (zone(n) for n in names) if z is not None)
    return zones or (ZoneInfo("UTC"),)


_HOLIDAYS: dict[tuple[str, int], frozenset[date]] = {}


def _holidays(country: str, year: int) -> frozenset[date]:
    found = _HOLIDAYS.get((country, year))
    if found is None:
        try:
            found = frozenset(holiday_calendars.country_holidays(country, years=year).keys())
        except (NotImplementedError, KeyError):
            found = frozenset()
        _HOLIDAYS[(country, year)] = found
    return found


def missing_holidays(countries: Iterable[str | None], year: int) -> set[str]:
    """The countries whose holiday calendar for `year` is not loaded yet."""
    return {c.upper() for c in countries if c and (c.upper(), year) not in _HOLIDAYS}


def load_holidays(countries: Iterable[str], year: int) -> None:
    """Load calendars ahead of use. The first one of a country imports its module (~100 ms of CPU): the
    timer does it in a worker thread, so the event loop (a payment's cancellation) is not held up."""
    for country in countries:
        _holidays(country, year)


# (weekend, holiday country, day) -> business day? Shared by every window: the same few calendars recur.
_BUSINESS_DAYS: dict[tuple[frozenset[int], str | None, date], bool] = {}


@dataclass(frozen=True, eq=False)
class ContactWindow:
    """Everything needed to place a step in time for one debtor under one policy.

    Compared by identity (windows are built once per policy version and debtor zone, see cases.window), so
    the planning caches keyed on a window hash it in constant time.
    """

    primary: ZoneInfo  # dates and the send time are read in this zone
    checked: tuple[ZoneInfo, ...]  # quiet hours must hold in every one of these
    start: time
    end: time
    send_time: time
    business_days_only: bool
    weekend: frozenset[int]
    holiday_country: str | None

    @classmethod
    def for_debtor(cls, doc: PolicyDocument, time_zone: str | None, country: str | None) -> ContactWindow:
        debtor = debtor_zones(time_zone, country)
        primary = debtor[0] if doc.time_zone == "customer" else ZoneInfo(doc.time_zone)
        checked = tuple(dict.fromkeys((*debtor, primary)))
        cal = doc.calendar
        return cls(
            primary=primary,
            checked=checked,
            start=doc.quiet_hours.start,
            end=doc.quiet_hours.end,
            send_time=doc.send_time,
            business_days_only=cal.business_days_only,
            weekend=frozenset(WEEKDAYS[d] for d in cal.weekend),
            holiday_country=(cal.holiday_country or country or None) if cal.holidays else None,
        )

    # ------------------------------------------------------------ days

    def is_business_day(self, day: date) -> bool:
        if not self.business_days_only:
            return True
        key = (self.weekend, self.holiday_country, day)
        known = _BUSINESS_DAYS.get(key)
        if known is None:
            known = day.weekday() not in self.weekend and not (
                self.holiday_country and day in _holidays(self.holiday_country.upper(), day.year)
            )
            if len(_BUSINESS_DAYS) > 200_000:
                _BUSINESS_DAYS.clear()
            _BUSINESS_DAYS[key] = known
        return known

    def roll_forward(self, day: date) -> date:
        for _ in range(400):
            if self.is_business_day(day):
                return day
            day += timedelta(days=1)
        return day

    def add_business_days(self, day: date, n: int) -> date:
        """The n-th business day after `day` (n=0: `day` itself if it is one, else the next one)."""
        if n == 0:
            return self.roll_forward(day)
        for _ in range(n):
            day = self.roll_forward(day + timedelta(days=1))
        return day

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.primary).date()

    def at(self, day: date, t: time) -> datetime:
        return datetime.combine(day, t, tzinfo=self.primary).astimezone(UTC)

    # ------------------------------------------------------------ instants

    def allowed(self, instant: datetime) -> bool:
        if not self.is_business_day(self.local_date(instant)):
            return False
        for z in self.checked:
            t = instant.astimezone(z).time()
            if not self.start <= t < self.end:
                return False
        return True

    def next_allowed(self, instant: datetime) -> datetime:
        """`instant` if contact is allowed then, else the first allowed moment after it."""
        if self.allowed(instant):
            return instant
        if len(self.checked) == 1:
            return self._next_allowed_one_zone(instant)
        # Several zones: walk in quarter hours (bounded) until every zone is inside its window.
        probe = instant.astimezone(UTC).replace(second=0, microsecond=0)
        probe += timedelta(minutes=15 - probe.minute % 15)
        for _ in range(4 * 24 * 21):
            if self.allowed(probe):
                return probe
            probe += timedelta(minutes=15)
        return self._next_allowed_one_zone(instant)

    def _next_allowed_one_zone(self, instant: datetime) -> datetime:
        local = instant.astimezone(self.primary)
        day = local.date()
        if self.is_business_day(day) and local.time() < self.start:
            return self.at(day, self.start)
        return self.at(self.roll_forward(day + timedelta(days=1)), self.start)

    def plan(self, day: date, not_before: datetime) -> datetime:
        """A step's moment: its (business) day at the send time, never before `not_before`, inside the window."""
        planned = _nominal_moment(self, day)
        return planned if planned >= not_before else self.next_allowed(not_before)

    def window_end(self, instant: datetime) -> datetime:
        """The end of the allowed window the instant is in (the notifier must not deliver after it)."""
        return _window_end(self, instant)

    def window_start(self, instant: datetime) -> datetime:
        """The start of the allowed window the instant is in (the notifier must not deliver before it)."""
        return _window_start(self, instant)

    def describe(self) -> str:
        """The window as the timeline says it: hours and which days."""
        days = "business days" if self.business_days_only else "every day"
        return f"{self.start:%H:%M}-{self.end:%H:%M} local, {days}"


@lru_cache(maxsize=100_000)
def _nominal_moment(w: ContactWindow, day: date) -> datetime:
    """The first allowed moment from the step day's send time (the same for every case on that day)."""
    return w.next_allowed(w.at(w.roll_forward(day), w.send_time))


@lru_cache(maxsize=10_000)
def _window_end(w: ContactWindow, instant: datetime) -> datetime:
    # One batch decides thousands of cases at the same instant: computed once per window and instant.
    return min(datetime.combine(instant.astimezone(z).date(), w.end, tzinfo=z).astimezone(UTC) for z in w.checked)


@lru_cache(maxsize=10_000)
def _window_start(w: ContactWindow, instant: datetime) -> datetime:
    # Every zone must be inside its window: the window opens when the last of them opens.
    return max(datetime.combine(instant.astimezone(z).date(), w.start, tzinfo=z).astimezone(UTC) for z in w.checked)


@lru_cache(maxsize=10_000)
def allowed_at(w: ContactWindow, instant: datetime) -> bool:
    """`w.allowed(instant)`, once per window and instant: a batch decides thousands of cases at one instant."""
    return w.allowed(instant)


@lru_cache(maxsize=10_000)
def local_day(w: ContactWindow, instant: datetime) -> date:
    """`w.local_date(instant)`, once per window and instant."""
    return w.local_date(instant)
