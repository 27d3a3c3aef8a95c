"""Tenants' own templates as stored: read for a batch's steps, and turned into what the renderer takes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.adapters import orm
from notifier.domain.rendering import TemplateSource


def template_from_row(rec: Mapping[str, Any]) -> TemplateSource:
    return TemplateSource(
        template_id=rec["template_id"],
        locale=rec["locale"],
        subject=rec["subject"],
        text=rec["body_text"],
        html=rec["body_html"],
        sms=rec["sms"],
        voice=rec["voice"],
        origin="tenant",
    )


async def tenant_templates(
    session: AsyncSession, tenants: Iterable[str], template_ids: Iterable[str]
) -> dict[str, dict[tuple[str, str], TemplateSource]]:
    """tenant -> (template id, locale) -> the tenant's template, for these tenants and template ids."""
    tp = orm.templates.c
    result = await session.execute(
        select(orm.templates).where(tp.tenant_id.in_(sorted(tenants)), tp.template_id.in_(sorted(template_ids)))
    )
    found: dict[str, dict[tuple[str, str], TemplateSource]] = {}
    for rec in result.mappings():
        source = template_from_row(cast(Mapping[str, Any], rec))
        found.setdefault(rec["tenant_id"], {})[(rec["template_id"], rec["locale"])] = source
    return found
