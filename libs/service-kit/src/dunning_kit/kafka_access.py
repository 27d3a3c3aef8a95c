"""What each service may do on Kafka, read from its own wiring: the ACLs of its Strimzi KafkaUser.

    python -m dunning_kit.kafka_access                 # print the KafkaUser manifests
    python -m dunning_kit.kafka_access --write FILE    # (re)write them (deploy/k8s/base/kafka-users/users.yaml)

The wiring is the truth, not a list kept beside it: each service's composition root is built (never started) and
read for the consumer groups it adds (`add_consumer`: group and topics) and the topics it declares it produces
(`produces`, which its outbox relay enforces: a row for any other topic is set aside, never sent). From those:

- Read + Describe on every topic one of its groups consumes, and Read on each of its groups. The priority lane
  reads those partitions without a group, and the notifier's ledger watermark reads its ledger group's committed
  offsets: both are covered by the same entries.
- Write + Describe on every topic it produces, and on `dunning.dlq.<group>` of each of its groups (the consumer
  sends poison events there).
- What the dead-letter replay (`python -m dunning_kit.dlq`, run in the service's own pod) needs on top: Read on
  those dead-letter topics, and Write on the topics its groups consume (a dead letter goes back to its source).

Nothing else: no Create (Strimzi's Topic Operator owns every topic, the services run with KAFKA_CREATE_TOPICS=false),
no wildcard or prefix, no cluster operation (no idempotent producer, no transactions: see dunning_events.kafka).

A service that consumes and produces nothing (the workspace: it acts through the other services' APIs) still gets a
KafkaUser, with no ACL at all: the runtime keeps a producer connection and readiness checks the broker, which needs
authentication and metadata only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dunning_events.topics import dead_letter_topic
from dunning_kit.clock import SystemClock
from dunning_kit.services import SERVICES, ServiceSpec

STRIMZI_API = "kafka.strimzi.io/v1beta2"
CLUSTER = "dunning-kafka"
# Settings that let a composition root be built without reaching anything (the engine and the clients connect
# lazily, and nothing is started).
_OFFLINE = {"database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none", "kafka_bootstrap_servers": "127.0.0.1:1"}


def kafka_user_name(service: str) -> str:
    """The KafkaUser (and so the SCRAM user name, the TLS certificate's CN and its Secret) of a service."""
    return f"dunning-{service}"


@dataclass(frozen=True)
class KafkaAccess:
    """One service's use of Kafka, as its wiring declares it."""

    service: str
    groups: dict[str, tuple[str, ...]]  # consumer group -> the topics it subscribes to
    produces: tuple[str, ...]

    @property
    def consumes(self) -> frozenset[str]:
        return frozenset(t for topics in self.groups.values() for t in topics)

    @property
    def dead_letter_topics(self) -> frozenset[str]:
        return frozenset(dead_letter_topic(g) for g in self.groups)

    def operations(self) -> dict[tuple[str, str], frozenset[str]]:
        """(resource type, name) -> the operations allowed on it; exactly what the module's docstring lists."""
        allowed: dict[tuple[str, str], set[str]] = {}

        def allow(kind: str, name: str, *operations: str) -> None:
            allowed.setdefault((kind, name), set()).update(operations)

        for topic in self.consumes:
            allow("topic", topic, "Read", "Describe")
            allow("topic", topic, "Write")  # the dead-letter replay republishes to the source topic
        for group in self.groups:
            allow("group", group, "Read")
        for topic in self.produces:
            allow("topic", topic, "Write", "Describe")
        for topic in self.dead_letter_topics:
            allow("topic", topic, "Write", "Describe")
            allow("topic", topic, "Read")  # the dead-letter replay reads them (and writes its markers)
        return {key: frozenset(ops) for key, ops in allowed.items()}

    def acls(self) -> list[dict[str, Any]]:
        """Strimzi's `simple` authorization entries: one per resource, literal names only."""
        return [
            {
                "resource": {"type": kind, "name": name, "patternType": "literal"},
                "operations": sorted(ops),
            }
            for (kind, name), ops in sorted(self.operations().items())
        ]

    def kafka_user(self) -> dict[str, Any]:
        # No `authentication` here: the overlay's kafka-auth-scram or kafka-auth-tls component chooses it.
        return {
            "apiVersion": STRIMZI_API,
            "kind": "KafkaUser",
            "metadata": {
                "name": kafka_user_name(self.service),
                "labels": {"strimzi.io/cluster": CLUSTER, "app.kubernetes.io/name": self.service},
            },
            "spec": {"authorization": {"type": "simple", "acls": self.acls()}},
        }


def kafka_access(spec: ServiceSpec) -> KafkaAccess:
    """Build the service's composition root offline and read its consumer groups and produced topics."""
    module = spec.bootstrap()
    fields = module.Settings.model_fields
    offline = {**_OFFLINE, **({"dev_mode": True} if "dev_mode" in fields else {})}

    async def build() -> KafkaAccess:
        runtime = module.build_runtime(module.Settings(**offline), SystemClock())
        try:
            groups = {c.group: tuple(c.topics) for c in runtime.consumers}
            return KafkaAccess(spec.name, groups, tuple(runtime.produces))
        finally:
            await runtime.producer.stop()  # never started: this only marks it closed
            await runtime.engine.dispose()

    return asyncio.run(build())


def render(accesses: Sequence[KafkaAccess]) -> str:
    import yaml  # a deploy-time tool: the services themselves never need PyYAML

    header = (
        "# Generated by `python -m dunning_kit.kafka_access --write` from the services' wiring: do not edit by hand\n"
        "# (tests/deploy/test_manifests.py fails when it drifts). One KafkaUser per service, its ACLs exactly\n"
        "# what the service consumes, produces and dead-letters; deploy/README.md explains each entry.\n"
    )
    body: str = yaml.safe_dump_all([a.kafka_user() for a in accesses], sort_keys=False, explicit_start=True)
    return header + body


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dunning_kit.kafka_access", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, metavar="FILE", help="write the manifests there instead of stdout")
    args = parser.parse_args(argv)
    text = render([kafka_access(spec) for spec in SERVICES])
    if args.write:
        args.write.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
