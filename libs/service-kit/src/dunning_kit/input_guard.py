"""The edge guard: no request value reaches a handler, or PostgreSQL, that PostgreSQL cannot store.

PostgreSQL's text and JSONB cannot hold U+0000, `bigint` holds ±(2^63−1), and Python's JSON parser turns
`1e400` into an infinite float and accepts `NaN`. Instead of every route and column defending itself, this
one ASGI middleware sits in front of every service's routes (`dunning_kit.app.create_service_app` installs
it) and answers 422 naming the field (`dunning_kit.problems.invalid_input`) when a request carries

* a NUL byte in the path, in a query parameter's name or value, in a form field, or in any JSON string or
  object key (`%00`, `\\u0000`), or an unpaired surrogate in a JSON string or key (`\\ud800`);
* a JSON number that is not finite (`NaN`, `Infinity`, `1e400`) or lies outside ±(2^63−1): no field of the
  platform holds one;
* an integer path or query parameter outside ±(2^63−1) (the app's own OpenAPI document says which are
  integers, and names the path parameters).

Amounts written as decimal strings are bounded where their currency is known, by their type
(`dunning_events.money.AmountStr`). JSON and form bodies are read whole here (the body-size limit runs first);
other bodies (CSV uploads, spooled to disk) stream past untouched and their parsers check their own cells.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dunning_kit.problems import MALFORMED_BODY, FieldError, invalid_input

NUL = "\x00"
INT64_MAX = 2**63 - 1
MAX_REPORTED = 20  # a hostile body may hold thousands; the first few name the problem well enough

DEPTH_REASON = "a JSON parser can follow"
NUL_REASON = "contains a NUL byte (U+0000), which cannot be stored"
# JSON's \\ud800 escapes decode to lone surrogates, which no UTF-8 text (so no PostgreSQL text) can hold.
SURROGATE_REASON = "contains an unpaired surrogate (U+D800 to U+DFFF), which cannot be stored"
_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")
NUMBER_REASON = f"is a number that cannot be stored (it must be finite and within ±{INT64_MAX})"
_INT_DIGITS = len(str(INT64_MAX)) + 1  # longer literals are out of range (and never parsed: big ints cost CPU)


class _Malformed(Exception):
    """A body no parser can read: 400, like malformed JSON (the framework's own answer is not a problem)."""


class _Unstorable:
    """What a JSON literal the platform cannot hold (NaN, Infinity, a giant integer) is parsed into."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _parse_int(literal: str) -> int | _Unstorable:
    return int(literal) if len(literal.lstrip("-")) < _INT_DIGITS else _Unstorable(literal)


def _storable_number(value: object) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -INT64_MAX <= value <= INT64_MAX
    if isinstance(value, float):
        return value == value and abs(value) <= INT64_MAX  # NaN != NaN; inf fails the bound
    return not isinstance(value, _Unstorable)


def _field(segments: tuple[str | int, ...]) -> str:
    # The same spelling as a Pydantic validation error's loc joined by dots (`contacts.0.email`).
    return ".".join(str(s) for s in segments) or "(body)"


def _printable(text: str) -> str:
    """`text` with what cannot be stored (or even sent back as UTF-8) spelled as JSON escapes."""
    return _UNSTORABLE_CHAR.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def _string_problem(text: str) -> str | None:
    """Why PostgreSQL could not store `text`, or None."""
    found = _UNSTORABLE_CHAR.search(text)
    if found is None:
        return None
    return NUL_REASON if found[0] == NUL else SURROGATE_REASON


def unstorable_values(value: Any, *, location: str = "body") -> Iterator[FieldError]:
    """Every value inside a parsed JSON document (or YAML, form...) that PostgreSQL could not store.

    Iterative, so a document as deep as the parser accepted cannot exhaust the stack here."""
    pending: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while pending:
        at, item = pending.pop()
        if isinstance(item, str):
            if problem := _string_problem(item):
                yield FieldError(_field(at), problem, location)
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                name = _printable(str(key))
                if isinstance(key, str) and (problem := _string_problem(key)):
                    yield FieldError(_field((*at, name)), f"its name {problem}", location)
                pending.append(((*at, name), child))
        elif isinstance(item, list):
            pending.extend(((*at, i), child) for i, child in reversed(list(enumerate(item))))
        elif not _storable_number(item):
            yield FieldError(_field(at), NUMBER_REASON, location)


@dataclass(frozen=True)
class _Route:
    """One documented path template: which segments are parameters, and which parameters are integers."""

    pattern: re.Pattern[str]
    names: tuple[str, ...]
    int_path: dict[str, frozenset[str]]  # by method
    int_query: dict[str, frozenset[str]]


def _is_int_schema(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "integer" or any(_is_int_schema(s) for s in schema.get("anyOf", ()))


def _routes(doc: dict[str, Any]) -> list[_Route]:
    """The app's routes as its own OpenAPI document describes them (the same document clients and the fuzz
    run read), most literal first so `/v1/invoices/export` wins over `/v1/invoices/{id}`."""
    routes = []
    for path, operations in doc.get("paths", {}).items():
        pieces = re.split(r"\{([^}]+)\}", path)
        names = tuple(p.split(":", 1)[0] for p in pieces[1::2])
        regex = "".join(re.escape(p) if i % 2 == 0 else "([^/]+)" for i, p in enumerate(pieces))
        int_path: dict[str, frozenset[str]] = {}
        int_query: dict[str, frozenset[str]] = {}
        for method, operation in operations.items():
            params = [p for p in operation.get("parameters", ()) if _is_int_schema(p.get("schema", {}))]
            int_path[method.upper()] = frozenset(p["name"] for p in params if p["in"] == "path")
            int_query[method.upper()] = frozenset(p["name"] for p in params if p["in"] == "query")
        routes.append(_Route(re.compile(f"^{regex}$", re.DOTALL), names, int_path, int_query))
    return sorted(routes, key=lambda r: len(r.names))


def _out_of_range_int(text: str) -> bool:
    literal = text.strip().lstrip("+-")
    if not (literal.isascii() and literal.isdigit()):  # '²' is a digit to str.isdigit but not to int()
        return False  # not an integer literal at all: the route's own validation answers
    return len(literal) >= _INT_DIGITS or int(literal) > INT64_MAX


def _url_errors(scope: Scope, routes: list[_Route]) -> list[FieldError]:
    errors: list[FieldError] = []
    path, method = scope["path"], scope.get("method", "GET")
    route, values = next(((r, m.groups()) for r in routes if (m := r.pattern.match(path))), (None, ()))
    int_path = route.int_path.get(method, frozenset()) if route else frozenset()
    int_query = route.int_query.get(method, frozenset()) if route else frozenset()
    if route is None or not values:
        if NUL in path:
            errors.append(FieldError("path", NUL_REASON, "path"))
    else:
        for name, value in zip(route.names, values, strict=True):
            if NUL in value:
                errors.append(FieldError(f"path.{name}", NUL_REASON, "path"))
            elif name in int_path and _out_of_range_int(value):
                errors.append(FieldError(f"path.{name}", NUMBER_REASON, "path"))
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if NUL in name:
            errors.append(FieldError(f"query.{_printable(name)}", f"its name {NUL_REASON}", "query"))
        elif NUL in value:
            errors.append(FieldError(f"query.{name}", NUL_REASON, "query"))
        elif name in int_query and _out_of_range_int(value):
            errors.append(FieldError(f"query.{name}", NUMBER_REASON, "query"))
    return errors


def _body_kind(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.decode("latin-1").split(";", 1)[0].strip().lower()
            if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
                return "json"
            if media == "application/x-www-form-urlencoded":
                return "form"
    return None


def _body_errors(body: bytes, kind: str) -> list[FieldError]:
    if kind == "form":
        errors = []
        for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            if NUL in name or NUL in value:
                errors.append(FieldError(_printable(name), NUL_REASON, "body"))
        return errors
    try:
        document = json.loads(body, parse_int=_parse_int, parse_constant=_Unstorable)
    except UnicodeDecodeError:
        raise _Malformed("is not UTF-8 (nor UTF-16 or UTF-32) text") from None
    except ValueError:
        return []  # malformed JSON: the route's own parsing answers 400 with its position
    except RecursionError:
        # Deeper than Python's parser goes: the route's own parsing would fail the same way, as a 500.
        return [FieldError("(body)", f"is nested deeper than {DEPTH_REASON}", "body")]
    return list(islice(unstorable_values(document), MAX_REPORTED))


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]  # the client went away: hand that on as it came
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), []


def _replay(body: bytes, pending: list[Message], receive: Receive) -> Callable[[], Awaitable[Message]]:
    queue: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, *pending]

    async def replayed() -> Message:
        return queue.pop(0) if queue else await receive()

    return replayed


class UnstorableInputGuard:
    """ASGI middleware: 422 for a request carrying a value PostgreSQL cannot store (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: list[_Route] | None = None  # read from the app's OpenAPI document on first use

    def _known_routes(self, scope: Scope) -> list[_Route]:
        if self._routes is None:
            openapi = getattr(scope.get("app"), "openapi", None)
            self._routes = _routes(openapi()) if callable(openapi) else []
        return self._routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        errors = _url_errors(scope, self._known_routes(scope))
        kind = _body_kind(scope)
        if not errors and kind is not None:
            body, pending = await _read_body(receive)
            receive = _replay(body, pending, receive)
            try:
                errors = _body_errors(body, kind)
            except _Malformed as exc:
                malformed = [FieldError("(body)", str(exc), "body")]
                response = invalid_input(
                    malformed, status=400, detail="malformed JSON body", type=MALFORMED_BODY, instance=scope["path"]
                )
                await response(scope, receive, send)
                return
        if errors:
            response = invalid_input(errors[:MAX_REPORTED], instance=_printable(scope["path"]))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
