"""Policies, changed safely: read the version in force, edit a draft as YAML, see every error at its line, see
the draft's diff and what it would send over the next days (the policy engine's dry run of the draft against the
live portfolio) and only then publish it as a new version.

Publishing carries the fingerprint of the text that was previewed: a text changed after its preview is not
published (the person previews again). Everyone signed in may read policies; changing them needs a manager.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from workspace.adapters.platform import ServiceUnavailable
from workspace.domain.people import Role
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import CheckedForm, SignedInPerson, named, require
from workspace.entrypoints.web import Translator, language_of, render
from workspace.service_layer.policy_drafts import DraftError, as_yaml, diff, fingerprint, located, syntax_error
from workspace.service_layer.policy_form import (
    ACTIONS,
    CAP_SCOPES,
    CHANNELS,
    TONES,
    NotAPolicy,
    PolicyForm,
    changed,
    draft_of,
    field_of,
    form_from,
    form_of,
)
from workspace.service_layer.sessions import SignedIn

router = APIRouter(prefix="/policies", include_in_schema=False)

YAML = {"content-type": "application/yaml"}
PREVIEW_DAYS = (7, 14, 30, 60, 90)  # the policy engine previews a draft over at most 92 days
DEFAULT_PREVIEW_DAYS = 30
MAX_DRAFT_CHARS = 100_000


def _path(policy_id: str) -> str:
    return f"/v1/policies/{named(policy_id)}"


async def _in_force(runtime: Any, signed: SignedIn, policy_id: str) -> dict[str, Any] | None:
    answer = await runtime.objects.platform.call(signed.person, "GET", "policy-engine", _path(policy_id))
    if answer.status_code == 404:
        return None
    if answer.status_code != 200:
        raise ServiceUnavailable("policy-engine", f"answered {answer.status_code}")
    return dict(answer.json())


def _document(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as its author writes it (without what the engine adds: its version)."""
    return {k: v for k, v in policy.items() if k != "version"}


@router.get("", response_class=HTMLResponse)
async def list_policies(request: Request, runtime: Runtime, signed: SignedInPerson) -> Response:
    page = await runtime.objects.platform.get_json(signed.person, "policy-engine", "/v1/policies", {"limit": 200})
    return render(request, "policies.html", policies=page["items"])


@router.get("/{policy_id}", response_class=HTMLResponse)
async def show_policy(request: Request, policy_id: str, runtime: Runtime, signed: SignedInPerson) -> Response:
    policy = await _in_force(runtime, signed, policy_id)
    if policy is None:
        t = Translator(language_of(request))
        return render(request, "refused.html", 404, title=t("policy.unknown"), message=t("policy.unknown"))
    text = as_yaml(_document(policy))
    versions = await runtime.objects.platform.get_json(
        signed.person, "policy-engine", f"{_path(policy_id)}/versions", {"limit": 200}
    )
    return render(
        request, "policy.html", policy=policy, draft=text, errors=[], days=DEFAULT_PREVIEW_DAYS,
        preview_days=PREVIEW_DAYS, versions=versions["items"], published=request.query_params.get("published"),
        can_edit=signed.person.may(Role.manager),
    )  # fmt: skip


async def _editor_again(
    request: Request, runtime: Any, signed: SignedIn, policy_id: str, draft: str, errors: list[DraftError], days: int
) -> Response:
    """The editor with the person's text kept and each error at its line (422 when there are errors)."""
    policy = await _in_force(runtime, signed, policy_id) or {"id": policy_id, "version": 0, "name": policy_id}
    return render(
        request, "policy.html", 422 if errors else 200, policy=policy, draft=draft, errors=errors, days=days,
        preview_days=PREVIEW_DAYS, versions=[], published=None, can_edit=True,
    )  # fmt: skip


def preview_days(form: Any) -> tuple[int, list[DraftError]]:
    """The preview window the form asks for, or the default with an error naming `days`."""
    try:
        days = int(str(form.get("days") or DEFAULT_PREVIEW_DAYS))
    except ValueError:
        days = -1
    if days not in PREVIEW_DAYS:
        return DEFAULT_PREVIEW_DAYS, [DraftError("days", f"must be one of {', '.join(map(str, PREVIEW_DAYS))}", None)]
    return days, []


def _form_text(form: Any) -> tuple[str, int, list[DraftError]]:
    draft = str(form.get("draft") or "").replace("\r\n", "\n")
    days, errors = preview_days(form)
    if not draft.strip():
        errors.append(DraftError("draft", "the policy is empty", None))
    elif len(draft) > MAX_DRAFT_CHARS:
        errors.append(DraftError("draft", f"longer than {MAX_DRAFT_CHARS:,} characters", None))
    elif (wrong := syntax_error(draft)) is not None:
        errors.append(wrong)
    return draft, days, errors


async def _previewed(
    request: Request, runtime: Any, signed: SignedIn, policy_id: str, draft: str, days: int
) -> Response | list[DraftError]:
    """The preview page of a draft (the policy engine's dry run, the diff, the publish form), or the engine's
    errors, each at its line in the draft: the one path of the YAML editor and of the form."""
    now = runtime.clock.now()
    window = {"from": now.isoformat(), "to": (now + timedelta(days=days)).isoformat()}
    answer = await runtime.objects.platform.call(
        signed.person, "POST", "policy-engine", f"{_path(policy_id)}/preview", params=window, content=draft.encode(),
        headers=YAML,
    )  # fmt: skip
    if answer.status_code == 422:
        return located(draft, answer.json().get("errors", []))
    if answer.status_code != 200:
        raise ServiceUnavailable("policy-engine", f"answered {answer.status_code} to the draft's preview")
    result = answer.json()
    in_force = await _in_force(runtime, signed, policy_id)
    before = as_yaml(_document(in_force)) if in_force is not None else ""
    return render(
        request, "policy_preview.html", policy_id=policy_id, result=result, days=days, draft=draft,
        previewed=fingerprint(draft), diff=diff(before, draft), in_force=in_force,
    )  # fmt: skip


@router.post("/{policy_id}/preview", response_class=HTMLResponse)
async def preview_draft(
    request: Request,
    policy_id: str,
    runtime: Runtime,
    form: CheckedForm,
    signed: SignedIn = Depends(require(Role.manager)),
) -> Response:
    draft, days, errors = _form_text(form)
    if errors:
        return await _editor_again(request, runtime, signed, policy_id, draft, errors, days)
    answer = await _previewed(request, runtime, signed, policy_id, draft, days)
    if isinstance(answer, list):
        return await _editor_again(request, runtime, signed, policy_id, draft, answer, days)
    return answer


@router.post("/{policy_id}/check")
async def check_draft(
    request: Request,
    policy_id: str,
    runtime: Runtime,
    form: CheckedForm,
    signed: SignedIn = Depends(require(Role.manager)),
) -> Response:
    """The draft's errors with their lines, as JSON, for the editor's script (validation as the person types):
    a YAML syntax error found here, the rest by the policy engine's validation (nothing stored, no dry run)."""
    t = Translator(language_of(request))
    draft, _, errors = _form_text(form)
    if not errors:
        answer = await runtime.objects.platform.call(
            signed.person, "POST", "policy-engine", "/v1/policies/validate", content=draft.encode(), headers=YAML
        )
        if answer.status_code == 422:
            errors = located(draft, answer.json().get("errors", []))
        elif answer.status_code != 200:
            raise ServiceUnavailable("policy-engine", f"answered {answer.status_code} to the draft's validation")
    shown = [
        {"field": e.field, "reason": e.reason, "line": e.line,
         "text": t("policy.error_at", line=e.line, field=e.field, reason=e.reason) if e.line
         else t("policy.error", field=e.field, reason=e.reason)}
        for e in errors if e.field != "days"
    ]  # fmt: skip
    return JSONResponse({"errors": shown, "ok_text": t("policy.check_ok")}, headers={"Cache-Control": "no-store"})


@router.post("/{policy_id}/edit", response_class=HTMLResponse)
async def back_to_editor(
    request: Request,
    policy_id: str,
    runtime: Runtime,
    form: CheckedForm,
    signed: SignedIn = Depends(require(Role.manager)),
) -> Response:
    """From a preview back to the editor, with the draft as it was."""
    draft, days, _ = _form_text(form)
    return await _editor_again(request, runtime, signed, policy_id, draft, [], days)


@router.post("/{policy_id}/publish", response_class=HTMLResponse)
async def publish_draft(
    request: Request,
    policy_id: str,
    runtime: Runtime,
    form: CheckedForm,
    signed: SignedIn = Depends(require(Role.manager)),
) -> Response:
    draft, days, errors = _form_text(form)
    if not errors and fingerprint(draft) != str(form.get("previewed") or ""):
        errors = [DraftError("draft", Translator(language_of(request))("policy.preview_first"), None)]
    if errors:
        return await _editor_again(request, runtime, signed, policy_id, draft, errors, days)
    answer = await runtime.objects.platform.call(
        signed.person, "PUT", "policy-engine", _path(policy_id), content=draft.encode(), headers=YAML
    )
    if answer.status_code == 422:
        return await _editor_again(
            request, runtime, signed, policy_id, draft, located(draft, answer.json().get("errors", [])), days
        )
    if answer.status_code not in (200, 201):
        raise ServiceUnavailable("policy-engine", f"answered {answer.status_code} to the publication")
    version = answer.json()["version"]
    return RedirectResponse(f"/policies/{quote(policy_id, safe='')}?published={version}", status_code=303)


# ---------------------------------------------------------------- the same draft, edited as a form


def _form_page(
    request: Request,
    policy: dict[str, Any],
    form: PolicyForm,
    days: int,
    errors: list[tuple[str, str]],
    status: int = 200,
) -> Response:
    """The form with each error at its field; errors of parts the form does not show are listed above it."""
    fields = form.fields()
    at_fields: dict[str, str] = {}
    elsewhere: list[tuple[str, str]] = []
    for path, reason in errors:
        name = field_of(path, fields)
        if name is None:
            elsewhere.append((path, reason))
        else:
            at_fields[name] = f"{at_fields[name]}; {reason}" if name in at_fields else reason
    return render(
        request, "policy_form.html", status, policy=policy, form=form, values=form.values(), errors=at_fields,
        elsewhere=elsewhere, days=days, preview_days=PREVIEW_DAYS, channels=CHANNELS, actions=ACTIONS, tones=TONES,
        cap_scopes=CAP_SCOPES,
    )  # fmt: skip


@router.get("/{policy_id}/form", response_class=HTMLResponse)
async def show_policy_form(
    request: Request, policy_id: str, runtime: Runtime, signed: SignedIn = Depends(require(Role.manager))
) -> Response:
    """The version in force as a form (a manager's editor, as the YAML one)."""
    policy = await _in_force(runtime, signed, policy_id)
    if policy is None:
        t = Translator(language_of(request))
        return render(request, "refused.html", 404, title=t("policy.unknown"), message=t("policy.unknown"))
    return _form_page(request, policy, form_of(as_yaml(_document(policy))), DEFAULT_PREVIEW_DAYS, [])


@router.post("/{policy_id}/form", response_class=HTMLResponse)
async def submit_policy_form(
    request: Request,
    policy_id: str,
    runtime: Runtime,
    form: CheckedForm,
    signed: SignedIn = Depends(require(Role.manager)),
) -> Response:
    """One form, several buttons (no JavaScript needed): add or remove a step or a cap (the form again), or
    preview the draft it makes (the preview page, or the form with the engine's errors at their fields). Posted
    with a YAML `draft` and no `base` (from the YAML editor or a preview), it opens that draft as a form."""
    policy = await _in_force(runtime, signed, policy_id) or {"id": policy_id, "version": 0, "name": policy_id}
    days, day_errors = preview_days(form)
    if "base" not in form:
        draft, days, errors = _form_text(form)
        try:
            opened = form_of(draft)
        except NotAPolicy:
            opened = None
        if errors or opened is None:
            return await _editor_again(request, runtime, signed, policy_id, draft, errors, days)
        return _form_page(request, policy, opened, days, [])
    try:
        posted = form_from(form)
        command = str(form.get("do") or "preview")
        edited = changed(posted, command)
        if edited is not None:
            return _form_page(request, policy, edited, days, [])
        draft = draft_of(posted)
        if command == "yaml":  # the same draft in the YAML editor (for what the form does not show)
            return await _editor_again(request, runtime, signed, policy_id, draft, [], days)
    except NotAPolicy as exc:  # a base text that is not a policy: only a crafted post has one
        return _form_page(request, policy, form_of("{}"), days, [("(policy)", str(exc))], 422)
    if day_errors:
        return _form_page(request, policy, posted, days, [(e.field, e.reason) for e in day_errors], 422)
    answer = await _previewed(request, runtime, signed, policy_id, draft, days)
    if isinstance(answer, list):
        return _form_page(request, policy, posted, days, [(e.field, e.reason) for e in answer], 422)
    return answer
