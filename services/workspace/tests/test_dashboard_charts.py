"""The dashboard's pure parts: amounts formatted per UI language from exact decimals, and the SVG charts
readable without colour (a pattern per bar, every value written, a title and description for screen readers)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from workspace.domain import formats
from workspace.domain.charts import Bar, Point, bar_chart, line_chart
from workspace.service_layer.figures import trend_start


def test_money_is_formatted_per_language_from_the_exact_decimal() -> None:
    assert formats.money("1234567.89", "EUR", "de") == "1.234.567,89\xa0EUR"
    assert formats.money("1234567.89", "EUR", "en") == "1,234,567.89\xa0EUR"
    assert formats.money("-0.10", "USD", "en") == "-0.10\xa0USD"
    assert formats.money("1000", "JPY", "de") == "1.000\xa0JPY"
    # Exact beyond a float's precision: 17 significant digits survive.
    assert formats.money("12345678901234.57", "EUR", "en") == "12,345,678,901,234.57\xa0EUR"
    assert formats.money(None, "EUR", "en") == formats.money(0.1, "EUR", "en") == "–"  # never through a float
    assert formats.percent("87.50", "de") == "87,50\xa0%"  # CEI: insights answers percent
    assert formats.share("0.8750", "de") == "87,5\xa0%" and formats.share("1", "en") == "100.0\xa0%"  # ratios
    assert formats.share(None, "en") == "–"
    assert formats.day("2026-03-02", "de") == "02.03.2026" and formats.day("2026-03-02", "en") == "2026-03-02"
    assert formats.instant("2026-03-02T10:00:00+01:00", "en") == "2026-03-02 09:00 UTC"


def test_a_bar_chart_tells_its_bars_apart_without_colour_and_writes_every_value() -> None:
    bars = [Bar(label, Decimal(v), f"{v} EUR") for label, v in (("current", "10"), ("1-30", "0"), ("91+", "25.5"))]
    svg = str(bar_chart("aging-EUR", "Aging <EUR>", bars))
    assert svg.startswith("<svg") and 'role="img"' in svg and 'aria-labelledby="aging-EUR-title aging-EUR-desc"' in svg
    assert '<title id="aging-EUR-title">Aging &lt;EUR&gt;</title>' in svg  # escaped
    assert [f'fill="url(#aging-EUR-p{n})"' in svg for n in range(3)] == [True] * 3
    assert len({svg.split(f'id="aging-EUR-p{n}"')[1].split("</pattern>")[0] for n in range(3)}) == 3  # distinct
    assert all(b.shown in svg for b in bars) and "current: 10 EUR; 1-30: 0 EUR; 91+: 25.5 EUR" in svg
    assert 'width="0"' in svg  # a zero bar draws nothing, its value is still written
    assert "style" not in svg and "<script" not in svg


def test_a_line_chart_skips_unknown_points_but_names_them() -> None:
    points = [
        Point("2026-01", Decimal("31.5"), "31.5"),
        Point("2026-02", None, "–"),
        Point("2026-03", Decimal("40"), "40"),
    ]
    svg = str(line_chart("dso-EUR", "DSO", points))
    assert svg.count("<rect") == 2 and "<polyline" in svg
    assert "2026-02: –" in svg and all(p.label in svg for p in points)


def test_the_trend_starts_eleven_months_before_this_month() -> None:
    assert trend_start(date(2026, 3, 2)) == date(2025, 4, 1)
    assert trend_start(date(2026, 12, 31)) == date(2026, 1, 1)
