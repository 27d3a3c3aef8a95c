"""The README documents every setting every service reads (regenerate with settings_doc --write), and its
quick start works at any hour."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dunning_kit.settings_doc import rows

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text()
    missing = sorted({env for env, *_ in rows() if f"`{env}`" not in text})
    assert not missing, f"run `python -m dunning_kit.settings_doc --write README.md`; missing: {missing}"


def test_the_readme_shows_the_two_commands_first() -> None:
    text = README.read_text()
    assert text.index("make up") < text.index("## What runs")
    assert text.index("make test") < text.index("## What runs")


def test_the_quick_start_finds_a_customer_zone_inside_the_contact_window_at_every_hour_of_the_year() -> None:
    """The quick start must work at any hour: at every moment some zone of its list is between the block's
    bounds, and the bounds sit inside 08:00-21:00 with room for the step to go out."""
    text = README.read_text()
    block = text[text.index("<!-- quickstart:") :]
    zones = re.search(r"for ZONE in ([^;]+); do", block)
    bounds = re.search(r'\[ "\$H" -ge (\d+) \] && \[ "\$H" -lt (\d+) \]', block)
    assert zones and bounds, "the quick start's zone loop changed: update this test"
    low, high = int(bounds.group(1)), int(bounds.group(2))
    assert low >= 8 and high <= 20, "the customer's local hour must leave room inside 08:00-21:00"
    candidates = [ZoneInfo(z) for z in zones.group(1).split()]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    while at < datetime(2028, 1, 1, tzinfo=UTC):  # two years: both DST switches of every zone, twice
        assert any(low <= at.astimezone(z).hour < high for z in candidates), at
        at += timedelta(minutes=30)
