"""Server-rendered pages: the Jinja environment, the UI language, and the headers every page carries.

Every page is complete HTML that works without JavaScript; assets come from the service itself (/static), never
from a CDN, which the Content-Security-Policy enforces. The language is the person's choice (cookie `lang`, set
by /language), else the browser's Accept-Language, else English.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from workspace.domain.people import Role
from workspace.texts import LANGUAGES, catalog

STATIC_DIR = Path(__file__).parent / "static"

templates = Environment(
    loader=PackageLoader("workspace", "entrypoints/templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,  # a missing value is an error in the tests, not an empty space on a page
    trim_blocks=True,
    lstrip_blocks=True,
)

TEXTS = catalog()

# Pages name the person and their debtors: never cached, never framed, no third-party origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def language_of(request: Request) -> str:
    chosen = request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"


class Translator:
    """`t("key", name=...)` in templates and code: the text in the page's language, formatted."""

    def __init__(self, language: str) -> None:
        self.language = language

    def __call__(self, key: str, **values: Any) -> str:
        texts = TEXTS.get(key)
        if texts is None:
            raise KeyError(f"no UI text {key!r}")
        return texts[self.language].format(**values) if values else texts[self.language]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page, in the request's language, with the signed-in person (if any) and their CSRF token."""
    language = language_of(request)
    signed = getattr(request.state, "signed_in", None)
    html = templates.get_template(template).render(
        request=request, t=Translator(language), lang=language, signed=signed,
        person=signed.person if signed else None, csrf_token=signed.csrf_token if signed else "",
        path=request.url.path, roles=Role, **context,
    )  # fmt: skip
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
