"""insights settings (environment variables; see the README's settings table)."""

from pydantic import Field

from dunning_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    http_port: int = Field(8005, description="Port of the insights API")
