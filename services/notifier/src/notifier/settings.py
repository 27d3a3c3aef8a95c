"""notifier settings (environment variables; see the README's settings table)."""

from pathlib import Path

from pydantic import Field

from dunning_kit.data_keys import DataKeySettings
from dunning_kit.dev_secrets import DEV_TWILIO_AUTH_TOKEN
from dunning_kit.outbound import AllowedNetworks
from dunning_kit.settings import ServiceSettings
from notifier.domain.render_limits import RenderLimits


class Settings(ServiceSettings, DataKeySettings):
    http_port: int = Field(8003, description="Port of the notifier API, callbacks and dev page")

    # ---- email over SMTP (the default email provider)
    smtp_host: str = Field("127.0.0.1", description="SMTP server host")
    smtp_port: int = Field(1025, description="SMTP server port")
    smtp_username: str | None = Field(None, description="SMTP user (auth only when set)")
    smtp_password: str | None = Field(
        None, description="SMTP password (required when SMTP_USERNAME is set)", json_schema_extra={"secret": True}
    )
    smtp_starttls: bool = Field(False, description="Upgrade the connection with STARTTLS (port 587)")
    smtp_use_tls: bool = Field(False, description="Implicit TLS from the first byte (port 465)")
    smtp_validate_certs: bool = Field(True, description="Verify the SMTP server's certificate")
    smtp_pool_size: int = Field(8, description="SMTP connections kept open and used concurrently")
    smtp_timeout_seconds: float = Field(15.0, description="SMTP command timeout")
    email_from: str = Field("Accounts Receivable <ar@example.com>", description="Default From of reminders")

    # ---- email over the SendGrid v3 API
    sendgrid_api_base_url: str = Field("https://api.sendgrid.com", description="SendGrid API base URL")
    sendgrid_api_key: str | None = Field(
        None, description="SendGrid API key (Bearer)", json_schema_extra={"secret": True}
    )
    sendgrid_webhook_public_key: str | None = Field(
        None, description="Base64 DER P-256 public key that verifies the SendGrid event webhook"
    )
    sendgrid_webhook_tolerance_seconds: float = Field(
        300.0,
        gt=0,
        description="Age (wall time) beyond which a SendGrid event webhook's signed timestamp is refused as a replay",
    )

    # ---- SMS and voice over Twilio
    twilio_base_url: str = Field(
        "https://api.twilio.com", description="Twilio REST base URL (the local fake under `make up`)"
    )
    twilio_account_sid: str = Field("AC00000000000000000000000000000000", description="Twilio Account SID")
    twilio_auth_token: str = Field(
        DEV_TWILIO_AUTH_TOKEN,
        description="Twilio auth token (Basic auth, signatures of callbacks); required outside DEV_MODE",
        json_schema_extra={"secret": True},
    )
    twilio_from_number: str = Field("+15005550006", description="Default sender number (E.164)")
    twilio_messaging_service_sid: str | None = Field(None, description="Send SMS through a Messaging Service")
    default_phone_region: str = Field("US", description="Region assumed for phone numbers without +country")

    # ---- letters
    letter_provider: str = Field("drop_folder", description="print_api or drop_folder")
    letter_drop_folder: Path = Field(Path(".run/letters"), description="Where PDFs go when letter_provider=drop_folder")
    print_api_base_url: str = Field("https://api.lob.com", description="Print-and-mail API base URL (Lob-shaped)")
    print_api_key: str | None = Field(
        None,
        description="Print-and-mail API key (Basic auth user; required when LETTER_PROVIDER=print_api)",
        json_schema_extra={"secret": True},
    )

    # ---- customer links
    promise_tracker_public_url: str = Field(
        "http://127.0.0.1:8004", description="Public base URL of the promise-tracker's self-service page"
    )
    link_ttl_days: int = Field(30, description="Days a payment or promise link in a reminder stays valid")
    unsubscribe_ttl_days: int = Field(365, description="Days an unsubscribe link stays valid")

    # ---- personal data
    message_retention_days: int = Field(
        1095,
        ge=1,
        description="Days rendered message bodies and provider payloads are kept (then deleted by a housekeeping "
        "job; the fact of each contact stays). 1095 = Reg F's 3 years",
    )

    # ---- dispatcher, retries, limits
    dispatch_batch_size: int = Field(500, description="Most deliveries one dispatcher batch claims")
    dispatch_workers: int = Field(
        2,
        ge=1,
        le=16,
        description="Dispatcher loops per replica (one renders/records while another waits on providers)",
    )
    dispatch_claim_lease_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a claimed (rendered, not yet sending) delivery stays with its dispatcher "
        "(database time, renewed while it works); after a crash another replica takes it over and sends it",
    )
    max_send_attempts: int = Field(5, description="Attempts before a transient failure becomes notification.failed")
    retry_base_seconds: float = Field(60.0, description="First retry delay; doubles each attempt (with jitter)")
    retry_max_seconds: float = Field(3600.0, description="Longest delay between two attempts")
    sending_stuck_after_seconds: float = Field(
        900.0, description="A delivery left `sending` this long (crash mid-call) is marked `unknown`, never re-sent"
    )
    rate_limit_smtp_per_s: float = Field(2000.0, description="Most SMTP messages per second")
    rate_limit_sendgrid_per_s: float = Field(500.0, description="Most SendGrid API calls per second")
    rate_limit_twilio_per_s: float = Field(100.0, description="Most Twilio API calls per second (messages + calls)")
    rate_limit_print_per_s: float = Field(20.0, description="Most print-and-mail API calls per second")
    rate_limit_webhook_per_s: float = Field(200.0, description="Most outbound webhook calls per second")
    outbound_allowed_networks: AllowedNetworks = Field(
        "",
        description="CIDRs a tenant-configured target (connector base_url/token_url, webhook URL) may reach although "
        "internal (loopback, private, link-local); empty in production, `127.0.0.0/8,::1/128` for local fakes",
    )
    provider_max_connections: int = Field(
        10, ge=1, description="Concurrent HTTP connections per provider API (more only adds queueing on both sides)"
    )
    provider_timeout_seconds: float = Field(
        10.0, description="Timeout of each step of a provider HTTP call (connect, write, every read)"
    )
    provider_deadline_seconds: float = Field(
        20.0,
        gt=0,
        description="Longest one provider or webhook HTTP call may take in all, however slowly the server answers "
        "(a non-idempotent call cut off here ends `unknown`)",
    )
    webhook_max_connections_per_tenant: int = Field(
        2,
        ge=1,
        description="Most concurrent webhook calls to one tenant's endpoint (of PROVIDER_MAX_CONNECTIONS): a slow "
        "endpoint holds no more, the other tenants' webhooks keep theirs",
    )
    ledger_catch_up_wait_seconds: float = Field(
        5.0, description="How long one dispatch round waits for the ledger projection before holding its sends"
    )
    ledger_catch_up_required: bool = Field(
        True, description="Hold a send until the ledger projection has applied what is on the broker"
    )

    # ---- what one render of a tenant's template may spend (domain/render_limits.py)
    template_render_timeout_seconds: float = Field(
        0.2,
        gt=0,
        description="Wall time one render of a template may take (all parts of one message); over it the render "
        "fails (422 at save and preview, a failed delivery on send)",
    )
    template_max_loop_iterations: int = Field(
        50_000, ge=1, description="Loop iterations one render may run, all loops together"
    )
    template_max_range: int = Field(10_000, ge=1, description="Most numbers one range() in a template may hold")
    template_max_string_chars: int = Field(
        200_000,
        ge=1,
        description="Largest string or list one template operation may build (ljust, format, %, *, join, "
        "replace, filters, ~, literals): checked before it is built",
    )
    template_max_output_chars: int = Field(
        500_000,
        ge=1,
        description="Longest rendered part; everything one render builds together may be four times this",
    )

    def optional_secrets(self) -> set[str]:
        # SendGrid is chosen per tenant at run time, so its key cannot be required at start (a tenant on SendGrid
        # without it gets failed deliveries naming the provider). The Twilio token is required: it also verifies
        # Twilio's signed callbacks, which arrive whether or not SMS is used.
        optional = {"sendgrid_api_key"}
        if not self.smtp_username:
            optional.add("smtp_password")
        if self.letter_provider != "print_api":
            optional.add("print_api_key")
        return optional

    def render_limits(self) -> RenderLimits:
        return RenderLimits(
            timeout_seconds=self.template_render_timeout_seconds,
            max_loop_iterations=self.template_max_loop_iterations,
            max_range=self.template_max_range,
            max_string_chars=self.template_max_string_chars,
            max_output_chars=self.template_max_output_chars,
        )
