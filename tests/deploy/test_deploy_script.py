"""deploy/k8s/deploy.sh rolls out in order (topics, migrations, Kafka credentials, services) and stops when a migration
fails.

A stand-in `kubectl` on PATH records every call; no cluster is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "k8s" / "deploy.sh"

FAKE_KUBECTL = r"""#!/usr/bin/env bash
echo "$*" >> "$KUBECTL_LOG"
case "$*" in
  *"apply -k"*"/migrations -o name"*)
    for s in ledger-sync policy-engine notifier promise-tracker; do echo "job.batch/$s-migrate-0-1-0"; done
    echo "serviceaccount/dunning-migrator-0-1-0" ;;
  *"apply -k"*"-o name"*)
    for s in ledger-sync policy-engine notifier promise-tracker; do echo "deployment.apps/$s"; done
    case "$*" in *overlays/prod*)
      for s in ledger-sync policy-engine notifier promise-tracker; do echo "kafkauser.kafka.strimzi.io/dunning-$s"; done ;;
    esac ;;
  *"get secret dunning-kafka-cluster-ca-cert"*)
    printf '%s' "${CLUSTER_CA-$(printf 'CLUSTER CA PEM' | base64)}" ;;
  *"--for=condition=complete"*)
    exit "${FAIL_MIGRATIONS:-0}" ;;
esac
exit 0
"""


def run_deploy(tmp_path: Path, env: str, **extra: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL)
    fake.chmod(0o755)
    log = tmp_path / "kubectl.log"
    log.write_text("")
    environ = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KUBECTL_LOG": str(log), **extra}
    done = subprocess.run(["bash", str(SCRIPT), env], capture_output=True, text=True, env=environ, timeout=30)
    return done, log.read_text().splitlines()


def position(calls: list[str], *fragments: str) -> int:
    return next(n for n, call in enumerate(calls) if all(f in call for f in fragments))


@pytest.fixture(autouse=True)
def _needs_bash() -> None:
    assert shutil.which("bash")


def test_topics_then_migrations_then_services(tmp_path: Path) -> None:
    done, calls = run_deploy(tmp_path, "prod")
    assert done.returncode == 0, done.stderr
    topics = position(calls, "apply -k", "overlays/prod/topics")
    topics_ready = position(calls, "wait kafkatopic", "--namespace kafka", "condition=Ready")
    migrations = position(calls, "apply -k", "overlays/prod/migrations")
    migrated = position(calls, "--for=condition=complete", "job.batch/notifier-migrate-0-1-0", "--namespace dunning")
    services = position(calls, "apply -k", "overlays/prod -o name")
    assert topics < topics_ready < migrations < migrated < services
    rollouts = [c for c in calls if c.startswith("rollout status")]
    assert len(rollouts) == 4 and all("--namespace dunning" in c for c in rollouts)


def test_a_failed_migration_stops_the_rollout(tmp_path: Path) -> None:
    done, calls = run_deploy(tmp_path, "dev", FAIL_MIGRATIONS="1")
    assert done.returncode == 1
    assert "services were not rolled out" in done.stderr
    assert any(c.startswith("logs --namespace dunning-dev job.batch/ledger-sync-migrate") for c in calls)
    assert not any("apply -k" in c and c.rstrip().endswith("overlays/dev -o name") for c in calls)


def test_an_unknown_environment_is_refused(tmp_path: Path) -> None:
    done, calls = run_deploy(tmp_path, "staging")
    assert done.returncode == 2 and calls == []


def test_prod_copies_the_cluster_ca_and_waits_for_the_kafka_users_before_the_rollout(tmp_path: Path) -> None:
    done, calls = run_deploy(tmp_path, "prod")
    assert done.returncode == 0, done.stderr
    read_ca = position(calls, "get secret dunning-kafka-cluster-ca-cert", "--namespace kafka")
    copy_ca = position(calls, "create secret generic dunning-kafka-cluster-ca-cert", "--namespace dunning")
    assert "--from-literal=ca.crt=CLUSTER CA PEM" in calls[copy_ca]
    services = position(calls, "apply -k", "overlays/prod -o name")
    users = position(calls, "wait kafkauser", "--namespace dunning", "condition=Ready")
    first_rollout = position(calls, "rollout status")
    assert read_ca < copy_ca < services < users < first_rollout


def test_prod_stops_when_the_cluster_ca_cannot_be_read(tmp_path: Path) -> None:
    done, calls = run_deploy(tmp_path, "prod", CLUSTER_CA="")
    assert done.returncode == 1 and "dunning-kafka-cluster-ca-cert" in done.stderr
    assert not any("apply -k" in c and c.rstrip().endswith("overlays/prod -o name") for c in calls)


def test_dev_needs_no_kafka_credentials(tmp_path: Path) -> None:
    done, calls = run_deploy(tmp_path, "dev")
    assert done.returncode == 0, done.stderr
    assert not any("cluster-ca-cert" in c or "kafkauser" in c for c in calls)
