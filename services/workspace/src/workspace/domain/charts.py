"""Charts drawn on the server as SVG: readable without colour (each bar its own pattern, every value written on
the chart as text), described for screen readers (`role="img"`, a title and a description), and always shown
next to a table with the same numbers. No script and no inline style: the page's CSP allows neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

# One pattern per bar (the aging buckets are five): solid, diagonal, dots, cross-hatch, horizontal lines.
PATTERNS = (
    '<rect width="8" height="8" fill="#0b57a4"/>',
    '<rect width="8" height="8" fill="#ffffff"/><path d="M0,8 L8,0 M-2,2 L2,-2 M6,10 L10,6" stroke="#1b1f24" '
    'stroke-width="2"/>',
    '<rect width="8" height="8" fill="#ffffff"/><circle cx="4" cy="4" r="2" fill="#1b1f24"/>',
    '<rect width="8" height="8" fill="#ffffff"/><path d="M0,0 L8,8 M8,0 L0,8" stroke="#8a4b00" stroke-width="1.5"/>',
    '<rect width="8" height="8" fill="#a11d1d"/><path d="M0,4 L8,4" stroke="#ffffff" stroke-width="2"/>',
)


@dataclass(frozen=True)
class Bar:
    label: str  # e.g. the bucket "31-60"
    value: Decimal  # the length of the bar
    shown: str  # the value as the page writes it (formatted in the UI language)


@dataclass(frozen=True)
class Point:
    label: str  # e.g. the month "2026-11"
    value: Decimal | None  # None: the figure is unknown for this period (no point drawn, a dash written)
    shown: str


def _frame(chart_id: str, title: str, description: str, width: int, height: int, body: str) -> Markup:
    cid = escape(chart_id)
    return Markup(
        # Its own size as the largest it is drawn (a chart of three months is not blown up to the page's width,
        # its text with it); narrower screens scale it down (CSS max-width).
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" focusable="false">'
        f'<title id="{cid}-title">{escape(title)}</title><desc id="{cid}-desc">{escape(description)}</desc>'
        f"{body}</svg>"
    )


def bar_chart(chart_id: str, title: str, bars: list[Bar]) -> Markup:
    """Horizontal bars, one row each: the label, the bar in its own pattern, the value written after it."""
    row, label_w, bar_w, value_w = 34, 90, 330, 160
    width, height = label_w + bar_w + value_w, max(1, len(bars)) * row + 8
    top = max((b.value for b in bars), default=Decimal(0))
    defs = "".join(
        f'<pattern id="{escape(chart_id)}-p{n}" width="8" height="8" patternUnits="userSpaceOnUse">'
        f"{PATTERNS[n % len(PATTERNS)]}</pattern>"
        for n in range(len(bars))
    )
    rows = []
    for n, bar in enumerate(bars):
        y = 4 + n * row
        length = 0 if top <= 0 or bar.value <= 0 else max(2, int(bar.value / top * bar_w))
        rows.append(
            f'<text x="{label_w - 8}" y="{y + 21}" text-anchor="end" font-size="14" fill="#1b1f24">'
            f"{escape(bar.label)}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{length}" height="24" fill="url(#{escape(chart_id)}-p{n})" '
            f'stroke="#1b1f24" stroke-width="1"/>'
            f'<text x="{label_w + length + 6}" y="{y + 21}" font-size="14" fill="#1b1f24">{escape(bar.shown)}</text>'
        )
    description = "; ".join(f"{b.label}: {b.shown}" for b in bars)
    return _frame(chart_id, title, description, width, height, f"<defs>{defs}</defs>{''.join(rows)}")


def line_chart(chart_id: str, title: str, points: list[Point]) -> Markup:
    """A line over the periods, a marker and the value written at each known point, the period under it."""
    step, left, top_pad, plot_h = 70, 40, 24, 150
    width, height = left * 2 + step * max(1, len(points) - 1), top_pad + plot_h + 40
    known = [p.value for p in points if p.value is not None]
    low, high = (min(known), max(known)) if known else (Decimal(0), Decimal(1))
    span = (high - low) or Decimal(1)

    def y_of(value: Decimal) -> int:
        return int(top_pad + plot_h - (value - low) / span * plot_h)

    coords = [(left + n * step, y_of(p.value)) for n, p in enumerate(points) if p.value is not None]
    parts = []
    if len(coords) > 1:
        path = " ".join(f"{x},{y}" for x, y in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#0b57a4" stroke-width="3"/>')
    for n, p in enumerate(points):
        x = left + n * step
        parts.append(
            f'<text x="{x}" y="{height - 8}" text-anchor="middle" font-size="13" fill="#4a5360">'
            f"{escape(p.label)}</text>"
        )
        if p.value is not None:
            y = y_of(p.value)
            parts.append(
                f'<rect x="{x - 5}" y="{y - 5}" width="10" height="10" fill="#ffffff" stroke="#1b1f24" '
                f'stroke-width="2"/><text x="{x}" y="{y - 10}" text-anchor="middle" font-size="13" '
                f'fill="#1b1f24">{escape(p.shown)}</text>'
            )
    description = "; ".join(f"{p.label}: {p.shown}" for p in points)
    return _frame(chart_id, title, description, width, height, "".join(parts))
