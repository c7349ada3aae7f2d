#!/usr/bin/env bash
# Builds helm from the helm.sh/helm/v3 Go module into .tools/bin/helm (gitignored). Debian has no
# helm and there is no download site: the Go module proxy is the source. A stamp makes the second run
# instant; a warm Go build cache makes a rebuild quick.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
HELM_VERSION="v3.22.0"
bin="$root/.tools/bin"
stamp_file="$bin/.helm-stamp"
mkdir -p "$bin"

if [[ -x "$bin/helm" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$HELM_VERSION" ]]; then
  exit 0
fi
if ! command -v go >/dev/null; then
  [[ -x /usr/local/go/bin/go ]] && PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null || {
  echo "scripts/tools/helm.sh: Go is needed to build helm $HELM_VERSION (from the helm.sh/helm/v3 module); install Go 1.24 or newer and put it on PATH" >&2
  exit 1
}
start=$SECONDS
echo "building helm $HELM_VERSION from the Go module proxy ($(date -u +%H:%M:%S)) ..." >&2
(trap 'kill "$s" 2>/dev/null; exit 0' TERM
 while :; do sleep 30 & s=$!; wait "$s"; echo "  ... still building helm ($((SECONDS - start))s)" >&2; done) &
ticker=$!
trap 'kill "$ticker" 2>/dev/null || true' EXIT
CGO_ENABLED=0 GOBIN="$bin" GOFLAGS=-buildvcs=false nice -n 10 go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "$HELM_VERSION" > "$stamp_file"
echo "built helm $HELM_VERSION in $((SECONDS - start))s" >&2
