"""notifier settings (environment variables; see the README's settings table)."""

from pydantic import Field

from dunning_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    http_port: int = Field(8003, description="Port of the notifier API and dev page")
    smtp_host: str = Field("127.0.0.1", description="SMTP server host")
    smtp_port: int = Field(1025, description="SMTP server port")
    smtp_username: str | None = Field(None, description="SMTP user (auth only when set)")
    smtp_password: str | None = Field(None, description="SMTP password")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS")
    email_from: str = Field("Accounts Receivable <ar@example.com>", description="From address of reminders")
    dispatch_batch_size: int = Field(200, description="Most deliveries one dispatcher batch claims")
