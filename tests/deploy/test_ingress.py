"""The Ingress of the APIs (deploy/k8s/base/ingress) routes every path of the platform's OpenAPI document to the
service that serves it, in every overlay, under the overlay's host; the workspace's Ingress routes every page of the
staff application under a host of its own; nothing else (health, metrics) is routed."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from dunning_kit.openapi_export import DOCUMENT, OPERATIONS_PATHS, SERVICE_KEY
from tests.deploy.test_manifests import ENVIRONMENTS, K8S, render

HOSTS = {"dev": "dunning.dev.example.com", "prod": "dunning.example.com"}
WORKSPACE_HOSTS = {"dev": "workspace.dunning.dev.example.com", "prod": "workspace.dunning.example.com"}
# Paths the services serve outside their OpenAPI documents (HTML pages), and which service serves them.
PAGES = {"/self-service/promise": "promise-tracker", "/pay": "notifier", "/unsubscribe": "notifier"}


def _ingress(environment: str, name: str = "dunning") -> dict[str, Any]:
    ingresses = {d["metadata"]["name"]: d for d in render(K8S / "overlays" / environment) if d["kind"] == "Ingress"}
    assert set(ingresses) == {"dunning", "workspace"}
    return ingresses[name]


def _routes(ingress: dict[str, Any]) -> list[tuple[re.Pattern[str], str]]:
    [rule] = ingress["spec"]["rules"]
    # ingress-nginx with use-regex: each path is a case-insensitive regex matched from the start of the URI path.
    return [(re.compile(p["path"], re.IGNORECASE), p["backend"]["service"]["name"]) for p in rule["http"]["paths"]]


def _sample(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x-1", template)


def _served_by(routes: list[tuple[re.Pattern[str], str]], path: str) -> list[str]:
    return [service for pattern, service in routes if pattern.match(path)]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_public_path_reaches_its_service_and_only_it(environment: str) -> None:
    ingress = _ingress(environment)
    host = HOSTS[environment]
    assert [r["host"] for r in ingress["spec"]["rules"]] == [host]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/use-regex"] == "true"
    routes = _routes(ingress)
    document = yaml.safe_load(DOCUMENT.read_text())
    wanted = {path: {op[SERVICE_KEY] for op in operations.values()} for path, operations in document["paths"].items()}
    wanted |= {page: {service} for page, service in PAGES.items()}
    wrong = {}
    for template, services in wanted.items():
        assert len(services) == 1, template
        got = _served_by(routes, _sample(template))
        if got != list(services):
            wrong[template] = got
    assert not wrong, f"routed to the wrong service (or to several, or none): {wrong}"
    for operations_path in OPERATIONS_PATHS:
        assert _served_by(routes, operations_path) == [], operations_path
    prefixes = {"/v1/customers/x-1/personal-data": ["ledger-sync"], "/v1/customers/x-1/timeline/extra": []}
    for path, expected in prefixes.items():
        assert _served_by(routes, path) == expected, path


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_links_in_messages_point_at_the_ingress_host(environment: str) -> None:
    """The notifier's links (pay, unsubscribe, self-service) and Twilio callbacks are built on these URLs."""
    config = {
        d["metadata"]["name"].rsplit("-", 1)[0]: d["data"]
        for d in render(K8S / "overlays" / environment)
        if d["kind"] == "ConfigMap"
    }
    urls = [config["dunning-common"]["PUBLIC_BASE_URL"], config["notifier-config"]["PROMISE_TRACKER_PUBLIC_URL"]]
    assert urls == [f"https://{HOSTS[environment]}"] * 2


def test_the_routed_backends_are_services_on_their_http_port() -> None:
    documents = render(K8S / "overlays" / "prod")
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    paths = [
        p for name in ("dunning", "workspace") for p in _ingress("prod", name)["spec"]["rules"][0]["http"]["paths"]
    ]
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["port"] == {"name": "http"}
        assert "http" in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}, backend


# The workspace's pages and what it serves beside them (the kit's operations paths stay off the Ingress).
WORKSPACE_PAGES = ["/", "/sign-in", "/auth/callback", "/sign-out", "/customers/x-1", "/worklist", "/portfolio",
                   "/static/workspace.css", "/healthz-report"]  # fmt: skip


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_workspace_has_a_host_of_its_own_that_routes_every_page_to_it(environment: str) -> None:
    ingress = _ingress(environment, "workspace")
    host = WORKSPACE_HOSTS[environment]
    assert [r["host"] for r in ingress["spec"]["rules"]] == [host] and ingress["spec"]["tls"][0]["hosts"] == [host]
    assert host not in _ingress(environment)["spec"]["tls"][0]["hosts"], "its cookie and CSP must not cover the APIs"
    routes = _routes(ingress)
    assert {service for _, service in routes} == {"workspace"}
    for page in WORKSPACE_PAGES:
        assert _served_by(routes, page) == ["workspace"], page
    for operations_path in [*OPERATIONS_PATHS, "/metrics/", "/READYZ"]:
        assert _served_by(routes, operations_path) == [], operations_path
    config = {
        d["metadata"]["name"].rsplit("-", 1)[0]: d["data"]
        for d in render(K8S / "overlays" / environment)
        if d["kind"] == "ConfigMap"
    }
    # The OIDC redirect URI (WORKSPACE_PUBLIC_URL + /auth/callback) must come back through this host.
    assert config["workspace-config"]["WORKSPACE_PUBLIC_URL"] == f"https://{host}"
