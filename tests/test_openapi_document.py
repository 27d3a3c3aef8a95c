"""The platform's combined OpenAPI document (libs/events/schemas/openapi.yaml) is what the services serve now,
and every error it documents is a problem (application/problem+json); a web application (the workspace) serves
pages only and has no operation in it."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

import yaml

from dunning_kit.openapi_export import (
    DOCUMENT,
    OPERATIONS_PATHS,
    SERVICE_KEY,
    WEB_APPLICATIONS,
    combine,
    service_documents,
    to_yaml,
)
from dunning_kit.problems import PROBLEM_JSON
from dunning_kit.services import SERVICES


@cache
def documents() -> dict[str, dict[str, Any]]:
    return asyncio.run(service_documents())


@cache
def rendered() -> str:
    # What `render()` writes, from the documents built once for every test here.
    return to_yaml(combine(documents()))


def test_the_committed_document_is_not_stale() -> None:
    assert DOCUMENT.read_text() == rendered(), "regenerate with `make schemas` (python -m dunning_kit.openapi_export)"


def test_every_service_has_public_operations_and_every_error_is_a_problem() -> None:
    document: dict[str, Any] = yaml.safe_load(rendered())
    served = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            served.add(operation[SERVICE_KEY])
            errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
            assert {"422", "500"} <= errors.keys(), (method, path)
            for status, response in errors.items():
                assert list(response["content"]) == [PROBLEM_JSON], (method, path, status)
    assert served == {s.name for s in SERVICES} - WEB_APPLICATIONS
    components = document["components"]["schemas"]
    assert set(components["FieldProblem"]["required"]) >= {"title", "status", "detail", "errors"}


def test_a_web_application_serves_only_the_kits_operations_and_none_is_public() -> None:
    """The workspace's pages are out of its schema; anything else it served would be an API nobody published."""
    assert WEB_APPLICATIONS and {s.name for s in SERVICES} >= WEB_APPLICATIONS
    for name in WEB_APPLICATIONS:
        own = documents()[name]
        assert set(own["paths"]) == OPERATIONS_PATHS, (
            f"{name} serves JSON operations: {set(own['paths']) - OPERATIONS_PATHS}"
        )
    document: dict[str, Any] = yaml.safe_load(rendered())
    assert not [
        path for path, ops in document["paths"].items() if {o[SERVICE_KEY] for o in ops.values()} & WEB_APPLICATIONS
    ]
