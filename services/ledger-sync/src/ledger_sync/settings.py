"""ledger-sync settings (environment variables; see the README's settings table)."""

from pydantic import Field

from dunning_kit.data_keys import DataKeySettings
from dunning_kit.outbound import AllowedNetworks
from dunning_kit.settings import ServiceSettings
from ledger_sync.adapters.personal_data_peers import IN_CLUSTER_PEERS, PeerList


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
    personal_data_peers: PeerList = Field(
        IN_CLUSTER_PEERS,
        description="The services whose pieces `GET /v1/customers/{id}/personal-data` gathers into one export: "
        "`name=url` comma-separated, asked with the caller's Authorization header (empty: the ledger's piece alone)",
    )
    personal_data_peer_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a peer may take to answer its piece of a personal-data export"
    )

    def optional_secrets(self) -> set[str]:
        # ledger-sync signs no customer links; an ERP's webhook secret is needed only by tenants on that ERP
        # (empty refuses its webhooks, which is safe).
        return {"self_service_signing_key", "quickbooks_webhook_verifier_token", "xero_webhook_key"}
