"""No input reaches PostgreSQL that it cannot store: a NUL byte or an unpaired surrogate anywhere, or a number
no column or amount can hold, is refused at the edge with a 422 problem naming the field, on every route of the four services.

The routes come from each running app's own OpenAPI document, so a route added later is covered without
touching this file. Requests are hostile in one place at a time and otherwise as plain as possible; the
answer must be the 422 that names that one place (a 500, a 404 or a 200 fails the test).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from dunning_kit.testing import Platform

PROBLEM_JSON = "application/problem+json"
NUL_JSON = "a\\u0000b"  # as it travels in a JSON text
HUGE_INT = str(2**63)  # one past what a bigint holds
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Operation:
    service: str
    method: str
    path: str
    path_params: list[dict[str, Any]]
    query_params: list[dict[str, Any]]
    body: dict[str, Any] | None  # the JSON body schema (refs resolved at the top), None when undocumented

    @property
    def label(self) -> str:
        return f"{self.service} {self.method} {self.path}"

    @property
    def takes_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH")


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    for option in schema.get("anyOf", ()):
        resolved = _resolve(doc, option)
        if resolved.get("type") == "object" or "properties" in resolved:
            return resolved
    return schema


def operations(platform: Platform) -> Iterator[Operation]:
    for name, service in platform.services.items():
        doc = service.app.openapi()
        for path, methods in doc["paths"].items():
            for method, op in methods.items():
                params = op.get("parameters", [])
                content = op.get("requestBody", {}).get("content", {}).get("application/json")
                yield Operation(
                    name,
                    method.upper(),
                    path,
                    [p for p in params if p["in"] == "path"],
                    [p for p in params if p["in"] == "query"],
                    _resolve(doc, content["schema"]) if content else None,
                )


def _types(schema: dict[str, Any]) -> set[str]:
    found = {schema["type"]} if "type" in schema else set()
    for option in schema.get("anyOf", ()):
        found |= _types(option)
    return found


def _plain(param: dict[str, Any]) -> str:
    schema = param.get("schema", {})
    if schema.get("enum"):
        return str(schema["enum"][0])
    return "1" if "integer" in _types(schema) else "x1"


def _url(op: Operation, path_values: dict[str, str] | None = None, query: str = "") -> str:
    values = {p["name"]: _plain(p) for p in op.path_params} | (path_values or {})
    path = re.sub(r"\{([^}]+)\}", lambda m: values[m[1]], op.path)
    return path + (f"?{query}" if query else "")


def _refusal(response: httpx.Response, field: str, location: str, words: str) -> str | None:
    """None when `response` is the 422 problem naming `field` at `location`; else what is wrong with it."""
    if response.status_code != 422 or not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        return f"{response.status_code} {response.headers.get('content-type')}: {response.text[:200]}"
    body = response.json()
    named = [d for d in body["errors"] if d.get("field") == field and d.get("location") == location]
    if body["status"] != 422 or not named or words not in named[0]["reason"]:
        return f"422 without {location} field {field!r} ({words}): {body['errors']}"
    return None


async def _send(client: httpx.AsyncClient, op: Operation, url: str, body: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"} if body is not None else {}
    return await client.request(op.method, url, content=body, headers=headers)


def _clients(platform: Platform) -> dict[str, httpx.AsyncClient]:
    return {name: svc.client("acme-admin-key") for name, svc in platform.services.items()}


async def test_a_nul_byte_or_an_unstorable_integer_in_any_path_or_query_parameter_is_refused_naming_it(
    platform: Platform,
) -> None:
    clients = _clients(platform)
    failures, tried = [], 0
    try:
        for op in operations(platform):
            client = clients[op.service]
            for param in op.path_params:
                name = param["name"]
                tried += 1
                r = await _send(client, op, _url(op, {name: "a%00b"}))
                if problem := _refusal(r, f"path.{name}", "path", "NUL"):
                    failures.append(f"{op.label} path {name}=%00: {problem}")
                if "integer" in _types(param.get("schema", {})):
                    r = await _send(client, op, _url(op, {name: HUGE_INT}))
                    if problem := _refusal(r, f"path.{name}", "path", "cannot be stored"):
                        failures.append(f"{op.label} path {name}=2^63: {problem}")
            # Declared filters, and one the route does not declare (it would be ignored, but not stored: no).
            for name in [p["name"] for p in op.query_params] or ["probe"]:
                tried += 1
                r = await _send(client, op, _url(op, query=f"{name}=a%00b"))
                if problem := _refusal(r, f"query.{name}", "query", "NUL"):
                    failures.append(f"{op.label} query {name}=%00: {problem}")
            for param in op.query_params:
                if "integer" in _types(param.get("schema", {})):
                    r = await _send(client, op, _url(op, query=f"{param['name']}={HUGE_INT}"))
                    if problem := _refusal(r, f"query.{param['name']}", "query", ""):
                        failures.append(f"{op.label} query {param['name']}=2^63: {problem}")
    finally:
        for client in clients.values():
            await client.aclose()
    assert tried > 80, f"only {tried} parameters found: is the OpenAPI document still read?"
    assert not failures, "\n".join(failures)


def _hostile_body(schema: dict[str, Any] | None) -> tuple[str, set[str]]:
    """A JSON text with a NUL in every top-level string, list item and object key of `schema`, and the fields
    the refusal must name; a route without a documented body gets one made-up field."""
    parts, fields = [], set()
    for name, prop in ((schema or {}).get("properties") or {"name": {"type": "string"}}).items():
        kinds = _types(prop) or {"object"}
        if "string" in kinds:
            parts.append(f'"{name}": "{NUL_JSON}"')
            fields.add(name)
        elif "array" in kinds:
            parts.append(f'"{name}": ["{NUL_JSON}"]')
            fields.add(f"{name}.0")
        elif "object" in kinds:
            parts.append(f'"{name}": {{"{NUL_JSON}": "v"}}')
            fields.add(f"{name}.a\\u0000b")
    if not parts:  # nothing plain to put it in: a made-up field (the guard reads every body whole)
        parts, fields = [f'"name": "{NUL_JSON}"'], {"name"}
    return "{" + ", ".join(parts) + "}", fields


async def test_a_nul_byte_or_an_unstorable_number_anywhere_in_a_json_body_is_refused_naming_the_field(
    platform: Platform,
) -> None:
    clients = _clients(platform)
    failures, tried = [], 0
    try:
        for op in operations(platform):
            if not op.takes_body:
                continue
            client, url = clients[op.service], _url(op)
            text, fields = _hostile_body(op.body)
            tried += 1
            r = await _send(client, op, url, text)
            if r.status_code != 422 or r.headers.get("content-type") != PROBLEM_JSON:
                failures.append(f"{op.label} NUL body: {r.status_code} {r.text[:200]}")
            else:
                named = {d["field"] for d in r.json()["errors"] if d.get("location") == "body"}
                if named != fields:
                    failures.append(f"{op.label} NUL body: named {sorted(named)}, expected {sorted(fields)}")
            field = next(iter((op.body or {}).get("properties") or {"amount": {}}))
            r = await _send(client, op, url, f'{{{json.dumps(field)}: "a\\ud800b"}}')  # an unpaired surrogate
            if problem := _refusal(r, field, "body", "unpaired surrogate"):
                failures.append(f"{op.label} {field}=\\ud800: {problem}")
            r = await client.request(op.method, url, content=b'{"a": "\xff"}', headers=JSON)  # not UTF-8
            if (r.status_code, r.headers.get("content-type")) != (400, PROBLEM_JSON):
                failures.append(f"{op.label} body not UTF-8: {r.status_code} {r.text[:200]}")
            for number in ("1e400", "-1e400", "NaN", "Infinity", HUGE_INT, f"-{HUGE_INT}0"):
                r = await _send(client, op, url, f"{{{json.dumps(field)}: {number}}}")
                if problem := _refusal(r, field, "body", "cannot be stored"):
                    failures.append(f"{op.label} {field}={number}: {problem}")
    finally:
        for client in clients.values():
            await client.aclose()
    assert tried > 30, f"only {tried} operations with a body found"
    assert not failures, "\n".join(failures)


def _decimal_fields(op: Operation) -> list[str]:
    """Body fields documented as "number or decimal string": the amounts."""
    props = (op.body or {}).get("properties") or {}
    return [name for name, prop in props.items() if _types(prop) - {"null"} == {"number", "string"}]


async def test_an_amount_beyond_what_the_platform_can_hold_is_refused_naming_the_field(platform: Platform) -> None:
    clients = _clients(platform)
    failures, amounts = [], 0
    try:
        for op in operations(platform):
            fields = _decimal_fields(op)
            if not fields:
                continue
            for value in ("1e400", "-1e400", "1e17", "99999999999999999999.99"):
                amounts += 1
                body = {"currency": "EUR", **{f: value for f in fields}}
                r = await clients[op.service].request(op.method, _url(op), json=body)
                for f in fields:
                    if problem := _refusal(r, f, "body", "less than 100,000,000,000,000"):
                        failures.append(f"{op.label} {f}={value}: {problem}")
    finally:
        for client in clients.values():
            await client.aclose()
    assert amounts >= 16, "ledger invoices, payments, credit notes and promises carry amounts"
    assert not failures, "\n".join(failures)


async def test_a_valid_invoice_whose_minor_units_overflow_a_bigint_is_refused_and_nothing_is_written(
    platform: Platform,
) -> None:
    async with platform["ledger-sync"].client() as api:
        await api.post("/v1/customers", json={"id": "C-1", "name": "Initech"})
        invoice = {"id": "INV-1", "customer_id": "C-1", "number": "1", "currency": "EUR", "issue_date": "2026-03-01"}
        r = await api.post("/v1/invoices", json={**invoice, "total": "99999999999999999.00"})
        assert _refusal(r, "total", "body", "less than") is None, r.text
        assert (await api.get("/v1/invoices/INV-1")).status_code == 404
        assert (await api.post("/v1/invoices", json={**invoice, "total": "99999999999999.99"})).status_code == 201


async def test_a_csv_cell_with_a_nul_byte_is_refused_with_its_line_and_column(platform: Platform) -> None:
    csv = "id,customer_id,number,currency,total,issue_date\nINV-1,C-1,1,EUR,10.00,2026-03-01\nINV-\x002,C-1,2,EUR,1.00,2026-03-01\n"
    async with platform["ledger-sync"].client() as api:
        await api.post("/v1/customers", json={"id": "C-1", "name": "Initech"})
        r = await api.post("/v1/imports/invoices", content=csv.encode(), headers={"content-type": "text/csv"})
        assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM_JSON), r.text
        assert [(d["line"], d["column"]) for d in r.json()["errors"]] == [(3, "id")], r.text
        assert (await api.get("/v1/invoices/INV-1")).status_code == 404  # all or nothing


async def test_a_yaml_policy_with_a_nul_byte_or_an_unholdable_fee_is_refused_naming_the_field(
    platform: Platform,
) -> None:
    step = "{name: s1, offset_days: 5, channels: [email], template_id: t1, fees: [{kind: fixed, amounts: {EUR: %s}}]}"
    policies = {
        f'id: p1\nname: "a\\0b"\nsteps: [{step % 1}]\n': "name",
        f"id: p1\nsteps: [{step % '1e400'}]\n": "steps[0].fees[0].amounts",
    }
    async with platform["policy-engine"].client("acme-admin-key") as api:
        for text, field in policies.items():
            r = await api.post("/v1/policies/validate", content=text, headers={"content-type": "application/yaml"})
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON, r.text
            assert field in {d["field"] for d in r.json()["errors"]}, r.text
        step = {"name": "s1", "offset_days": 5, "channels": ["email"], "template_id": "t1"}
        fee = {"kind": "fixed", "amounts": {"EUR": "1e400"}}
        r = await api.post("/v1/policies/validate", json={"id": "p1", "steps": [{**step, "fees": [fee]}]})
        assert r.status_code == 422, r.text
        assert "steps[0].fees[0].amounts" in {d["field"] for d in r.json()["errors"]}, r.text
