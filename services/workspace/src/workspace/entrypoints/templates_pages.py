"""Message templates, edited with a preview in every locale the template exists in (the notifier renders it with
its sample debtor or a real customer's open invoices). Everyone signed in may read and preview; saving a
locale's version needs a manager. A part the notifier cannot render is shown at its field, the input kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from workspace.adapters.platform import ServiceUnavailable
from workspace.domain.people import Role
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import CheckedForm, SignedInPerson, named, require
from workspace.entrypoints.web import render
from workspace.service_layer.sessions import SignedIn
from workspace.service_layer.template_drafts import PARTS, draft_from, field_errors, locales_of, render_all

router = APIRouter(prefix="/templates", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def list_templates(request: Request, runtime: Runtime, signed: SignedInPerson) -> Response:
    by_id: dict[str, list[dict[str, Any]]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = await runtime.objects.platform.get_json(signed.person, "notifier", "/v1/templates", params)
        for t in page["items"]:
            by_id.setdefault(t["template_id"], []).append(t)
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return render(request, "templates.html", templates=sorted(by_id.items()))


async def _page(
    request: Request, runtime: Any, signed: SignedIn, template_id: str, locale: str, customer_id: str | None,
    draft: dict[str, str | None] | None, errors: dict[str, str], status_code: int = 200, saved: bool = False,
) -> Response:  # fmt: skip
    platform = runtime.objects.platform
    template_id = named(template_id)
    locales = [t["locale"] for t in await locales_of(platform, signed.person, template_id)]
    if not locales:
        return render(request, "refused.html", 404, title=template_id, message=template_id)
    locale = locale if locale in locales else locales[0]
    if draft is None:
        stored = await platform.get_json(signed.person, "notifier", f"/v1/templates/{template_id}", {"locale": locale})
        draft = {p: stored.get(p) for p in PARTS}
    renderings = await render_all(
        platform, signed.person, template_id, locales, draft_locale=locale, draft=draft if not errors else None,
        customer_id=customer_id,
    )  # fmt: skip
    edited = next(r for r in renderings if r.locale == locale)
    for part, reason in edited.errors.items():  # the draft's own render errors, at their fields
        errors.setdefault(part, reason)
    return render(
        request, "template.html", 422 if errors else status_code, template_id=template_id, locale=locale,
        locales=locales, draft=draft, errors=errors, renderings=renderings, customer_id=customer_id or "",
        can_edit=signed.person.may(Role.manager), saved=saved, parts=PARTS,
    )  # fmt: skip


@router.get("/{template_id}", response_class=HTMLResponse)
async def show_template(
    request: Request, template_id: str, runtime: Runtime, signed: SignedInPerson, locale: str = "en",
    customer_id: str = "",
) -> Response:  # fmt: skip
    return await _page(
        request, runtime, signed, template_id, locale, customer_id or None, None, {},
        saved=request.query_params.get("saved") == "1",
    )  # fmt: skip


@router.post("/{template_id}/preview", response_class=HTMLResponse)
async def preview(
    request: Request, template_id: str, runtime: Runtime, form: CheckedForm, signed: SignedInPerson
) -> Response:
    draft, errors = draft_from(form)
    customer_id = str(form.get("customer_id") or "").strip() or None
    return await _page(request, runtime, signed, template_id, str(form.get("locale") or "en"), customer_id, draft,
                       errors)  # fmt: skip


@router.post("/{template_id}/save", response_class=HTMLResponse)
async def save(
    request: Request,
    template_id: str,
    runtime: Runtime,
    form: CheckedForm,
    signed: SignedIn = Depends(require(Role.manager)),
) -> Response:
    draft, errors = draft_from(form)
    locale, template_id = str(form.get("locale") or "en"), named(template_id)
    if errors:
        return await _page(request, runtime, signed, template_id, locale, None, draft, errors)
    body = {"locale": locale, **{p: v for p, v in draft.items() if v is not None}}
    answer = await runtime.objects.platform.call(
        signed.person, "PUT", "notifier", f"/v1/templates/{template_id}", json=body
    )
    if answer.status_code == 422:
        return await _page(request, runtime, signed, template_id, locale, None, draft, field_errors(answer.json()))
    if answer.status_code not in (200, 201):
        raise ServiceUnavailable("notifier", f"answered {answer.status_code} to the save")
    return RedirectResponse(f"/templates/{template_id}?locale={locale}&saved=1", status_code=303)
