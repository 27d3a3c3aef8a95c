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
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from workspace.adapters.platform import ServiceUnavailable
from workspace.domain.people import Role
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import CheckedForm, SignedInPerson, named, require
from workspace.entrypoints.web import Translator, language_of, render
from workspace.service_layer.policy_drafts import DraftError, as_yaml, diff, fingerprint, located, syntax_error
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


def _form_text(form: Any) -> tuple[str, int, list[DraftError]]:
    draft = str(form.get("draft") or "").replace("\r\n", "\n")
    try:
        days = int(str(form.get("days") or DEFAULT_PREVIEW_DAYS))
    except ValueError:
        days = -1
    errors: list[DraftError] = []
    if days not in PREVIEW_DAYS:
        errors.append(DraftError("days", f"must be one of {', '.join(map(str, PREVIEW_DAYS))}", None))
        days = DEFAULT_PREVIEW_DAYS
    if not draft.strip():
        errors.append(DraftError("draft", "the policy is empty", None))
    elif len(draft) > MAX_DRAFT_CHARS:
        errors.append(DraftError("draft", f"longer than {MAX_DRAFT_CHARS:,} characters", None))
    elif (wrong := syntax_error(draft)) is not None:
        errors.append(wrong)
    return draft, days, errors


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
    now = runtime.clock.now()
    window = {"from": now.isoformat(), "to": (now + timedelta(days=days)).isoformat()}
    answer = await runtime.objects.platform.call(
        signed.person, "POST", "policy-engine", f"{_path(policy_id)}/preview", params=window, content=draft.encode(),
        headers=YAML,
    )  # fmt: skip
    if answer.status_code == 422:
        return await _editor_again(
            request, runtime, signed, policy_id, draft, located(draft, answer.json().get("errors", [])), days
        )
    if answer.status_code != 200:
        raise ServiceUnavailable("policy-engine", f"answered {answer.status_code} to the draft's preview")
    result = answer.json()
    in_force = await _in_force(runtime, signed, policy_id)
    before = as_yaml(_document(in_force)) if in_force is not None else ""
    return render(
        request, "policy_preview.html", policy_id=policy_id, result=result, days=days, draft=draft,
        previewed=fingerprint(draft), diff=diff(before, draft), in_force=in_force,
    )  # fmt: skip


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
