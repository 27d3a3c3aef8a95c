"""workspace settings (environment variables; see the README's settings table)."""

from typing import Annotated

from pydantic import AfterValidator, Field

from dunning_kit.actor import signing_key
from dunning_kit.dev_secrets import DEV_ACTOR_SIGNING_KEY, DEV_OIDC_CLIENT_SECRET
from dunning_kit.settings import ServiceSettings
from workspace.adapters.platform import parse_service_urls, parse_tenant_keys
from workspace.domain.identity import parse_role_map


def _check_urls(value: str) -> str:
    parse_service_urls(value)
    return value


def _check_keys(value: str) -> str:
    parse_tenant_keys(value)
    return value


def _check_role_map(value: str) -> str:
    parse_role_map(value)
    return value


def _check_signing_key(value: str) -> str:
    signing_key(value)
    return value


ServiceUrls = Annotated[str, AfterValidator(_check_urls)]
ActorSigningKey = Annotated[str, AfterValidator(_check_signing_key)]
TenantKeys = Annotated[str, AfterValidator(_check_keys)]
RoleMap = Annotated[str, AfterValidator(_check_role_map)]


class Settings(ServiceSettings):
    http_port: int = Field(8006, description="Port of the workspace web application")
    workspace_public_url: str = Field(
        "http://127.0.0.1:8006",
        description="Base URL staff reach the workspace at (the OIDC redirect URI is this + /auth/callback)",
    )
    workspace_service_urls: ServiceUrls = Field(
        "ledger-sync=http://127.0.0.1:8001,policy-engine=http://127.0.0.1:8002,notifier=http://127.0.0.1:8003,"
        "promise-tracker=http://127.0.0.1:8004,insights=http://127.0.0.1:8005",
        description="Base URLs of the services the workspace calls, `service=url` comma-separated (each of "
        "ledger-sync, policy-engine, notifier, promise-tracker, insights named once)",
    )
    workspace_api_keys: TenantKeys = Field(
        "",
        description="API key (scope admin) the workspace calls the services with for each tenant, `tenant=key` "
        "comma-separated; what a person may do is decided by the workspace from the person's role",
        json_schema_extra={"secret": True},
    )
    workspace_oidc_issuer: str = Field(
        "http://127.0.0.1:8007",
        description="OpenID Connect issuer staff sign in with (its /.well-known/openid-configuration is read); "
        "`make up` runs a development provider here",
    )
    workspace_oidc_client_id: str = Field("workspace", description="OIDC client id of the workspace")
    workspace_oidc_client_secret: str = Field(
        DEV_OIDC_CLIENT_SECRET,
        description="OIDC client secret of the workspace (confidential client; PKCE is used as well)",
        json_schema_extra={"secret": True},
    )
    workspace_oidc_scopes: str = Field("openid profile email", description="Scopes the sign-in asks for")
    workspace_roles_claim: str = Field(
        "roles",
        description="ID-token claim holding the person's roles (viewer, collector, manager, admin; a list or a "
        "space-separated string); roles not named there come from WORKSPACE_ROLE_MAP",
    )
    workspace_role_map: RoleMap = Field(
        "",
        description="Roles by person, `email=role` comma-separated, for providers that carry no roles claim "
        "(the higher of claim and map applies)",
    )
    workspace_tenant_claim: str = Field("tenant", description="ID-token claim naming the tenant a person works for")
    workspace_default_tenant: str = Field(
        "",
        description="Tenant of a person whose token carries no tenant claim (empty: such a person is refused)",
    )
    workspace_session_hours: float = Field(10.0, gt=0, description="Hours a sign-in lasts at most, active or not")
    workspace_session_idle_minutes: float = Field(
        30.0, gt=0, description="Minutes without a request after which a session ends"
    )
    workspace_cookie_secure: bool = Field(
        True,
        description="Session cookie only over HTTPS (`__Host-` prefix); off only for plain-http development",
    )
    workspace_actor_signing_key: ActorSigningKey = Field(
        DEV_ACTOR_SIGNING_KEY,
        description="Ed25519 private key (base64url of 32 bytes) the workspace signs the `Dunning-Actor` header of its "
        "calls with, naming the person; the services verify it with its public half in ACTOR_VERIFY_KEYS "
        "(`python -m dunning_kit.actor` makes a pair)",
        json_schema_extra={"secret": True},
    )
    workspace_call_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a call to another service may take before the page shows it failed"
    )

    def optional_secrets(self) -> set[str]:
        # The workspace signs no customer links.
        return {"self_service_signing_key"}
