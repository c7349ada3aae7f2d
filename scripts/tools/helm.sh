#!/usr/bin/env bash
# Builds helm from the helm.sh/helm/v3 Go module into .tools/bin/helm (gitignored). Debian has no
# helm and there is no download site: the Go module proxy is the source. A stamp makes the second run
# instant; a warm Go build cache makes a rebuild quick.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
HELM_VERSION="v3.22.0"
bin="$root/.tools/bin"
# .helm-stamp holds the bare version, as older copies of this script (other checkouts sharing
# .tools/bin) expect, so they never rebuild over this build. The flags stamp names the binary it
# vouches for (mtime and size): a helm an older copy built without the flags below is rebuilt.
stamp_file="$bin/.helm-stamp"
flags_file="$bin/.helm-flags-stamp"
FLAGS="kube-version-from-client-go"
helm_id() { stat -c '%Y %s' "$bin/helm" 2>/dev/null || true; }
mkdir -p "$bin"

if [[ -x "$bin/helm" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$HELM_VERSION" \
  && -f "$flags_file" && "$(cat "$flags_file")" == "$FLAGS $(helm_id)" ]]; then
  exit 0
fi
source "$root/scripts/lib/go.sh"
ensure_go "scripts/tools/helm.sh (helm $HELM_VERSION comes from the helm.sh/helm/v3 module)"
# The Kubernetes version helm assumes without a cluster (helm template, helm lint): helm's Makefile
# (v3.22.0, lines 62-69) sets pkg/chartutil's and pkg/lint/rules' k8sVersionMajor/Minor from the
# k8s.io/client-go version of helm's go.mod (v0.X.Y is Kubernetes 1.X); without these flags they keep
# their source defaults (v1.20.0), which our chart's kubeVersion refuses.
modfile="$(env GOFLAGS=-mod=mod go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$modfile")"
[[ "$client_go" =~ ^v([0-9]+)\.([0-9]+)\. ]] || { echo "scripts/tools/helm.sh: no k8s.io/client-go vX.Y.Z in $modfile (got '$client_go')" >&2; exit 1; }
# As helm's Makefile computes them (K8S_MODULES_MAJOR_VER, K8S_MODULES_MINOR_VER).
kube_major=$((BASH_REMATCH[1] + 1))
kube_minor="${BASH_REMATCH[2]}"
kube_flags=""
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  kube_flags+=" -X $pkg.k8sVersionMajor=$kube_major -X $pkg.k8sVersionMinor=$kube_minor"
done
# stdout carries only what callers read (nothing here): progress goes to stderr.
with_progress "helm $HELM_VERSION (default Kubernetes $kube_major.$kube_minor)" env CGO_ENABLED=0 GOBIN="$bin" GOFLAGS=-buildvcs=false nice -n 10 go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION$kube_flags" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "$HELM_VERSION" > "$stamp_file"
echo "$FLAGS $(helm_id)" > "$flags_file"
