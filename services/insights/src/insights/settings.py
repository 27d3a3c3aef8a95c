"""insights settings (environment variables; see the README's settings table)."""

from typing import Annotated

from pydantic import AfterValidator, Field

from dunning_kit.settings import ServiceSettings, parse_pairs
from insights.adapters.export_client import parse_export_urls


def _check_urls(value: str) -> str:
    parse_export_urls(value)
    return value


def _check_keys(value: str) -> str:
    parse_pairs(value, "tenant=api-key")
    return value


ExportUrls = Annotated[str, AfterValidator(_check_urls)]
ExportKeys = Annotated[str, AfterValidator(_check_keys)]


class Settings(ServiceSettings):
    http_port: int = Field(8005, description="Port of the insights API")
    insights_export_urls: ExportUrls = Field(
        "ledger-sync=http://127.0.0.1:8001,policy-engine=http://127.0.0.1:8002,notifier=http://127.0.0.1:8003,"
        "promise-tracker=http://127.0.0.1:8004",
        description="Base URLs of the four services whose export APIs a backfill reads, `service=url` "
        "comma-separated (every one of ledger-sync, policy-engine, notifier, promise-tracker named once)",
    )
    insights_export_keys: ExportKeys = Field(
        "",
        description="API key a backfill of a tenant reads the exports with, `tenant=key` comma-separated (a key of "
        "that tenant, scope api or admin, accepted by all four services); a tenant without one cannot be "
        "backfilled (POST /v1/backfill answers 409)",
        json_schema_extra={"secret": True},
    )
    insights_export_page_limit: int = Field(
        5000, ge=1, le=5000, description="Items a backfill asks for per export page (the exports allow 5,000)"
    )
    insights_export_timeout_s: float = Field(
        60.0, gt=0, description="Seconds an export page may take before the backfill stops with an error"
    )

    def optional_secrets(self) -> set[str]:
        # insights signs no customer links; without export keys it follows the stream and only backfills nothing.
        return {"self_service_signing_key", "insights_export_keys"}
