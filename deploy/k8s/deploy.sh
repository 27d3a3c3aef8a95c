#!/usr/bin/env bash
# Roll out one environment in the only safe order: topics, then migrations, then the services.
#   deploy/k8s/deploy.sh dev|prod
# Prerequisites (deploy/README.md): the Strimzi cluster `dunning-kafka`, the namespace and the Secrets.
set -euo pipefail

env="${1:?usage: deploy.sh dev|prod}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
overlay="$here/overlays/$env"
[[ -f "$overlay/kustomization.yaml" ]] || { echo "no overlay $overlay" >&2; exit 2; }
namespace="$(awk '/^namespace:/ {print $2; exit}' "$overlay/kustomization.yaml")"
kafka_namespace="$(awk '/^namespace:/ {print $2; exit}' "$overlay/topics/kustomization.yaml")"

echo "1/3 topics (namespace $kafka_namespace)"
kubectl apply -k "$overlay/topics"
kubectl wait kafkatopic --namespace "$kafka_namespace" --selector app.kubernetes.io/part-of=dunning \
  --for=condition=Ready --timeout=5m

echo "2/3 migrations (namespace $namespace)"
mapfile -t jobs < <(kubectl apply -k "$overlay/migrations" -o name | grep '^job')
if ! kubectl wait --namespace "$namespace" --for=condition=complete --timeout=15m "${jobs[@]}"; then
  for job in "${jobs[@]}"; do kubectl logs --namespace "$namespace" "$job" --tail=50 || true; done
  echo "migrations did not complete: the services were not rolled out" >&2
  exit 1
fi

echo "3/3 services (namespace $namespace)"
if grep -q 'base/kafka-users' "$overlay/kustomization.yaml"; then
  # The pods check the brokers against the cluster CA, which Strimzi keeps in the Kafka namespace: copy the public
  # certificate next to them (again on every run, so a renewed CA reaches the pods with the next release).
  ca="$(kubectl get secret dunning-kafka-cluster-ca-cert --namespace "$kafka_namespace" -o 'jsonpath={.data.ca\.crt}')"
  [[ -n "$ca" ]] || { echo "no ca.crt in secret dunning-kafka-cluster-ca-cert (namespace $kafka_namespace)" >&2; exit 1; }
  kubectl create secret generic dunning-kafka-cluster-ca-cert --namespace "$namespace" \
    --from-literal=ca.crt="$(base64 -d <<<"$ca")" --dry-run=client -o yaml | kubectl apply -f -
fi
mapfile -t applied < <(kubectl apply -k "$overlay" -o name)
mapfile -t deployments < <(printf '%s\n' "${applied[@]}" | grep '^deployment')
if printf '%s\n' "${applied[@]}" | grep -q '^kafkauser'; then
  # The User Operator writes each service's credentials Secret; the pods start once theirs exists.
  kubectl wait kafkauser --namespace "$namespace" --selector app.kubernetes.io/part-of=dunning \
    --for=condition=Ready --timeout=5m
fi
for deployment in "${deployments[@]}"; do
  kubectl rollout status --namespace "$namespace" --timeout=10m "$deployment"
done
echo "done: $env"
