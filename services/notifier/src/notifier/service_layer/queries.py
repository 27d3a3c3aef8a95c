"""What the notifier's routes read and change on a tenant's behalf: deliveries, collector tasks, the suppression
list, channel configuration and templates, and the rows of the customer pages and the dev outbox.

The routers call these and hold no SQL. Lists are the kit's cursor pages on indexed orders: deliveries and
suppressions newest first, tasks oldest first, templates by (template id, locale, origin).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_kit.actor import Actor
from dunning_kit.pages import CursorCodec, Page
from notifier.adapters import orm
from notifier.adapters.templates import template_from_row
from notifier.domain.default_templates import SHIPPED, TONES
from notifier.domain.rendering import TemplateSource

DELIVERIES = CursorCodec("notifier.deliveries")
TASKS = CursorCodec("notifier.tasks")
SUPPRESSIONS = CursorCodec("notifier.suppressions")
TEMPLATES = CursorCodec("notifier.templates")
TEMPLATE_VERSIONS = CursorCodec("notifier.template_versions")

DELIVERY_COLUMNS = (
    "id", "customer_id", "step_id", "channel", "status", "provider", "recipient", "template_id", "locale",
    "subject", "error", "attempts", "provider_message_id", "next_attempt_at", "sent_at", "created_at", "updated_at",
)  # fmt: skip


def plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row as JSON values: instants in ISO 8601, ids as strings."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif isinstance(value, uuid.UUID):
            value = str(value)
        out[key] = value
    return out


def _newest_first(columns: Sequence[Any], after: tuple[Any, ...] | None) -> Any:
    return tuple_(*columns) < tuple_(*(literal(v) for v in after)) if after else None


# ---------------------------------------------------------------- deliveries


async def deliveries(
    session: AsyncSession, tenant_id: str, filters: Mapping[str, str | None], *, limit: int, cursor: str | None
) -> Page[dict[str, Any]]:
    """Newest first on (created_at, id): the index (tenant_id, created_at, id) serves it."""
    d = orm.deliveries.c
    query = select(*(d[c] for c in DELIVERY_COLUMNS)).where(d.tenant_id == tenant_id)
    for column, value in filters.items():
        if value is not None:
            query = query.where(d[column] == value)
    if (after := DELIVERIES.decode(cursor, 2)) is not None:
        query = query.where(tuple_(d.created_at, d.id) < tuple_(literal(after[0]), literal(uuid.UUID(after[1]))))
    rows = (await session.execute(query.order_by(d.created_at.desc(), d.id.desc()).limit(limit + 1))).mappings().all()
    return DELIVERIES.page(rows, limit, lambda r: (r["created_at"], str(r["id"])), plain)


async def delivery(session: AsyncSession, tenant_id: str, delivery_id: uuid.UUID) -> dict[str, Any] | None:
    d = orm.deliveries.c
    row = (
        (
            await session.execute(
                select(*(d[c] for c in DELIVERY_COLUMNS), d.body_text, d.body_html, d.step).where(
                    d.id == delivery_id, d.tenant_id == tenant_id
                )
            )
        )
        .mappings()
        .first()
    )
    return plain(row) if row else None


async def recent_messages(session: AsyncSession, limit: int) -> Sequence[Any]:
    """Every tenant's latest messages (the development outbox page only)."""
    d = orm.deliveries.c
    query = select(
        d.sent_at, d.created_at, d.tenant_id, d.channel, d.provider, d.recipient, d.subject, d.body_text, d.status,
        d.error,
    )  # fmt: skip
    return (await session.execute(query.order_by(d.created_at.desc(), d.id).limit(limit))).all()


# ---------------------------------------------------------------- collector tasks


# The task list and its changes: service_layer/tasks.py (TASKS is its cursor codec).


# ---------------------------------------------------------------- suppressions


async def suppressions(
    session: AsyncSession, tenant_id: str, *, limit: int, cursor: str | None
) -> Page[dict[str, Any]]:
    """Newest first on (created_at, kind, address): the index (tenant_id, created_at, kind, address) serves it."""
    s = orm.suppressions.c
    query = select(orm.suppressions).where(s.tenant_id == tenant_id)
    key = (s.created_at, s.kind, s.address)
    if (after := SUPPRESSIONS.decode(cursor, 3)) is not None:
        query = query.where(_newest_first(key, after))
    rows = (await session.execute(query.order_by(*(c.desc() for c in key)).limit(limit + 1))).mappings().all()
    return SUPPRESSIONS.page(rows, limit, lambda r: (r["created_at"], r["kind"], r["address"]), plain)


async def lift_suppression(session: AsyncSession, tenant_id: str, kind: str, address: str) -> bool:
    s = orm.suppressions.c
    gone = (
        await session.execute(
            delete(orm.suppressions)
            .where(s.tenant_id == tenant_id, s.kind == kind, s.address == address)
            .returning(s.address)
        )
    ).first()
    return gone is not None


# ---------------------------------------------------------------- channel configuration


async def stored_config(session: AsyncSession, tenant_id: str) -> dict[str, Any] | None:
    ts = orm.tenant_settings.c
    found: dict[str, Any] | None = await session.scalar(select(ts.config).where(ts.tenant_id == tenant_id))
    return found


async def store_config(session: AsyncSession, tenant_id: str, sealed: dict[str, Any], now: datetime) -> None:
    ts = orm.tenant_settings.c
    stmt = insert(orm.tenant_settings).values(tenant_id=tenant_id, config=sealed, updated_at=now)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[ts.tenant_id], set_={"config": sealed, "updated_at": now})
    )


# ---------------------------------------------------------------- templates


async def tenant_templates(
    session: AsyncSession, tenant_id: str, template_id: str | None = None
) -> dict[tuple[str, str], TemplateSource]:
    tp = orm.templates.c
    query = select(orm.templates).where(tp.tenant_id == tenant_id)
    if template_id is not None:
        query = query.where(tp.template_id == template_id)
    rows = (await session.execute(query)).mappings().all()
    return {(r["template_id"], r["locale"]): template_from_row(dict(r)) for r in rows}


async def templates(session: AsyncSession, tenant_id: str, *, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
    """The shipped defaults and the tenant's own, merged on (template_id, locale, origin): a shipped template sorts
    just before the tenant's override of it. The tenant's part is a keyset read of its primary key."""
    after = TEMPLATES.decode(cursor, 3)
    tp = orm.templates.c
    query = select(tp.template_id, tp.locale).where(tp.tenant_id == tenant_id)
    if after is not None:
        query = query.where(tuple_(tp.template_id, tp.locale, literal("tenant")) > tuple_(*(literal(v) for v in after)))
    own = [(r.template_id, r.locale, "tenant") for r in await session.execute(
        query.order_by(tp.template_id, tp.locale).limit(limit + 1))]  # fmt: skip
    shipped = sorted((tid, loc, "shipped") for tid, loc in SHIPPED)
    merged = sorted(own + [k for k in shipped if after is None or k > after])[: limit + 1]
    overridden = {(tid, loc) for tid, loc, _ in own}
    shipped_here = [(tid, loc) for tid, loc, origin in merged if origin == "shipped" and (tid, loc) not in overridden]
    if shipped_here:  # an override may sort onto the next page: ask for exactly these
        overridden |= {
            (r.template_id, r.locale)
            for r in await session.execute(
                select(tp.template_id, tp.locale).where(
                    tp.tenant_id == tenant_id, tuple_(tp.template_id, tp.locale).in_(shipped_here)
                )
            )
        }

    def view(key: tuple[str, str, str]) -> dict[str, Any]:
        tid, loc, origin = key
        if origin == "tenant":
            return {"template_id": tid, "locale": loc, "origin": origin}
        return {"template_id": tid, "locale": loc, "origin": origin, "tone": TONES[tid][0],
                "overridden": (tid, loc) in overridden}  # fmt: skip

    return TEMPLATES.page(merged, limit, lambda k: k, view)


async def save_template(
    session: AsyncSession, tenant_id: str, template_id: str, locale: str, values: dict[str, Any],
    author: Actor | None = None,
) -> int:  # fmt: skip
    """Save the template as its next version (kept in template_versions with its author); returns the version."""
    tp, tv = orm.templates.c, orm.template_versions.c
    authored = {"author_sub": author.sub if author else None, "author_name": author.name if author else None}
    # A template deleted and saved again goes on from its history's last version, not from 1 again.
    after_history = (
        select(func.coalesce(func.max(tv.version), 0) + 1)
        .where(tv.tenant_id == tenant_id, tv.template_id == template_id, tv.locale == locale)
        .scalar_subquery()
    )
    stmt = insert(orm.templates).values(
        tenant_id=tenant_id, template_id=template_id, locale=locale, version=after_history, **values, **authored
    )
    version: int = (
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[tp.tenant_id, tp.template_id, tp.locale],
                # the row's own count, read under its lock: two saves at once get two versions
                set_={**values, **authored, "version": func.greatest(tp.version + 1, after_history)},
            ).returning(tp.version)
        )
    ).scalar_one()
    await session.execute(
        insert(orm.template_versions).values(
            tenant_id=tenant_id,
            template_id=template_id,
            locale=locale,
            version=version,
            subject=values["subject"],
            body_text=values["body_text"],
            body_html=values["body_html"],
            sms=values["sms"],
            voice=values["voice"],
            created_at=values["updated_at"],
            **authored,
        )
    )
    return version


def _author(sub: str | None, name: str | None) -> dict[str, str] | None:
    return {"sub": sub, "name": name or ""} if sub else None


async def template_authorship(
    session: AsyncSession, tenant_id: str, template_id: str, locale: str
) -> dict[str, Any] | None:
    """The version in force of the tenant's template and who saved it (None: the tenant has none)."""
    tp = orm.templates.c
    row = (
        await session.execute(
            select(tp.version, tp.author_sub, tp.author_name).where(
                tp.tenant_id == tenant_id, tp.template_id == template_id, tp.locale == locale
            )
        )
    ).first()
    return {"version": row.version, "author": _author(row.author_sub, row.author_name)} if row else None


async def template_versions(
    session: AsyncSession, tenant_id: str, template_id: str, locale: str, *, limit: int, cursor: str | None
) -> Page[dict[str, Any]]:
    """Every saved version of the tenant's template for a locale, oldest first, each with its author."""
    after = TEMPLATE_VERSIONS.decode(cursor, 1)
    tv = orm.template_versions.c
    query = select(orm.template_versions).where(
        tv.tenant_id == tenant_id, tv.template_id == template_id, tv.locale == locale
    )
    if after is not None:
        query = query.where(tv.version > after[0])
    rows = (await session.execute(query.order_by(tv.version).limit(limit + 1))).mappings().all()
    return TEMPLATE_VERSIONS.page(
        rows, limit, lambda r: (r["version"],),
        lambda r: {"version": r["version"], "created_at": r["created_at"].isoformat(),
                   "author": _author(r["author_sub"], r["author_name"]),
                   **{part: r[column] for part, column in (("subject", "subject"), ("text", "body_text"),
                      ("html", "body_html"), ("sms", "sms"), ("voice", "voice"))}},
    )  # fmt: skip


async def delete_template(session: AsyncSession, tenant_id: str, template_id: str, locale: str) -> bool:
    tp = orm.templates.c
    gone = (
        await session.execute(
            delete(orm.templates)
            .where(tp.tenant_id == tenant_id, tp.template_id == template_id, tp.locale == locale)
            .returning(tp.template_id)
        )
    ).first()
    return gone is not None


# ---------------------------------------------------------------- customers and their open invoices


async def customer(session: AsyncSession, tenant_id: str, customer_id: str) -> dict[str, Any] | None:
    c = orm.customers.c
    row = (
        (await session.execute(select(orm.customers).where(c.tenant_id == tenant_id, c.customer_id == customer_id)))
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def open_invoices(
    session: AsyncSession, tenant_id: str, customer_id: str, invoice_ids: list[str] | None
) -> Sequence[Any]:
    """The customer's invoices with a balance, earliest due first (the preview's real data)."""
    b = orm.invoice_balances.c
    query = select(orm.invoice_balances).where(
        b.tenant_id == tenant_id, b.customer_id == customer_id, b.status == "open", b.balance_minor > 0
    )
    if invoice_ids:
        query = query.where(b.invoice_id.in_(invoice_ids))
    return (await session.execute(query.order_by(b.due_date, b.invoice_id))).mappings().all()


async def invoices_to_pay(session: AsyncSession, tenant_id: str, customer_id: str, invoice_ids: list[str]) -> Any:
    """The invoices a pay link names, by number (the pay page's table)."""
    b = orm.invoice_balances.c
    return (
        await session.execute(
            select(b.number, b.currency, b.balance_minor, b.status)
            .where(b.tenant_id == tenant_id, b.customer_id == customer_id, b.invoice_id.in_(invoice_ids))
            .order_by(b.number)
        )
    ).all()
