"""A template edited in the workspace: its parts as a form, and its rendering in every locale it exists in.

The notifier renders (`POST /v1/templates/{id}/preview`, with the unsaved draft for the locale being edited and
the stored version for the others), with its sample debtor or a real customer's open invoices. A part the
notifier cannot render comes back as an error on that part (`template.text` -> the `text` field).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from workspace.adapters.platform import PlatformClient
from workspace.domain.people import Person

PARTS = ("subject", "text", "html", "sms", "voice")
REQUIRED = ("subject", "text")
LIMITS = {"subject": 2000, "text": 50_000, "html": 50_000, "sms": 2000, "voice": 5000}


@dataclass
class Rendering:
    locale: str
    origin: str = ""
    subject: str = ""
    text: str = ""
    html: str | None = None
    sms: str | None = None
    voice: str | None = None
    errors: dict[str, str] = field(default_factory=dict)  # part -> why it could not be rendered


def draft_from(form: Any) -> tuple[dict[str, str | None], dict[str, str]]:
    """The form's parts (empty optional parts are None) and the errors the workspace finds by itself."""
    draft: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    for part in PARTS:
        value = str(form.get(part) or "").replace("\r\n", "\n")
        if not value.strip():
            draft[part] = None
            if part in REQUIRED:
                errors[part] = "required"
            continue
        if len(value) > LIMITS[part]:
            errors[part] = f"at most {LIMITS[part]:,} characters"
        draft[part] = value
    return draft, errors


def field_errors(problem: dict[str, Any]) -> dict[str, str]:
    """The notifier's 422 `errors` as part -> reason (`template.text` names the `text` part)."""
    out: dict[str, str] = {}
    for e in problem.get("errors", []):
        name = str(e.get("field") or "")
        part = name.removeprefix("body.").removeprefix("template.")
        out[part if part in PARTS else "customer_id" if "customer" in name else "form"] = str(e.get("reason"))
    return out


async def locales_of(platform: PlatformClient, person: Person, template_id: str) -> list[dict[str, Any]]:
    """The locales the template exists in (shipped or the tenant's own), each once, the tenant's own first."""
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = await platform.get_json(person, "notifier", "/v1/templates", params)
        for t in page["items"]:
            if t["template_id"] == template_id and (t["locale"] not in found or t["origin"] == "tenant"):
                found[t["locale"]] = t
        cursor = page.get("next_cursor")
        if not cursor:
            return sorted(found.values(), key=lambda t: t["locale"])


async def render_all(
    platform: PlatformClient,
    person: Person,
    template_id: str,
    locales: list[str],
    *,
    draft_locale: str | None = None,
    draft: dict[str, str | None] | None = None,
    customer_id: str | None = None,
) -> list[Rendering]:
    """The template rendered in each locale at once: the draft in its locale, the stored version elsewhere."""

    async def one(locale: str) -> Rendering:
        body: dict[str, Any] = {"locale": locale, "channel": "email"}
        if customer_id:
            body["customer_id"] = customer_id
        if draft is not None and locale == draft_locale:
            body["template"] = {"locale": locale, **{p: v for p, v in draft.items() if v is not None}}
        answer = await platform.call(person, "POST", "notifier", f"/v1/templates/{template_id}/preview", json=body)
        if answer.status_code == 200:
            r = answer.json()
            return Rendering(locale, r["origin"], r["subject"], r["text"], r.get("html"), r.get("sms"), r.get("voice"))
        return Rendering(locale, errors=field_errors(answer.json()) or {"form": f"answered {answer.status_code}"})

    return list(await asyncio.gather(*(one(locale) for locale in locales)))
