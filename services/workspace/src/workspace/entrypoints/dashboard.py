"""The dashboard (`/`): the portfolio's figures from insights, per currency, filtered by currency and segment.

A GET form filters (works without JavaScript); each chart is server-side SVG next to a table with the same
numbers; a figure insights could not answer shows "could not be loaded" in its panel only.
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from workspace.domain import formats
from workspace.domain.charts import Bar, Point, bar_chart, line_chart
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import SignedInPerson
from workspace.entrypoints.web import Translator, language_of, render
from workspace.service_layer.figures import Filters, dashboard

router = APIRouter(include_in_schema=False)

CURRENCY = re.compile(r"^[A-Z]{3}$")


def by_currency(rows: list[dict[str, Any]] | None) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows or []:
        grouped[str(row.get("currency") or "")].append(row)
    return dict(sorted(grouped.items()))


def aging_charts(rows: list[dict[str, Any]] | None, t: Translator) -> list[dict[str, Any]]:
    out = []
    for currency, found in by_currency(rows).items():
        bars = [
            Bar(str(r["bucket"]), formats.as_decimal(r["amount"]) or Decimal(0), formats.money(r["amount"], currency, t.language))
            for r in found
        ]  # fmt: skip
        out.append({
            "currency": currency, "rows": found,
            "svg": bar_chart(f"aging-{currency}", t("dash.aging.chart", currency=currency), bars),
        })  # fmt: skip
    return out


def trend_charts(rows: list[dict[str, Any]] | None, column: str, title_key: str, t: Translator) -> list[dict[str, Any]]:
    out = []
    for currency, found in by_currency(rows).items():
        points = []
        for r in found:
            value = formats.as_decimal(r.get(column))
            shown = "–" if value is None else formats.number(value, t.language)
            points.append(Point(str(r["from"])[:7], value, shown))
        out.append({
            "currency": currency, "points": points,
            "svg": line_chart(f"{column}-{currency}", t(title_key, currency=currency), points),
        })  # fmt: skip
    return out


@router.get("/", response_class=HTMLResponse)
async def show_dashboard(
    request: Request, signed: SignedInPerson, runtime: Runtime, currency: str = "", segment: str = ""
) -> HTMLResponse:
    t = Translator(language_of(request))
    currency, segment = currency.strip().upper(), segment.strip()
    errors: dict[str, str] = {}
    if currency and not CURRENCY.match(currency):
        errors["currency"] = t("dash.filter.currency_invalid")
    if len(segment) > 100:
        errors["segment"] = t("dash.filter.segment_too_long")
    filters = Filters(currency or None, segment or None)
    figures = None
    if not errors:
        figures = await dashboard(runtime.objects.platform, signed.person, filters, runtime.clock.now().date())
        errors.update({k: v for k, v in figures.refused.items() if k in ("currency", "segment")})
        if figures.refused:  # the figures of a filter insights refuses are not shown as "could not be loaded"
            errors.setdefault(
                "segment" if "segment" in figures.refused else "currency", "; ".join(figures.refused.values())
            )
            figures = None
    status = 422 if errors else 200
    return render(
        request, "dashboard.html", status, filters=filters, errors=errors, figures=figures,
        values={"currency": currency, "segment": segment}, fmt=formats,
        aging=aging_charts(figures.aging.value, t) if figures else [],
        dso=trend_charts(figures.dso.value, "dso_standard", "dash.dso.chart", t) if figures else [],
        cei=trend_charts(figures.cei.value, "cei", "dash.cei.chart", t) if figures else [],
    )  # fmt: skip
