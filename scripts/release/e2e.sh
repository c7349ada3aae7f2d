#!/usr/bin/env bash
# npm run test:release: releases the built image and the chart to a fresh registry on 127.0.0.1 with
# a fresh key pair (COSIGN_PASSWORD random, as CI does), then runs test/release/*.e2e.ts against
# what was released: verify passes, and an unsigned digest, a signature made with another key and a
# tag moved to another digest each fail with a line naming the problem. Builds the image first when
# none is built (needs root for buildah); uses PANDO_REGISTRY (host:port) when set, else
# scripts/registry.sh, stopped at the end. Prints each step's time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NODE="$ROOT/node_modules/.bin/node"
log() { printf '[test:release] %s\n' "$*" >&2; }

REGISTRY="${PANDO_REGISTRY:-}"
if [ -z "$REGISTRY" ]; then
  # A fresh registry: one left by an earlier run (scripts/registry.sh reuses it) is stopped first.
  bash "$ROOT/scripts/registry.sh" stop >/dev/null 2>&1 || true
  REGISTRY="$(bash "$ROOT/scripts/registry.sh" start)"
  trap 'bash "$ROOT/scripts/registry.sh" stop >/dev/null 2>&1 || true' EXIT
fi
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"; [ -n "${PANDO_REGISTRY:-}" ] || bash "$ROOT/scripts/registry.sh" stop >/dev/null 2>&1 || true' EXIT
COSIGN_PASSWORD="$(head -c 18 /dev/urandom | base64)"
export COSIGN_PASSWORD

t0=$SECONDS
bash "$ROOT/scripts/tools/cosign.sh"
log "cosign ready in $((SECONDS - t0)) s ($(stat -c %s "$ROOT/.tools/bin/cosign") bytes)"
t0=$SECONDS
"$NODE" "$ROOT/scripts/release/release.ts" --registry "$REGISTRY" --out "$OUT/release"
log "release in $((SECONDS - t0)) s"
t0=$SECONDS
cd "$ROOT"
PANDO_RELEASE_DIR="$OUT/release" "$NODE" --test --test-reporter=spec --test-timeout=300000 "test/release/*.e2e.ts"
log "verify and the failure cases in $((SECONDS - t0)) s"
