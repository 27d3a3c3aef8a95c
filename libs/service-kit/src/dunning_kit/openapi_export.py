"""The platform's one OpenAPI document: the public operations of the four services, as one host serves them.

`python -m dunning_kit.openapi_export` (run by `make schemas`) builds each service's app through its own
composition root (nothing is started: no database, no broker), takes its OpenAPI document and merges them
into libs/events/schemas/openapi.yaml, next to the AsyncAPI document of the events. The Kubernetes Ingress
(deploy/k8s/base/ingress) routes every path of this document to the service that serves it, under one host
and without rewriting: a client sees the same paths as the services do (tests/deploy checks the routing).

What is public: every operation but the kit's operations endpoints (health, readiness, quietness, metrics:
probes and Prometheus reach them inside the cluster), the per-service personal-data exports, of which the
public one is ledger-sync's (it gathers the other three over the cluster network), and the events export
(`GET /v1/exports/events`, served by several services at one path: insights reaches each over the cluster network
to backfill; dunning_kit.event_export), the dead letters of each consuming service (`/v1/dead-letters`) and the
audit log of each service (`GET /v1/audit-log`), which the workspace reaches over the cluster network
(dunning_kit.dead_letters_api, dunning_kit.audit_api). Each operation names its
service (`x-dunning-service`). A component schema two services define differently is renamed with the
service's prefix (`policy_engine.CustomerOut`); identical ones are shared.

The web applications (`WEB_APPLICATIONS`: the staff workspace) have no operation here: they serve HTML pages to
people signed in with a session, not an API to clients with a key, so their pages are left out of their own OpenAPI
document (`include_in_schema=False`) and only the kit's operations endpoints remain, which are not public. They
have an Ingress host of their own (deploy/k8s/base/ingress/workspace.yaml). tests/test_openapi_document.py holds
them to that: a JSON operation a web application adds shows up and fails the test until someone decides where it
is published.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import yaml

from dunning_kit.clock import SystemClock
from dunning_kit.services import REPO_ROOT, SERVICES, ServiceSpec

DOCUMENT = REPO_ROOT / "libs" / "events" / "schemas" / "openapi.yaml"
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/quietz", "/metrics"})
PERSONAL_DATA = "/v1/customers/{customer_id}/personal-data"
PUBLIC_PERSONAL_DATA = "ledger-sync"  # the one export that gathers every service's
EVENTS_EXPORT = "/v1/exports/events"  # each publishing service's own: inside the cluster only
# Each consuming service's own dead letters (dunning_kit.dead_letters_api): the workspace reaches each inside the
# cluster, as insights reaches the events exports.
DEAD_LETTERS = ("/v1/dead-letters", "/v1/dead-letters/{group}/replay")
AUDIT_LOG = "/v1/audit-log"  # each service's own (dunning_kit.audit_api): the workspace reads each in the cluster
SERVICE_KEY = "x-dunning-service"
# Services that serve pages, not an API: no public operation of theirs is in the document (see the docstring).
WEB_APPLICATIONS = frozenset({"workspace"})
_REF = "#/components/schemas/"


def _settings(spec: ServiceSpec) -> Any:
    """Settings to build the app with: nothing is connected to, so the addresses only have to parse."""
    return spec.bootstrap().Settings(
        database_url="postgresql+asyncpg://openapi@127.0.0.1:1/openapi",
        kafka_bootstrap_servers="127.0.0.1:1",
        dev_mode=True,
    )


async def service_documents() -> dict[str, dict[str, Any]]:
    """Each service's own OpenAPI document, by service name."""
    out = {}
    for spec in SERVICES:
        module = spec.bootstrap()
        runtime = module.build_runtime(_settings(spec), SystemClock())
        try:
            out[spec.name] = copy.deepcopy(module.create_app(runtime).openapi())
        finally:
            await runtime.producer.stop()  # made (never started) with the runtime: closed, nothing left behind
    return out


def is_public(service: str, path: str) -> bool:
    if path in OPERATIONS_PATHS or path in (EVENTS_EXPORT, AUDIT_LOG) or path in DEAD_LETTERS:
        return False
    return path != PERSONAL_DATA or service == PUBLIC_PERSONAL_DATA


def _renamed(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (_REF + names.get(v[len(_REF) :], v[len(_REF) :]))
            if k == "$ref" and isinstance(v, str) and v.startswith(_REF)
            else _renamed(v, names)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_renamed(v, names) for v in node]
    return node


def combine(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One document from the services' (see the module docstring)."""
    defined: dict[str, dict[str, Any]] = {}  # name -> {service: schema}
    for service, doc in documents.items():
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            defined.setdefault(name, {})[service] = schema
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    tags: dict[str, dict[str, Any]] = {}
    for service, doc in documents.items():
        prefix = service.replace("-", "_")
        names = {
            name: f"{prefix}.{name}"
            for name, versions in defined.items()
            if service in versions and any(v != versions[service] for v in versions.values())
        }
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            schemas[names.get(name, name)] = _renamed(schema, names)
        for path, operations in doc.get("paths", {}).items():
            if not is_public(service, path):
                continue
            if path in paths:
                raise ValueError(f"{path} is served by {paths[path]} and {service}: one host cannot route both")
            paths[path] = {
                method: {**_renamed(operation, names), SERVICE_KEY: service} for method, operation in operations.items()
            }
            for operation in operations.values():
                for tag in operation.get("tags", ()):
                    tags.setdefault(tag, {"name": tag})
        for tag in doc.get("tags", ()):
            tags[tag["name"]] = tag
    return {
        "openapi": next(iter(documents.values()))["openapi"],
        "info": {
            "title": "Dunning platform API",
            "version": "1.0.0",
            "description": (
                "The public HTTP API of the four services (ledger-sync, policy-engine, notifier, "
                "promise-tracker) under one host, as the Kubernetes Ingress routes it; each operation names "
                f"its service in `{SERVICE_KEY}`. Every error is `application/problem+json` (RFC 9457). "
                "Generated by `make schemas` (python -m dunning_kit.openapi_export); do not edit."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items()))},
        "tags": sorted(tags.values(), key=lambda t: t["name"]),
    }


def to_yaml(document: dict[str, Any]) -> str:
    """The committed form of a combined document."""
    text: str = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
    return text


def render() -> str:
    return to_yaml(combine(asyncio.run(service_documents())))


def write(path: Path = DOCUMENT) -> None:
    path.write_text(render())


if __name__ == "__main__":
    write()
    print(f"wrote {DOCUMENT.relative_to(REPO_ROOT)}")
