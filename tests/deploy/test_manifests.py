"""The Kubernetes manifests: every overlay renders, validates against the Kubernetes schemas, and keeps the rules."""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from dunning_events import topics as topic_names
from dunning_kit.clock import SystemClock
from dunning_kit.kafka_access import kafka_access, kafka_user_name
from dunning_kit.kafka_access import render as render_kafka_users
from dunning_kit.services import SERVICES, ServiceSpec
from dunning_kit.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
ENVIRONMENTS = ("dev", "prod")


# ---------------------------------------------------------------------------------------------- rendering


def _kustomize() -> list[str]:
    # Debian's kubectl ships kustomize (`kubectl kustomize`); a standalone kustomize works the same.
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.fail("neither kustomize nor kubectl is installed: the manifests cannot be rendered")


@cache
def render(directory: Path, *flags: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run([*_kustomize(), *flags, str(directory)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kustomize failed on {directory}:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def overlay_dirs() -> list[Path]:
    """Every renderable overlay (Components are only rendered through the overlays that include them)."""
    out = []
    for file in sorted((K8S / "overlays").rglob("kustomization.yaml")):
        if yaml.safe_load(file.read_text()).get("kind", "Kustomization") == "Kustomization":
            out.append(file.parent)
    return out


@dataclass
class Environment:
    """One environment's three renders: the services, their migration Jobs and the Kafka topics."""

    name: str
    services: tuple[dict[str, Any], ...]
    migrations: tuple[dict[str, Any], ...]
    topics: tuple[dict[str, Any], ...]

    def all(self) -> Iterator[dict[str, Any]]:
        yield from (*self.services, *self.migrations, *self.topics)

    def find(self, kind: str, name: str | None = None, objects: tuple[dict[str, Any], ...] | None = None) -> list:
        return [
            o
            for o in (objects if objects is not None else tuple(self.all()))
            if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
        ]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = self.find(kind, name)
        assert len(found) == 1, f"{self.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def environment(request: pytest.FixtureRequest) -> Environment:
    base = K8S / "overlays" / request.param
    return Environment(request.param, render(base), render(base / "migrations"), render(base / "topics"))


# ---------------------------------------------------------------------------------------------- what the code says


@dataclass
class Consumer:
    group: str
    topics: list[str]


@dataclass
class ServiceFacts:
    spec: ServiceSpec
    consumers: list[Consumer] = field(default_factory=list)
    produces: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    def settings_class(self) -> type:
        return importlib.import_module(f"{self.spec.package}.settings").Settings


def wiring_of(spec: ServiceSpec) -> ServiceFacts:
    """The consumer groups and produced topics a service's composition root really wires (built, never started)."""

    async def build() -> ServiceFacts:
        module = spec.bootstrap()
        offline = {"dev_mode": True} if "dev_mode" in module.Settings.model_fields else {}
        settings = module.Settings(
            database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
            kafka_bootstrap_servers="127.0.0.1:1",
            **offline,
        )
        runtime = module.build_runtime(settings, SystemClock())
        try:
            consumers = [Consumer(c.group, list(c.topics)) for c in runtime.consumers]
            return ServiceFacts(spec, consumers, list(runtime.produces))
        finally:
            await runtime.producer.stop()
            await runtime.engine.dispose()

    return asyncio.run(build())


@pytest.fixture(scope="session")
def services() -> list[ServiceFacts]:
    return [wiring_of(s) for s in SERVICES]


@pytest.fixture(scope="session")
def expected_topics(services: list[ServiceFacts]) -> set[str]:
    groups = {c.group for s in services for c in s.consumers}
    return {*topic_names.ALL_TOPICS, *(topic_names.dead_letter_topic(g) for g in groups)}


# The oldest Kubernetes the manifests promise to work on, and the newest schema the validator ships.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
STRIMZI = "kafka.strimzi.io/v1beta2"
PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"
PRE_STOP_SECONDS = 5
DNS_PORTS = {("UDP", 53), ("TCP", 53)}
POSTGRES_PORTS = {("TCP", 5432)}
KAFKA_PORTS = {"dev": {("TCP", 9092)}, "prod": {("TCP", 9093)}}  # dev: Strimzi's plain listener; prod: its TLS one
PROVIDER_PORTS = {("TCP", 443), ("TCP", 587), ("TCP", 465)}  # notifier only: HTTPS APIs and SMTP submission
ERP_PORTS = {("TCP", 443)}  # ledger-sync only: the ERPs' HTTPS APIs and OAuth token endpoints
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"}
SECRET_NAME = re.compile(r"(password|secret|token|api_key|signing_key|private_key|^api_keys$|^database_url$)")
LINK_SIGNERS = {"notifier", "promise-tracker"}  # sign / verify customer links
READ_MODELS = {"insights"}  # consume the topics, publish nothing (no outbox topic, no Write but for dead letters)
# The staff web application: consumes no topic and publishes nothing (its Kafka user has no ACL), answers no API key
# (staff sign in; its pages are its only routes), and calls the five other services' APIs and the OIDC provider.
STAFF_APPS = {"workspace"}
IDP_PORTS = {("TCP", 443)}  # the workspace only: the OpenID Connect provider's HTTPS endpoints
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


# ---------------------------------------------------------------------------------------------- helpers


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions); {} selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        present, value = e["key"] in labels, labels.get(e["key"])
        if not {
            "In": lambda e=e, v=value: v in e["values"],
            "NotIn": lambda e=e, v=value: v not in e["values"],
            "Exists": lambda p=present: p,
            "DoesNotExist": lambda p=present: not p,
        }[e["operator"]]():
            return False
    return True


def policies_for(objects: tuple[dict[str, Any], ...], labels: dict[str, str], direction: str) -> list[dict]:
    """The NetworkPolicy rules of one direction ("ingress"/"egress") that apply to a pod with these labels."""
    rules = []
    for p in objects:
        if (
            p["kind"] == "NetworkPolicy"
            and selects(p["spec"]["podSelector"], labels)
            and direction.capitalize() in p["spec"].get("policyTypes", [])
        ):
            rules.extend(p["spec"].get(direction) or [])
    return rules


def ports_of(rules: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for r in rules for p in r.get("ports") or []}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def deployment(env: Environment, service: ServiceFacts) -> dict[str, Any]:
    return env.one("Deployment", service.name)


def config_values(env: Environment, workload: dict[str, Any]) -> dict[str, str]:
    """What the container's environment will hold from ConfigMaps and literal values."""
    values: dict[str, str] = {}
    container = pod_spec(workload)["containers"][0]
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values.update(env.one("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            values[var["name"]] = var["value"]
    return values


def secret_refs(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        var["name"]: var["valueFrom"]["secretKeyRef"]
        for var in pod_spec(workload)["containers"][0].get("env", [])
        if "secretKeyRef" in var.get("valueFrom", {})
    }


def secret_fields(service: ServiceFacts) -> dict[str, Any]:
    """Settings fields that hold credentials this service needs, with their defaults.

    Its own credential fields, plus the inherited ones it uses: the connection string and API keys (read by the
    shared kit for every service but the workspace, which serves no API) and the customer-link signing key (notifier and promise-tracker only: the
    setting's own description says so; the other services must not hold it).
    """
    out = {}
    for name, info in service.settings_class().model_fields.items():
        if not SECRET_NAME.search(name) or (name.endswith(("_file", "_url", "_public_key")) and name != "database_url"):
            continue
        inherited = name in ServiceSettings.model_fields
        if name == "api_keys" and service.name in STAFF_APPS:
            continue  # no route of the workspace takes an API key: it must not hold the tenants' key hashes
        if not inherited or name in ("database_url", "api_keys") or service.name in LINK_SIGNERS:
            out[name] = info.default
    return out


def all_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(str(d.relative_to(K8S)), o) for d in overlay_dirs() for o in render(d)]


# ---------------------------------------------------------------------------------------------- rendering and schemas


def test_every_environment_has_services_migrations_and_topics_overlays() -> None:
    found = {str(d.relative_to(K8S / "overlays")) for d in overlay_dirs()}
    expected = {f"{env}{part}" for env in ENVIRONMENTS for part in ("", "/migrations", "/topics")}
    expected.add("prod/monitoring")  # optional: needs the Prometheus Operator's CRDs
    assert found == expected


@pytest.mark.parametrize("overlay", overlay_dirs(), ids=lambda d: str(d.relative_to(K8S / "overlays")))
def test_every_kubernetes_object_validates_against_the_schemas(overlay) -> None:
    objects = render(overlay)
    assert objects, f"{overlay} renders nothing"
    for obj in objects:
        if obj["apiVersion"] in (STRIMZI, PROMETHEUS_OPERATOR):
            continue  # custom resources: checked structurally below
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid on {version}: {exc.message}")


def test_schema_validation_rejects_a_misspelt_field() -> None:
    # Proves the validation above is strict enough to catch a typo in a probe.
    broken = yaml.safe_load(yaml.safe_dump(next(o for o in render(K8S / "overlays/prod") if o["kind"] == "Deployment")))
    probe = pod_spec(broken)["containers"][0]["readinessProbe"]
    probe["httpGett"] = probe.pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_nothing_is_left_in_the_default_namespace(environment: Environment) -> None:
    namespaces = {o["metadata"].get("namespace") for o in (*environment.services, *environment.migrations)}
    assert len(namespaces) == 1 and None not in namespaces and "default" not in namespaces
    assert {o["metadata"].get("namespace") for o in environment.topics} == {"kafka"}


# ---------------------------------------------------------------------------------------------- every Deployment and its companions


def test_every_service_has_deployment_service_pdb_hpa_account_and_ingress_policy(
    environment: Environment, services: list[ServiceFacts]
) -> None:
    env = environment
    assert {d["metadata"]["name"] for d in env.find("Deployment")} == {s.name for s in services}
    for service in services:
        deploy = deployment(env, service)
        labels = pod_labels(deploy)
        assert selects(deploy["spec"]["selector"], labels)
        assert "replicas" not in deploy["spec"], "the HPA owns the replica count"
        port = pod_spec(deploy)["containers"][0]["ports"][0]
        assert (port["name"], port["containerPort"]) == ("http", service.spec.port)

        svc = env.one("Service", service.name)
        assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
        assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(service.spec.port, "http")]

        pdb = env.one("PodDisruptionBudget", service.name)
        assert selects(pdb["spec"]["selector"], labels)
        assert pdb["spec"].get("maxUnavailable") == 1

        hpa = env.one("HorizontalPodAutoscaler", service.name)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service.name}
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
        assert cpu, f"{service.name}: HPA without a CPU target"

        account = env.one("ServiceAccount", pod_spec(deploy)["serviceAccountName"])
        assert account["automountServiceAccountToken"] is False
        assert pod_spec(deploy)["automountServiceAccountToken"] is False

        ingress = policies_for(env.services, labels, "ingress")
        assert ingress and ports_of(ingress) == {("TCP", service.spec.port)}


def test_hpas_never_scale_a_consumer_group_past_its_partitions(
    environment: Environment, services: list[ServiceFacts]
) -> None:
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in environment.find("KafkaTopic")}
    for service in services:
        hpa = environment.one("HorizontalPodAutoscaler", service.name)
        for consumer in service.consumers:
            for topic in consumer.topics:
                assert hpa["spec"]["maxReplicas"] <= partitions[topic], (
                    f"{service.name} may scale to {hpa['spec']['maxReplicas']} but {topic} has {partitions[topic]} partitions"
                )


def test_prod_scales_every_consumer_group_on_its_lag(services: list[ServiceFacts]) -> None:
    objects = render(K8S / "overlays/prod")
    for service in services:
        hpa = next(
            o for o in objects if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == service.name
        )
        lag = {
            m["external"]["metric"]["selector"]["matchLabels"]["group"]
            for m in hpa["spec"]["metrics"]
            if m["type"] == "External" and m["external"]["metric"]["name"] == "dunning_consumer_lag"
        }
        assert lag == {c.group for c in service.consumers}, service.name


def test_dev_needs_no_external_metrics_adapter() -> None:
    for hpa in (o for o in render(K8S / "overlays/dev") if o["kind"] == "HorizontalPodAutoscaler"):
        assert {m["type"] for m in hpa["spec"]["metrics"]} == {"Resource"}


# ---------------------------------------------------------------------------------------------- pods: probes, shutdown, lockdown


def test_probes_check_health_and_readiness_on_the_service_port(
    environment: Environment, services: list[ServiceFacts]
) -> None:
    for service in services:
        container = pod_spec(deployment(environment, service))["containers"][0]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_grace_period_covers_pre_stop_and_the_drain(environment: Environment, services: list[ServiceFacts]) -> None:
    for service in services:
        deploy = deployment(environment, service)
        container = pod_spec(deploy)["containers"][0]
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(PRE_STOP_SECONDS)]
        drain = float(
            config_values(environment, deploy).get(
                "SHUTDOWN_GRACE_SECONDS", ServiceSettings.model_fields["shutdown_grace_seconds"].default
            )
        )
        grace = pod_spec(deploy)["terminationGracePeriodSeconds"]
        assert grace >= 30 and grace >= PRE_STOP_SECONDS + drain + 5, f"{service.name}: {grace}s < preStop + {drain}s"


@pytest.mark.parametrize("overlay", overlay_dirs(), ids=lambda d: str(d.relative_to(K8S / "overlays")))
def test_every_pod_runs_locked_down_with_limits_and_pinned_images(overlay) -> None:
    workloads = [o for o in render(overlay) if o["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")]
    for workload in workloads:
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = pod_spec(workload)
        pod_ctx = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        assert all("hostPath" not in v for v in spec.get("volumes", [])), name
        for c in containers(workload):
            ctx = {**pod_ctx, **c.get("securityContext", {})}
            assert ctx.get("runAsNonRoot") is True and ctx.get("runAsUser", 0) > 0, name
            assert ctx.get("readOnlyRootFilesystem") is True, name
            assert ctx.get("allowPrivilegeEscalation") is False, name
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in c["securityContext"]["capabilities"], name
            resources = c["resources"]
            for kind in ("cpu", "memory"):
                assert kind in resources["requests"] and kind in resources["limits"], f"{name}: {kind} unbounded"
            image = c["image"]
            assert "@sha256:" in image or re.search(r":[\w][\w.-]*$", image.rsplit("/", 1)[-1]), f"{name}: {image}"
            assert not image.endswith(":latest"), f"{name}: {image}"


def test_one_release_runs_one_image_tag_everywhere(environment: Environment) -> None:
    tags = {
        c["image"].rsplit(":", 1)[-1]
        for w in (*environment.find("Deployment"), *environment.find("Job"))
        for c in containers(w)
    }
    assert len(tags) == 1 and "latest" not in tags, tags


# ---------------------------------------------------------------------------------------------- configuration and secrets


def test_configuration_keys_are_settings_the_services_read(
    environment: Environment, services: list[ServiceFacts]
) -> None:
    for service in services:
        deploy = deployment(environment, service)
        fields = {f.upper() for f in service.settings_class().model_fields}
        names = set(config_values(environment, deploy)) | set(secret_refs(deploy))
        unknown = {n for n in names if n not in fields and not n.startswith("OTEL_")}
        assert not unknown, f"{service.name} is given settings it does not have: {sorted(unknown)}"
        values = config_values(environment, deploy)
        assert values["KAFKA_CREATE_TOPICS"] == "false", "Strimzi owns the topics in Kubernetes"
        assert values["HTTP_PORT"] == str(service.spec.port)
        assert values["LOG_FORMAT"] == "json"


def test_no_secret_is_written_in_the_repository(environment: Environment) -> None:
    for obj in environment.all():
        assert obj["kind"] != "Secret", f"a literal Secret {obj['metadata']['name']} is committed"
    for cm in environment.find("ConfigMap"):
        for key, value in cm["data"].items():
            if key.endswith("_FILE") and value.startswith("/"):
                continue  # a path to a mounted Secret's file (test_kafka_credentials_are_files_from_the_right_secrets)
            assert not SECRET_NAME.search(key.lower()), f"{cm['metadata']['name']} holds {key}"
            assert not CREDENTIALS_IN_URL.search(value), f"{cm['metadata']['name']}: credentials in {key}"
    for workload in (*environment.find("Deployment"), *environment.find("Job")):
        for c in containers(workload):
            for var in c.get("env", []):
                if SECRET_NAME.search(var["name"].lower()):
                    assert "secretKeyRef" in var.get("valueFrom", {}), f"{var['name']} is not a Secret reference"


def test_every_credential_a_service_uses_comes_from_a_secret(
    environment: Environment, services: list[ServiceFacts]
) -> None:
    for service in services:
        refs = secret_refs(deployment(environment, service))
        for field_name, default in secret_fields(service).items():
            ref = refs.get(field_name.upper())
            assert ref, f"{service.name}: {field_name.upper()} is not wired to a Secret"
            # A credential with a built-in (development) default must never silently fall back to it.
            if default is not None:
                assert not ref.get("optional"), f"{service.name}: {field_name.upper()} must be required"


def test_only_services_that_sign_customer_links_hold_the_signing_key(
    environment: Environment, services: list[ServiceFacts]
) -> None:
    for service in services:
        holds = "SELF_SERVICE_SIGNING_KEY" in secret_refs(deployment(environment, service))
        assert holds == ("self_service_signing_key" in secret_fields(service)), service.name


# ---------------------------------------------------------------------------------------------- network policies


def test_namespace_denies_all_traffic_by_default(environment: Environment) -> None:
    deny = [
        p
        for p in environment.find("NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy"


# What a pod may reach, as (peer, protocol, port): a peer is ("ip", cidr, except...) or ("pods", namespace labels,
# pod labels); a rule without `to` or without `ports` shows up as ("any",) or port "any", so it can never hide.
Reach = tuple[tuple[Any, ...], str, Any]


def _frozen(labels: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((labels or {}).items()))


def reachable(objects: tuple[dict[str, Any], ...], labels: dict[str, str]) -> set[Reach]:
    out: set[Reach] = set()
    for rule in policies_for(objects, labels, "egress"):
        peers: list[tuple[Any, ...]] = []
        for peer in rule.get("to") or [("any",)]:
            if isinstance(peer, tuple):
                peers.append(peer)
            elif "ipBlock" in peer:
                peers.append(("ip", peer["ipBlock"]["cidr"], *sorted(peer["ipBlock"].get("except", []))))
            else:
                assert not peer.get("namespaceSelector", {}).get("matchExpressions"), peer
                namespace = (peer.get("namespaceSelector") or {}).get("matchLabels")
                if "namespaceSelector" not in peer:
                    namespace = {"kubernetes.io/metadata.name": "(own)"}
                peers.append(("pods", _frozen(namespace), _frozen((peer.get("podSelector") or {}).get("matchLabels"))))
        ports = [(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports") or []] or [("any", "any")]
        out.update((peer, protocol, port) for peer in peers for protocol, port in ports)
    return out


def may_connect(
    objects: tuple[dict[str, Any], ...], labels: dict[str, str], to: str | dict[str, Any], port: int
) -> bool:
    """Kubernetes' verdict for a TCP connection from a pod with `labels` (in the dunning namespace) to an address
    outside the cluster (`to` is an IP) or to a pod (`to` is {"namespace": ..., "labels": {...}})."""
    for (kind, *what), protocol, allowed_port in reachable(objects, labels):
        if protocol not in ("TCP", "any") or allowed_port not in (port, "any"):
            continue
        if kind == "any":
            return True
        if kind == "ip" and isinstance(to, str):
            address = ipaddress.ip_address(to)
            if address in ipaddress.ip_network(what[0]) and not any(
                address in ipaddress.ip_network(e) for e in what[1:]
            ):
                return True
        if kind == "pods" and isinstance(to, dict):
            namespace, pod = dict(what[0]), dict(what[1])
            if namespace.get("kubernetes.io/metadata.name") == "(own)":
                namespace = {"kubernetes.io/metadata.name": "dunning"}
            ns_labels = {"kubernetes.io/metadata.name": to["namespace"]}
            if selects({"matchLabels": namespace}, ns_labels) and selects({"matchLabels": pod}, to["labels"]):
                return True
    return False


def expected_egress(env: str, service: str) -> set[Reach]:
    """Everything a service may reach in `env`, peer by peer: DNS, PostgreSQL, the Kafka brokers, and its own
    outside world (ledger-sync: the ERPs and, for the personal-data export, the other services; notifier: its
    providers; insights: the other services, whose export APIs its backfill reads; workspace: the five services'
    APIs and the OIDC provider). Nobody reaches the workspace: it holds staff sessions, no customer's data."""
    dns = ("pods", _frozen({"kubernetes.io/metadata.name": "kube-system"}), _frozen({"k8s-app": "kube-dns"}))
    brokers = (
        "pods",
        _frozen({"kubernetes.io/metadata.name": "kafka"}),
        _frozen({"strimzi.io/cluster": "dunning-kafka", "strimzi.io/broker-role": "true"}),
    )
    postgres = (
        ("pods", _frozen({"kubernetes.io/metadata.name": "postgres"}), ()) if env == "dev" else ("ip", "10.20.0.0/24")
    )
    internet = ("ip", "0.0.0.0/0", *sorted(PRIVATE_RANGES))
    out: set[Reach] = {(dns, p, n) for p, n in DNS_PORTS} | {(postgres, "TCP", 5432)}
    out |= {(brokers, p, n) for p, n in KAFKA_PORTS[env]}
    if service == "ledger-sync":
        out |= {(internet, p, n) for p, n in ERP_PORTS}
        for peer in SERVICES:
            # insights serves no personal-data piece, the workspace holds none
            if peer.name != service and peer.name not in READ_MODELS | STAFF_APPS:
                labels = {"app.kubernetes.io/name": peer.name, "app.kubernetes.io/component": "service"}
                out.add(
                    (("pods", _frozen({"kubernetes.io/metadata.name": "(own)"}), _frozen(labels)), "TCP", peer.port)
                )
    if service == "notifier":
        out |= {(internet, p, n) for p, n in PROVIDER_PORTS}
    if service == "insights":  # the backfill reads the others' export APIs; nothing outside the cluster
        for peer in SERVICES:
            if peer.name != service and peer.name not in STAFF_APPS:
                labels = {"app.kubernetes.io/name": peer.name, "app.kubernetes.io/component": "service"}
                out.add(
                    (("pods", _frozen({"kubernetes.io/metadata.name": "(own)"}), _frozen(labels)), "TCP", peer.port)
                )
    if service in STAFF_APPS:  # every page reads or acts through the five services; sign-in needs the provider
        out |= {(internet, p, n) for p, n in IDP_PORTS}
        for peer in SERVICES:
            if peer.name != service:
                labels = {"app.kubernetes.io/name": peer.name, "app.kubernetes.io/component": "service"}
                out.add(
                    (("pods", _frozen({"kubernetes.io/metadata.name": "(own)"}), _frozen(labels)), "TCP", peer.port)
                )
    return out


def test_each_service_reaches_exactly_what_it_needs_and_nothing_else(
    environment: Environment, services: list[ServiceFacts]
) -> None:
    for service in services:
        got = reachable(environment.services, pod_labels(deployment(environment, service)))
        expected = expected_egress(environment.name, service.name)
        assert got == expected, (
            f"{environment.name} {service.name}: also open {sorted(map(str, got - expected))}, "
            f"missing {sorted(map(str, expected - got))}"
        )


PUBLIC_IP = "52.94.236.248"  # an address on the internet (an ERP's or a provider's API)
BROKER = {"namespace": "kafka", "labels": {"strimzi.io/cluster": "dunning-kafka", "strimzi.io/broker-role": "true"}}
ENTITY_OPERATOR = {"namespace": "kafka", "labels": {"strimzi.io/cluster": "dunning-kafka", "strimzi.io/kind": "Kafka"}}


def service_pod(name: str) -> dict[str, Any]:
    return {
        "namespace": "dunning",
        "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "service"},
    }


@pytest.mark.parametrize(
    ("source", "to", "port", "allowed"),
    [
        ("ledger-sync", PUBLIC_IP, 443, True),  # an ERP
        ("ledger-sync", PUBLIC_IP, 80, False),
        ("ledger-sync", PUBLIC_IP, 587, False),  # mail is the notifier's
        ("ledger-sync", "10.1.2.3", 443, False),  # the cluster or the VPC
        ("ledger-sync", "169.254.169.254", 443, False),  # the cloud's metadata service
        ("ledger-sync", service_pod("notifier"), 8003, True),  # the personal-data export
        ("ledger-sync", service_pod("notifier"), 8001, False),
        ("notifier", PUBLIC_IP, 443, True),
        ("notifier", PUBLIC_IP, 587, True),
        ("notifier", PUBLIC_IP, 465, True),
        ("notifier", PUBLIC_IP, 25, False),
        ("notifier", "192.168.1.10", 443, False),
        ("notifier", service_pod("ledger-sync"), 8001, False),
        ("policy-engine", PUBLIC_IP, 443, False),
        ("policy-engine", service_pod("notifier"), 8003, False),
        ("promise-tracker", PUBLIC_IP, 443, False),
        ("policy-engine", BROKER, 9093, True),
        ("policy-engine", BROKER, 9092, False),  # prod speaks TLS only
        ("notifier", ENTITY_OPERATOR, 9093, False),  # only the brokers
        ("promise-tracker", "10.20.0.7", 5432, True),  # the configured PostgreSQL
        ("promise-tracker", "10.20.1.7", 5432, False),
        ("promise-tracker", "10.20.0.7", 443, False),
        ("insights", service_pod("ledger-sync"), 8001, True),  # the invoice and customer exports
        ("insights", service_pod("promise-tracker"), 8004, True),  # an event export
        ("insights", service_pod("ledger-sync"), 8004, False),
        ("insights", PUBLIC_IP, 443, False),  # a read model talks to nobody outside
        ("insights", BROKER, 9093, True),
        ("insights", "10.20.0.7", 5432, True),
        ("policy-engine", service_pod("insights"), 8005, False),  # nothing depends on the read model
        ("workspace", service_pod("insights"), 8005, True),  # the dashboard's figures
        ("workspace", service_pod("policy-engine"), 8002, True),  # a case's timeline, pause, block
        ("workspace", service_pod("ledger-sync"), 8002, False),
        ("workspace", PUBLIC_IP, 443, True),  # the OIDC provider
        ("workspace", PUBLIC_IP, 80, False),
        ("workspace", PUBLIC_IP, 587, False),  # it sends no mail
        ("workspace", "10.1.2.3", 443, False),  # the cluster or the VPC
        ("workspace", "169.254.169.254", 80, False),  # the cloud's metadata service
        ("workspace", BROKER, 9093, True),  # its producer connection (readiness); its KafkaUser has no ACL
        ("workspace", "10.20.0.7", 5432, True),  # its sessions
        ("ledger-sync", service_pod("workspace"), 8006, False),  # nothing depends on the staff application
        ("insights", service_pod("workspace"), 8006, False),
    ],
)
def test_prod_egress_verdicts(source: str, to: str | dict[str, Any], port: int, allowed: bool) -> None:
    prod = render(K8S / "overlays/prod")
    labels = next(pod_labels(o) for o in prod if o["kind"] == "Deployment" and o["metadata"]["name"] == source)
    assert may_connect(prod, labels, to, port) is allowed


def test_internet_egress_never_opens_private_networks(environment: Environment) -> None:
    for policy in environment.find("NetworkPolicy"):
        for rule in policy["spec"].get("egress") or []:
            for peer in rule.get("to") or []:
                block = peer.get("ipBlock")
                if block and ipaddress.ip_network(block["cidr"]).prefixlen == 0:
                    assert set(block.get("except", [])) >= PRIVATE_RANGES, policy["metadata"]["name"]
                    assert policy["metadata"]["labels"]["dunning.io/egress"] == "internet", "overlays patch by it"


def test_ingress_stays_open_on_the_service_port_for_the_api_and_prometheus(
    environment: Environment, services: list[ServiceFacts]
) -> None:
    for service in services:
        rules = policies_for(environment.services, pod_labels(deployment(environment, service)), "ingress")
        assert rules == [{"ports": [{"protocol": "TCP", "port": service.spec.port}]}], service.name


def test_postgres_egress_points_at_a_configured_database(environment: Environment) -> None:
    policy = environment.one("NetworkPolicy", "allow-postgres")
    for peer in policy["spec"]["egress"][0]["to"]:
        assert peer.get("ipBlock", {}).get("cidr") != "192.0.2.0/24", "the base placeholder was not replaced"


def test_migration_jobs_reach_only_postgres_and_dns(environment: Environment) -> None:
    # The Job's traffic is governed by the policies the services overlay installs in the same namespace.
    for job in environment.find("Job"):
        labels = pod_labels(job)
        assert ports_of(policies_for(environment.services, labels, "egress")) == DNS_PORTS | POSTGRES_PORTS
        assert policies_for(environment.services, labels, "ingress") == []


# ---------------------------------------------------------------------------------------------- migrations


def test_every_service_has_a_migration_job_for_this_release(
    environment: Environment, services: list[ServiceFacts]
) -> None:
    jobs = {pod_labels(j)["app.kubernetes.io/name"]: j for j in environment.find("Job")}
    assert set(jobs) == {s.name for s in services}
    for service in services:
        job, deploy = jobs[service.name], deployment(environment, service)
        container = pod_spec(job)["containers"][0]
        image = pod_spec(deploy)["containers"][0]["image"]
        assert container["image"] == image, "migrations must run the release being rolled out"
        assert container["command"] == ["python", "-m", "dunning_kit.migrate", service.name]
        tag = image.rsplit(":", 1)[-1].replace(".", "-")
        assert job["metadata"]["name"] == f"{service.name}-migrate-{tag}", "a release needs Jobs of its own name"
        assert job["metadata"]["namespace"] == deploy["metadata"]["namespace"]
        assert job["spec"]["parallelism"] == 1 and job["spec"]["backoffLimit"] >= 1
        assert pod_spec(job)["restartPolicy"] == "Never"
        assert secret_refs(job)["DATABASE_URL"] == secret_refs(deploy)["DATABASE_URL"]
        account = environment.one("ServiceAccount", pod_spec(job)["serviceAccountName"])
        assert account["automountServiceAccountToken"] is False


def test_the_migration_command_exists() -> None:
    import importlib.util

    assert importlib.util.find_spec("dunning_kit.migrate"), "python -m dunning_kit.migrate is what the Jobs run"


# ---------------------------------------------------------------------------------------------- Strimzi topics


def test_every_topic_and_dead_letter_topic_is_declared(environment: Environment, expected_topics: set[str]) -> None:
    declared = [t["spec"]["topicName"] for t in environment.find("KafkaTopic")]
    assert len(declared) == len(set(declared)), "a topic is declared twice"
    assert set(declared) == expected_topics


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_kafka_topics_are_well_formed_strimzi_resources(env: str) -> None:
    # kubernetes-validate has no schema for Strimzi's CRDs: these are the fields the Topic Operator reads.
    for topic in render(K8S / "overlays" / env / "topics"):
        name = topic["metadata"]["name"]
        assert topic["apiVersion"] == STRIMZI and topic["kind"] == "KafkaTopic", name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", name), f"{name} is not a valid object name"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "dunning-kafka", name
        spec = topic["spec"]
        assert set(spec) <= {"topicName", "partitions", "replicas", "config"}, f"{name}: unknown {set(spec)}"
        assert re.fullmatch(r"[a-zA-Z0-9._-]{1,249}", spec["topicName"]), name
        assert isinstance(spec["partitions"], int) and spec["partitions"] >= 1, name
        assert isinstance(spec["replicas"], int) and spec["replicas"] >= 1, name
        config = spec["config"]
        assert config["cleanup.policy"] == "delete", name
        assert isinstance(config["retention.ms"], int) and config["retention.ms"] >= 24 * 3600 * 1000, name
        assert 1 <= config["min.insync.replicas"] <= spec["replicas"], name
        if env == "prod":
            assert spec["replicas"] >= 3 and config["min.insync.replicas"] >= 2, f"{name}: not durable in prod"


def test_dead_letter_topics_keep_the_order_events_failed_in(environment: Environment) -> None:
    for topic in environment.find("KafkaTopic"):
        if topic["spec"]["topicName"].startswith("dunning.dlq."):
            assert topic["spec"]["partitions"] == 1, "one partition: a replay re-applies dead letters in order"


# ---------------------------------------------------------------------------------------------- monitoring


def exposed_metrics() -> set[str]:
    """Metric names the code registers with prometheus_client (what /metrics can ever show)."""
    source = "\n".join(p.read_text() for p in [*REPO.glob("libs/*/src/**/*.py"), *REPO.glob("services/*/src/**/*.py")])
    return set(re.findall(r"(?:Counter|Gauge|Histogram|Summary)\(\s*\"((?:dunning|notifier)_[a-z0-9_]+)\"", source))


def test_alerts_only_use_metrics_the_services_expose() -> None:
    objects = render(K8S / "overlays/prod/monitoring")
    rules = [r for o in objects if o["kind"] == "PrometheusRule" for g in o["spec"]["groups"] for r in g["rules"]]
    assert rules
    exposed = exposed_metrics()
    assert {"dunning_consumer_lag", "dunning_outbox_oldest_age_seconds"} <= exposed
    for rule in rules:
        used = {
            re.sub(r"_(bucket|sum|count)$", "", m)
            for m in re.findall(r"\b(?:dunning|notifier)_[a-z0-9_]+", rule["expr"])
        }
        used = {m for m in used if m in exposed or m + "_total" not in exposed}
        assert used or rule["expr"].lstrip().startswith("sum by (namespace, app_kubernetes_io_name) (up{"), rule[
            "alert"
        ]
        assert used <= exposed, f"{rule['alert']} uses metrics nothing exposes: {used - exposed}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


def test_alert_runbook_links_point_at_readme_sections() -> None:
    readme = (REPO / "deploy" / "README.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    objects = render(K8S / "overlays/prod/monitoring")
    for o in objects:
        for g in o.get("spec", {}).get("groups", []):
            for r in g["rules"]:
                link = r["annotations"].get("runbook")
                if link:
                    assert link.split("#", 1)[1] in anchors, f"{r['alert']}: {link} has no section"


def test_the_service_down_alert_watches_every_service() -> None:
    [rule] = [
        r
        for o in render(K8S / "overlays/prod/monitoring")
        if o["kind"] == "PrometheusRule"
        for g in o["spec"]["groups"]
        for r in g["rules"]
        if r["alert"] == "DunningServiceDown"
    ]
    [names] = re.findall(r'app_kubernetes_io_name=~"([^"]+)"', rule["expr"])
    assert sorted(names.split("|")) == sorted(s.name for s in SERVICES), "a service whose pods all died would be silent"


def test_pod_monitor_scrapes_every_service(services: list[ServiceFacts]) -> None:
    monitor = next(o for o in render(K8S / "overlays/prod/monitoring") if o["kind"] == "PodMonitor")
    prod = render(K8S / "overlays/prod")
    for service in services:
        deploy = next(o for o in prod if o["kind"] == "Deployment" and o["metadata"]["name"] == service.name)
        assert selects(monitor["spec"]["selector"], pod_labels(deploy))
        assert (
            monitor["spec"]["podMetricsEndpoints"][0]["port"] == pod_spec(deploy)["containers"][0]["ports"][0]["name"]
        )


# ---------------------------------------------------------------------------------------------- Strimzi users and ACLs

KAFKA_USERS = K8S / "base/kafka-users/users.yaml"
AUTH_COMPONENTS = {"scram-sha-512": "kafka-auth-scram", "tls": "kafka-auth-tls"}
MOUNTED_CREDENTIALS = "/etc/dunning/kafka"


@cache
def render_prod_with(component: str) -> tuple[dict[str, Any], ...]:
    """The prod services overlay with another kafka-auth component, as an operator switching to it would have it."""
    prod = K8S / "overlays/prod"
    text = (prod / "kustomization.yaml").read_text()
    assert "../../components/kafka-auth-scram" in text, "prod's default authentication moved: update this test"
    text = text.replace("kafka-auth-scram", component)
    # A sibling of prod (kustomize takes no absolute bases): the same relative paths, prod's own files by path.
    text = re.sub(r"^(\s+- )shared$", r"\1../prod/shared", text, flags=re.M)
    text = text.replace("path: hpa-consumer-lag.yaml", "path: ../prod/hpa-consumer-lag.yaml")
    with tempfile.TemporaryDirectory(prefix=".render-", dir=K8S / "overlays") as tmp:
        (Path(tmp) / "kustomization.yaml").write_text(text)
        return render(Path(tmp), "--load-restrictor=LoadRestrictionsNone")


def acl_table(user: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        assert resource.get("patternType", "literal") == "literal" and "*" not in resource["name"], acl
        assert set(acl) <= {"resource", "operations"} and acl.get("type", "allow") == "allow", acl
        key = (resource["type"], resource["name"])
        assert key not in table, f"{key} listed twice"
        table[key] = set(acl["operations"])
    return table


def expected_acls(service: ServiceFacts) -> dict[tuple[str, str], set[str]]:
    """From the code alone: read what its groups consume, write what it produces and its groups' dead letters, read
    its groups; plus what the dead-letter replay run in its pod needs (read its dead letters, write their sources)."""
    table: dict[tuple[str, str], set[str]] = {}
    for consumer in service.consumers:
        table.setdefault(("group", consumer.group), set()).add("Read")
        dlq = topic_names.dead_letter_topic(consumer.group)
        table.setdefault(("topic", dlq), set()).update({"Write", "Describe", "Read"})
        for topic in consumer.topics:
            table.setdefault(("topic", topic), set()).update({"Read", "Describe", "Write"})
    for topic in service.produces:
        table.setdefault(("topic", topic), set()).update({"Write", "Describe"})
    return table


def test_every_service_produces_the_topics_of_the_events_it_owns(services: list[ServiceFacts]) -> None:
    # The relay refuses any topic outside `produces`, so an empty or wrong list would stop the service's events.
    owners = {s.name: set(s.produces) for s in services if s.name not in READ_MODELS | STAFF_APPS}
    assert all(owners.values()), owners
    assert all(not s.produces for s in services if s.name in READ_MODELS), "a read model publishes nothing"
    staff_apps = [s for s in services if s.name in STAFF_APPS]
    assert staff_apps and all(not s.produces and not s.consumers for s in staff_apps), "it acts through the APIs"
    produced = [t for topics in owners.values() for t in topics]
    assert sorted(produced) == sorted(topic_names.ALL_TOPICS), "each event topic has exactly one producer"


def test_each_service_has_one_kafka_user_with_exactly_the_acls_its_code_uses(services: list[ServiceFacts]) -> None:
    for objects in (render(K8S / "overlays/prod"), render_prod_with("kafka-auth-tls")):
        users = {u["metadata"]["name"]: u for u in objects if u["kind"] == "KafkaUser"}
        assert set(users) == {kafka_user_name(s.name) for s in services}
        for service in services:
            user = users[kafka_user_name(service.name)]
            assert user["apiVersion"] == STRIMZI
            assert user["metadata"]["labels"]["strimzi.io/cluster"] == "dunning-kafka"
            assert user["spec"]["authorization"]["type"] == "simple"
            assert acl_table(user) == expected_acls(service), service.name


def test_kafka_acls_allow_no_topic_creation_and_no_topic_strimzi_does_not_own(services: list[ServiceFacts]) -> None:
    declared = {t["spec"]["topicName"] for t in render(K8S / "overlays/prod/topics")}
    forbidden = {"All", "Create", "Delete", "Alter", "AlterConfigs", "ClusterAction", "IdempotentWrite"}
    for user in (o for o in render(K8S / "overlays/prod") if o["kind"] == "KafkaUser"):
        for (kind, name), operations in acl_table(user).items():
            assert kind in ("topic", "group"), f"{user['metadata']['name']}: {kind} {name}"
            assert not operations & forbidden, f"{user['metadata']['name']}: {operations & forbidden} on {name}"
            if kind == "topic":
                assert name in declared, f"{user['metadata']['name']} may use {name}, which no KafkaTopic declares"


def test_the_kafka_users_file_is_what_the_code_generates() -> None:
    generated = render_kafka_users([kafka_access(spec) for spec in SERVICES])
    assert KAFKA_USERS.read_text() == generated, "run: python -m dunning_kit.kafka_access --write " + str(
        KAFKA_USERS.relative_to(REPO)
    )


def test_dev_runs_without_kafka_users_on_the_plain_listener() -> None:
    dev = render(K8S / "overlays/dev")
    assert not [o for o in dev if o["kind"] == "KafkaUser"]
    common = next(o for o in dev if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("dunning-common"))
    assert common["data"]["KAFKA_BOOTSTRAP_SERVERS"].endswith(":9092")
    assert "KAFKA_SECURITY_PROTOCOL" not in common["data"]


def mounted_file(workload: dict[str, Any], path: str) -> tuple[str, ...]:
    """Where a file the container reads comes from: ("secret", name, key) or ("annotation", value)."""
    spec = pod_spec(workload)
    mount = next(m for m in spec["containers"][0].get("volumeMounts", []) if path.startswith(m["mountPath"] + "/"))
    assert mount.get("readOnly") is True
    relative = path[len(mount["mountPath"]) + 1 :]
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    for source in volume["projected"]["sources"]:
        for item in (source.get("secret") or {}).get("items", []):
            if item["path"] == relative:
                return ("secret", source["secret"]["name"], item["key"])
        for item in (source.get("downwardAPI") or {}).get("items", []):
            if item["path"] == relative:
                annotation = re.fullmatch(r"metadata\.annotations\['(.+)'\]", item["fieldRef"]["fieldPath"])
                assert annotation, item
                return ("annotation", workload["spec"]["template"]["metadata"]["annotations"][annotation[1]])
    raise AssertionError(f"{path} is not mounted")


@pytest.mark.parametrize("authentication", sorted(AUTH_COMPONENTS))
def test_prod_connects_over_the_tls_listener_with_files_from_the_right_secrets(
    authentication: str, services: list[ServiceFacts]
) -> None:
    objects = (
        render(K8S / "overlays/prod")
        if authentication == "scram-sha-512"
        else render_prod_with(AUTH_COMPONENTS[authentication])
    )
    env = Environment("prod", objects, (), ())
    for service in services:
        user_name = kafka_user_name(service.name)
        assert env.one("KafkaUser", user_name)["spec"]["authentication"] == {"type": authentication}
        deploy = deployment(env, service)
        values = config_values(env, deploy)
        assert values["KAFKA_BOOTSTRAP_SERVERS"] == "dunning-kafka-kafka-bootstrap.kafka.svc:9093"
        assert values.get("KAFKA_SSL_CHECK_HOSTNAME", "true") == "true", "the brokers' certificates name the service"
        assert mounted_file(deploy, values["KAFKA_SSL_CA_FILE"]) == (
            "secret",
            "dunning-kafka-cluster-ca-cert",
            "ca.crt",
        )
        files = {k for k in values if k.endswith("_FILE")}
        if authentication == "scram-sha-512":
            assert (values["KAFKA_SECURITY_PROTOCOL"], values["KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512")
            assert mounted_file(deploy, values["KAFKA_SASL_PASSWORD_FILE"]) == ("secret", user_name, "password")
            assert mounted_file(deploy, values["KAFKA_SASL_USERNAME_FILE"]) == ("annotation", user_name)
            assert files == {"KAFKA_SSL_CA_FILE", "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SASL_USERNAME_FILE"}
        else:
            assert values["KAFKA_SECURITY_PROTOCOL"] == "SSL" and "KAFKA_SASL_MECHANISM" not in values
            assert mounted_file(deploy, values["KAFKA_SSL_CERT_FILE"]) == ("secret", user_name, "user.crt")
            assert mounted_file(deploy, values["KAFKA_SSL_KEY_FILE"]) == ("secret", user_name, "user.key")
            assert files == {"KAFKA_SSL_CA_FILE", "KAFKA_SSL_CERT_FILE", "KAFKA_SSL_KEY_FILE"}
        volume = next(v for v in pod_spec(deploy)["volumes"] if v["name"] == "kafka-credentials")
        assert volume["projected"]["defaultMode"] == 0o440, "credentials readable by the service's user only"


def test_kafka_credentials_are_files_from_the_right_secrets() -> None:
    # Every *_FILE setting a ConfigMap holds is a path under the credentials mount (never a value).
    prod = render(K8S / "overlays/prod")
    for cm in (o for o in prod if o["kind"] == "ConfigMap"):
        for key, value in cm["data"].items():
            if key.endswith("_FILE"):
                assert value.startswith(MOUNTED_CREDENTIALS + "/"), f"{key}={value}"
