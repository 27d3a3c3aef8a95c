"""Composition root of workspace: sessions, the client of the other services, the pages."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dunning_kit.actor import signing_key
from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.runtime import ServiceRuntime
from workspace.adapters import orm
from workspace.adapters.platform import PlatformClient, parse_service_urls, parse_tenant_keys
from workspace.entrypoints import (
    audit,
    cases,
    dashboard,
    home,
    operations,
    policies,
    portfolio,
    reminders,
    sign_in,
    templates_pages,
    worklist,
)
from workspace.entrypoints.people import install_page_handlers
from workspace.entrypoints.web import STATIC_DIR
from workspace.service_layer.objects import WorkspaceObjects, WorkspaceRuntime
from workspace.service_layer.oidc import OidcSignIn
from workspace.service_layer.sessions import SessionBook
from workspace.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]


def build_runtime(settings: Settings, clock: Clock) -> WorkspaceRuntime:
    # The workspace reads and acts through the other services' APIs: it consumes no topic and publishes nothing.
    runtime: WorkspaceRuntime = ServiceRuntime(
        name="workspace", settings=settings, clock=clock, metadata=orm.metadata, schema=orm.SCHEMA, produces=[]
    )
    platform = PlatformClient(
        parse_service_urls(settings.workspace_service_urls),
        parse_tenant_keys(settings.workspace_api_keys),
        timeout=settings.workspace_call_timeout_s,
        actor_key=signing_key(settings.workspace_actor_signing_key),
        clock=clock,
    )
    sessions = SessionBook(
        runtime.sessions, clock,
        lifetime=timedelta(hours=settings.workspace_session_hours),
        idle=timedelta(minutes=settings.workspace_session_idle_minutes),
    )  # fmt: skip
    sign_in_flow = OidcSignIn(settings, runtime.sessions, clock)
    runtime.objects = WorkspaceObjects(sessions=sessions, platform=platform, sign_in=sign_in_flow)
    runtime.on_stop(platform.close)
    runtime.on_stop(sign_in_flow.close)
    return runtime


def create_app(runtime: WorkspaceRuntime) -> FastAPI:
    app = create_service_app(
        runtime,
        title="workspace",
        description="The web application AR staff work in: portfolio, worklist, cases, policies and templates.",
        routers=[
            home.router,
            sign_in.router,
            dashboard.router,
            portfolio.router,
            cases.router,
            reminders.router,
            worklist.router,
            policies.router,
            templates_pages.router,
            operations.router,
            audit.router,
        ],
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_page_handlers(app)
    return app
