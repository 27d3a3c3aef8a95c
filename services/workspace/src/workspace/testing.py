"""Test helpers of workspace: a signed-in browser without going through the identity provider."""

from __future__ import annotations

from workspace.domain.people import Person, Role
from workspace.entrypoints.people import cookie_name
from workspace.service_layer.objects import WorkspaceRuntime
from workspace.service_layer.sessions import SignedIn

PEOPLE = {
    Role.viewer: Person("sub-vera", "Vera Viewer", "vera@acme.test", "acme", Role.viewer),
    Role.collector: Person("sub-colin", "Colin Collector", "colin@acme.test", "acme", Role.collector),
    Role.manager: Person("sub-mona", "Mona Manager", "mona@acme.test", "acme", Role.manager),
    Role.admin: Person("sub-adam", "Adam Admin", "adam@acme.test", "acme", Role.admin),
}


async def session_cookie(runtime: WorkspaceRuntime, person: Person) -> tuple[dict[str, str], SignedIn]:
    """A session opened for `person` as a sign-in would: the cookie to send, and the session (its CSRF token)."""
    value, signed = await runtime.objects.sessions.open(person)
    return {cookie_name(runtime.settings.workspace_cookie_secure): value}, signed
