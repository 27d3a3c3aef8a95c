"""The portfolio page's data: one cursor page of insights' open invoices (`GET /v1/portfolio`), filtered and sorted
as the person asked; the filters insights refuses come back as field errors for the form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workspace.adapters.platform import PlatformClient
from workspace.domain.people import Person
from workspace.service_layer.reads import get_or_refused

SORTS = ("-balance", "balance", "-days_overdue", "days_overdue", "due_date", "-due_date")
BUCKETS = ("current", "1-30", "31-60", "61-90", "91+")
FILTERS = ("bucket", "currency", "segment", "customer_id", "min_balance")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200  # a page a person reads; insights allows more


@dataclass(frozen=True)
class PortfolioQuery:
    sort: str = "-balance"
    filters: tuple[tuple[str, str], ...] = ()  # (name, value) of the filters given, in FILTERS order
    cursor: str | None = None
    limit: int = PAGE_SIZE

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sort": self.sort, "limit": self.limit, **dict(self.filters)}
        if self.cursor:
            out["cursor"] = self.cursor
        return out


@dataclass(frozen=True)
class PortfolioPage:
    invoices: list[dict[str, Any]]
    next_cursor: str | None


async def portfolio_page(platform: PlatformClient, person: Person, query: PortfolioQuery) -> PortfolioPage:
    page = await get_or_refused(platform, person, "insights", "/v1/portfolio", query.params())
    return PortfolioPage(page["items"], page.get("next_cursor"))
