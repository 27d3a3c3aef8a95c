"""What workspace's runtime holds: its Settings, and its own objects (sessions, the client of the services)."""

from __future__ import annotations

from dataclasses import dataclass

from dunning_kit.runtime import ServiceRuntime
from workspace.adapters.platform import PlatformClient
from workspace.service_layer.oidc import OidcSignIn
from workspace.service_layer.sessions import SessionBook
from workspace.settings import Settings


@dataclass
class WorkspaceObjects:
    sessions: SessionBook
    platform: PlatformClient
    sign_in: OidcSignIn


WorkspaceRuntime = ServiceRuntime[Settings, WorkspaceObjects]
