#!/usr/bin/env bash
# Pin every external base image of a Dockerfile to the digest its tag points at now:
#   FROM python:3.11.11-slim-bookworm[@sha256:old] AS x  ->  FROM python:3.11.11-slim-bookworm@sha256:new AS x
# Needs `docker buildx` and access to the registries (run it where images are built, then review the diff).
# Usage: deploy/pin-base-images.sh [deploy/Dockerfile]
set -euo pipefail

dockerfile=${1:-deploy/Dockerfile}
stages=$(awk 'toupper($1) == "FROM" && toupper($(NF-1)) == "AS" {print $NF}' "$dockerfile")

for ref in $(awk 'toupper($1) == "FROM" {for (i = 2; i <= NF; i++) if ($i !~ /^--/) {print $i; break}}' "$dockerfile" | sort -u); do
  image=${ref%@*}
  if grep -qxF "$image" <<<"$stages"; then
    continue  # a stage of this file, not an image
  fi
  digest=$(docker buildx imagetools inspect "$image" --format '{{.Manifest.Digest}}')
  if [[ ! $digest =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "no digest for $image (got: $digest)" >&2
    exit 1
  fi
  # Escape the dots of the reference so sed matches it literally.
  pattern=$(printf '%s' "$ref" | sed 's/[.[\*^$/]/\\&/g')
  sed -i -E "s/^(FROM( --[^ ]+)* )${pattern}( |\$)/\\1${image//\//\\/}@${digest}\\3/" "$dockerfile"
  echo "$image -> $digest"
done
