"""Everything a claimed batch's decisions read, loaded once for the whole batch inside the claim transaction:
customers, the last look's balances, the tenants' channel configs (secrets opened), their templates, each
row's recipient and whether it is suppressed. Deciding (compose.py) is then a pure function of row and context."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_kit.data_keys import UndecryptableSecret
from notifier.adapters import batch_context
from notifier.adapters.channel_secrets import ChannelSecrets
from notifier.adapters.templates import tenant_templates
from notifier.domain.tenant_config import TenantConfig
from notifier.service_layer.compose import BatchContext, Composer, Recipient
from notifier.service_layer.suppressions import suppressed

log = logging.getLogger("notifier.dispatcher")


async def load_decision_context(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], composer: Composer, secrets: ChannelSecrets
) -> tuple[BatchContext, dict[Any, Recipient]]:
    """The batch's context and each row's recipient (by delivery id)."""
    ctx = BatchContext()
    tenants = {r["tenant_id"] for r in rows}
    ctx.customers.update(await batch_context.customers(session, {(r["tenant_id"], r["customer_id"]) for r in rows}))
    ctx.balances.update(
        await batch_context.invoice_balances(
            session, {(r["tenant_id"], inv["invoice_id"]) for r in rows for inv in r["step"]["invoices"]}
        )
    )
    for t, cfg in await batch_context.stored_channel_configs(session, tenants):
        try:
            cfg = secrets.open(t, cfg)
        except UndecryptableSecret as exc:  # logged once, readiness false; its webhooks wait (compose.py)
            cfg = secrets.without_secret(cfg)
            ctx.secret_errors[t] = str(exc)
        try:
            ctx.configs[t] = TenantConfig.model_validate(cfg)
        except ValueError as exc:  # stored config predates a validation rule: use defaults, say so
            log.error("tenant %s: stored channel config is invalid (%s); using defaults", t, exc)
    ctx.templates.update(await tenant_templates(session, tenants, {r["step"]["template_id"] for r in rows}))
    recipients = {
        row["id"]: composer.recipient(
            row, ctx.customers.get((row["tenant_id"], row["customer_id"])), ctx.config(row["tenant_id"])
        )
        for row in rows
    }
    ctx.suppressed = await suppressed(session, rows, recipients)
    return ctx, recipients
