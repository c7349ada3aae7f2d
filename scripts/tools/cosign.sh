#!/usr/bin/env bash
# Builds cosign (Sigstore's signer and verifier) from the github.com/sigstore/cosign/v3 Go module into
# .tools/bin/cosign (gitignored), for `npm run release` and `npm run verify`. Like helm, it comes from
# the Go module proxy: no download site. A stamp makes the second run instant; a cold build took
# 764 s on two cores, a warm Go build cache makes a rebuild quick.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
COSIGN_VERSION="v3.1.3"
bin="$root/.tools/bin"
# The stamp names the version and the binary it vouches for (mtime and size), so a cosign replaced
# by hand is rebuilt.
stamp_file="$bin/.cosign-stamp"
cosign_id() { stat -c '%Y %s' "$bin/cosign" 2>/dev/null || true; }
mkdir -p "$bin"

if [[ -x "$bin/cosign" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$COSIGN_VERSION $(cosign_id)" ]]; then
  exit 0
fi
source "$root/scripts/lib/go.sh"
ensure_go "scripts/tools/cosign.sh (cosign $COSIGN_VERSION comes from the github.com/sigstore/cosign/v3 module)"
# The version variables are the ones cosign's own Makefile sets (sigs.k8s.io/release-utils/version),
# so `cosign version` names what was built. -p 2: the machine has two cores, shared.
with_progress "cosign $COSIGN_VERSION" env CGO_ENABLED=0 GOBIN="$bin" GOFLAGS=-buildvcs=false nice -n 10 go install -p 2 -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION -X sigs.k8s.io/release-utils/version.gitTreeState=clean" \
  "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN_VERSION" >&2
echo "$COSIGN_VERSION $(cosign_id)" > "$stamp_file"
