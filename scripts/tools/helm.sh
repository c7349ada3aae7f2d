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
source "$root/scripts/lib/go.sh"
ensure_go "scripts/tools/helm.sh (helm $HELM_VERSION comes from the helm.sh/helm/v3 module)"
# stdout carries only what callers read (nothing here): progress goes to stderr.
with_progress "helm $HELM_VERSION" env CGO_ENABLED=0 GOBIN="$bin" GOFLAGS=-buildvcs=false nice -n 10 go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "$HELM_VERSION" > "$stamp_file"
