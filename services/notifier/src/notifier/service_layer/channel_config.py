"""A tenant's channel configuration as stored (its webhook signing secret sealed): read for the routes and pages
that show it, preview with it or update it."""

from __future__ import annotations

from typing import Any

from notifier.domain.tenant_config import TenantConfig
from notifier.service_layer import queries
from notifier.service_layer.objects import NotifierRuntime


async def stored_config(runtime: NotifierRuntime, tenant_id: str) -> dict[str, Any] | None:
    async with runtime.sessions() as session:
        return await queries.stored_config(session, tenant_id)


async def load_config(runtime: NotifierRuntime, tenant_id: str, *, open_secret: bool = False) -> TenantConfig:
    """The tenant's channel configuration; its webhook signing secret only when asked for (it is decrypted, and
    UndecryptableSecret says when it cannot be)."""
    raw = await stored_config(runtime, tenant_id)
    if not raw:
        return TenantConfig()
    secrets = runtime.objects.secrets
    if not open_secret:
        return TenantConfig.model_validate(secrets.without_secret(raw))
    return TenantConfig.model_validate(secrets.open(tenant_id, raw))
