"""The portfolio (`/portfolio`): insights' open invoices, filtered, sorted, a page at a time (cursor links)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from workspace.adapters.platform import ServiceUnavailable
from workspace.domain import formats
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import SignedInPerson
from workspace.entrypoints.web import Translator, language_of, render
from workspace.service_layer.portfolio import (
    BUCKETS,
    FILTERS,
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    SORTS,
    PortfolioQuery,
    portfolio_page,
)  # fmt: skip
from workspace.service_layer.reads import Refused

router = APIRouter(include_in_schema=False)


@router.get("/portfolio", response_class=HTMLResponse)
async def show_portfolio(request: Request, signed: SignedInPerson, runtime: Runtime) -> HTMLResponse:
    t = Translator(language_of(request))
    asked = request.query_params
    values = {name: asked.get(name, "").strip() for name in FILTERS}
    values["currency"] = values["currency"].upper()
    sort = asked.get("sort", "-balance")
    errors: dict[str, str] = {}
    if sort not in SORTS:
        errors["sort"] = t("portfolio.sort_invalid")
    if values["bucket"] and values["bucket"] not in BUCKETS:
        errors["bucket"] = t("portfolio.bucket_invalid")
    limit = asked.get("limit", "")
    size = int(limit) if limit.isdigit() and 1 <= int(limit) <= MAX_PAGE_SIZE else PAGE_SIZE
    given = tuple((name, values[name]) for name in FILTERS if values[name])
    query = PortfolioQuery(sort if sort in SORTS else "-balance", given, asked.get("cursor") or None, size)
    page, unavailable = None, None
    if not errors:
        try:
            page = await portfolio_page(runtime.objects.platform, signed.person, query)
        except Refused as exc:
            errors.update(exc.errors or {"cursor": exc.detail})
        except ServiceUnavailable as exc:
            unavailable = exc.service
    same = dict(given) | {"sort": query.sort} | ({"limit": str(size)} if size != PAGE_SIZE else {})
    next_link = f"/portfolio?{urlencode(same | {'cursor': page.next_cursor})}" if page and page.next_cursor else None
    first_link = f"/portfolio?{urlencode(same)}" if query.cursor else None
    return render(
        request, "portfolio.html", 422 if errors else 200, page=page, unavailable=unavailable, errors=errors,
        values=values | {"sort": query.sort}, sorts=SORTS, buckets=BUCKETS, next_link=next_link,
        first_link=first_link, fmt=formats,
    )  # fmt: skip
