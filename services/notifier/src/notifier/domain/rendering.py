"""Rendering a reminder: sandboxed Jinja2 (tenants edit templates), amounts and dates formatted by Babel.

Templates are customer-editable, so they run only in the sandbox (sandbox.py: Jinja's immutable sandbox, and a
budget of time, loop iterations and characters per render - render_limits.py). Undefined names fail loudly
(StrictUndefined): a typo is a clear error, not a blank.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import DictLoader, StrictUndefined, Template, TemplateError
from jinja2.exceptions import SecurityError

from notifier.domain import render_limits
from notifier.domain.render_limits import RenderLimitExceeded, RenderLimits
from notifier.domain.sandbox import Sandbox

PARTS: tuple[str, ...] = ("subject", "text", "html", "sms", "voice")
MAX_PART_CHARS = 50_000


class TemplateRenderError(Exception):
    """A template failed to render; `part` names which one, the message says why."""

    def __init__(self, part: str, message: str, limit: str | None = None) -> None:
        super().__init__(f"template part '{part}': {message}")
        self.part = part
        self.message = message
        self.limit = limit  # the render limit it went over (RenderLimitExceeded), else None


@dataclass(frozen=True)
class TemplateSource:
    template_id: str
    locale: str
    subject: str
    text: str
    html: str | None = None
    sms: str | None = None
    voice: str | None = None
    origin: str = "shipped"  # shipped or tenant

    def part(self, name: str) -> str | None:
        return getattr(self, name)


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str | None = None
    sms: str | None = None
    voice: str | None = None
    template_id: str = ""
    locale: str = "en"
    extras: dict[str, Any] = field(default_factory=dict)


def _env(partials: Mapping[str, str], autoescape: bool, limits: RenderLimits) -> Sandbox:
    env = Sandbox(
        limits,
        loader=DictLoader(dict(partials)),
        autoescape=autoescape,
        undefined=StrictUndefined,
        auto_reload=False,
        # The partials are a fixed handful: a plain dict (unbounded) instead of Jinja's locked LRU cache,
        # which every {% include %} / {% extends %} of every render goes through.
        cache_size=-1,
    )
    env.trim_blocks = True
    env.lstrip_blocks = True
    return env


class Renderer:
    """Compiles template parts once (cached by source) and renders them with a context."""

    def __init__(self, partials: Mapping[str, str], limits: RenderLimits | None = None) -> None:
        self.limits = limits or RenderLimits()
        self.text_env = _env(partials, autoescape=False, limits=self.limits)
        self.html_env = _env(partials, autoescape=True, limits=self.limits)
        self._compile = lru_cache(maxsize=4096)(self._compile_uncached)

    def _compile_uncached(self, html: bool, source: str) -> Template:
        env = self.html_env if html else self.text_env
        return env.from_string(source)

    def check_syntax(self, part: str, source: str) -> str | None:
        """None when the part compiles, else the error (for a 422 naming the field)."""
        if len(source) > MAX_PART_CHARS:
            return f"longer than {MAX_PART_CHARS} characters"
        try:
            self._compile(part == "html", source)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            return f"{exc.message or exc}" + (f" (line {line})" if line else "")
        except (RecursionError, SyntaxError, MemoryError):  # e.g. hundreds of nested brackets
            return "nested too deeply to compile"
        return None

    def render(
        self, template: TemplateSource, context: Mapping[str, Any], parts: tuple[str, ...] = PARTS
    ) -> RenderedMessage:
        """Render the parts a channel needs (an SMS does not pay for the HTML), all of them within one render
        budget (render_limits.py): a template over it fails this render, with the limit named."""
        out: dict[str, str | None] = {}
        budget = render_limits.start(self.limits)
        try:
            for part in PARTS:
                source = template.part(part) if part in parts else None
                if source is None:
                    out[part] = None
                    continue
                out[part] = self._render_part(part, source, context)
        finally:
            render_limits.finish(budget)
        subject = " ".join((out["subject"] or "").split())  # a header must be one line
        return RenderedMessage(
            subject=subject,
            text=out["text"] or "",
            html=out["html"],
            sms=out["sms"],
            voice=out["voice"],
            template_id=template.template_id,
            locale=template.locale,
        )

    def _render_part(self, part: str, source: str, context: Mapping[str, Any]) -> str:
        try:
            text = self._compile(part == "html", source).render(context)
        except RenderLimitExceeded as exc:
            raise TemplateRenderError(part, str(exc), limit=exc.limit) from exc
        except SecurityError as exc:
            raise TemplateRenderError(part, f"blocked by the sandbox: {exc}") from exc
        except TemplateError as exc:
            raise TemplateRenderError(part, str(exc)) from exc
        except (RecursionError, SyntaxError) as exc:  # a macro calling itself; brackets nested hundreds deep
            raise TemplateRenderError(part, "render limit exceeded: nested too deeply", limit="recursion") from exc
        except MemoryError as exc:
            raise TemplateRenderError(part, "render limit exceeded: out of memory", limit="memory") from exc
        except (ArithmeticError, TypeError, ValueError, LookupError) as exc:
            raise TemplateRenderError(part, f"{type(exc).__name__}: {exc}") from exc
        if len(text) > self.limits.max_output_chars:
            raise TemplateRenderError(part, "rendered output too large", limit="TEMPLATE_MAX_OUTPUT_CHARS")
        return text.strip() if part in ("subject", "sms") else text


def source_hash(template: TemplateSource) -> str:
    h = hashlib.sha256()
    for part in PARTS:
        h.update((template.part(part) or "").encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- locale-aware formatting


@lru_cache(maxsize=256)
def babel_locale(locale: str) -> Locale:
    """`de`, `de-DE`, `de_DE` -> a Babel locale; unknown -> English."""
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def language_of(locale: str) -> str:
    return babel_locale(locale).language


def money(amount: Decimal, currency: str, locale: str) -> str:
    """`$4,820.00` (en-US), `4.820,00 €` (de-DE): Babel's formatting, through a per-locale shortcut."""
    fast = _money_shape(currency, locale) if amount >= 0 else None  # negative patterns vary too much by locale
    return fast(amount) if fast is not None else format_currency(amount, currency, locale=babel_locale(locale))


@lru_cache(maxsize=512)
def _money_shape(currency: str, locale: str) -> Callable[[Decimal], str] | None:
    """Babel re-reads locale data on every call (~150 µs); a reminder batch formats thousands of amounts.
    Learn the locale's shape once (prefix, suffix, separators, decimals) from Babel itself, and use it only
    if it reproduces Babel exactly on probe amounts; otherwise (e.g. Indian grouping) always call Babel."""
    loc = babel_locale(locale)
    probe = format_currency(Decimal("1234567.891"), currency, locale=loc)
    m = re.fullmatch(r"(\D*?)1(\D?)234(\D?)567(?:(\D)(\d+))?(\D*)", probe)
    if m is None or m.group(2) != m.group(3):
        return None
    prefix, group, decimal_sep, decimals, suffix = (
        m.group(1),
        m.group(2),
        m.group(4) or "",
        len(m.group(5) or ""),
        m.group(6),
    )
    quantum = Decimal(1).scaleb(-decimals)

    def fmt(amount: Decimal) -> str:
        whole, _, frac = f"{amount.quantize(quantum, rounding=ROUND_HALF_EVEN):f}".partition(".")
        grouped = f"{int(whole):,}".replace(",", group)
        return f"{prefix}{grouped}{decimal_sep + frac if decimals else ''}{suffix}"

    for sample in ("0", "7", "0.5", "0.005", "12.345", "999.995", "1000", "4820", "123456.78", "1000000.01"):
        if fmt(Decimal(sample)) != format_currency(Decimal(sample), currency, locale=loc):
            return None
    return fmt


@lru_cache(maxsize=4096)
def _day(d: date, locale: str) -> str:
    return format_date(d, format="medium", locale=babel_locale(locale))


def day(value: date | str | None, locale: str) -> str:
    if value is None or value == "":
        return ""
    d = value if isinstance(value, date) else date.fromisoformat(str(value))
    return _day(d, locale)
