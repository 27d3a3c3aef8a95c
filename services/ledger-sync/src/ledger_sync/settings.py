"""ledger-sync settings (environment variables; see the README's settings table)."""

from pydantic import Field

from dunning_kit.data_keys import DataKeySettings
from dunning_kit.outbound import AllowedNetworks
from dunning_kit.settings import ServiceSettings


class Settings(ServiceSettings, DataKeySettings):
    http_port: int = Field(8001, description="Port of the ledger-sync API")
    quickbooks_webhook_verifier_token: str = Field(
        "",
        description="Intuit app's webhook verifier token (checks `intuit-signature`); empty refuses all",
        json_schema_extra={"secret": True},
    )
    xero_webhook_key: str = Field(
        "",
        description="Xero app's webhook signing key (checks `x-xero-signature`); empty refuses all",
        json_schema_extra={"secret": True},
    )
    import_batch_size: int = Field(1000, description="CSV rows per batch (and per transaction in pass 2)")
    import_max_body_bytes: int = Field(
        104_857_600,
        ge=1,
        description="Largest CSV upload (raw or multipart); a larger one gets 413 before it is read. Uploads spool "
        "to /tmp, a 256 Mi emptyDir in the pods: two of this size fit",
    )
    webhook_notice_batch: int = Field(200, description="Webhook notices one timer pass claims")
    outbound_allowed_networks: AllowedNetworks = Field(
        "",
        description="CIDRs a tenant-configured target (connector base_url/token_url, webhook URL) may reach although "
        "internal (loopback, private, link-local); empty in production, `127.0.0.0/8,::1/128` for local fakes",
    )

    def optional_secrets(self) -> set[str]:
        # ledger-sync signs no customer links; an ERP's webhook secret is needed only by tenants on that ERP
        # (empty refuses its webhooks, which is safe).
        return {"self_service_signing_key", "quickbooks_webhook_verifier_token", "xero_webhook_key"}
