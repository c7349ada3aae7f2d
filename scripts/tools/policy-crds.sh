#!/usr/bin/env bash
# Copies the CRDs that admission of our signed image and chart is written against into .tools/crds/
# (gitignored), for test/release/policies.test.ts: Kyverno's ClusterPolicy (verifyImages) and Flux's
# OCIRepository (verify), from the Go modules of the projects themselves (config/crds,
# config/crd/bases), through the Go module proxy: no download site. A stamp makes the second run
# instant. Prints the folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
# Kyverno v1.19 verifies cosign v3 bundles (verifyImages type SigstoreBundle); source-controller
# v1.9.6 discovers them too (internal/oci/cosign). v1.10 needs Go 1.27.
KYVERNO_VERSION="v1.19.1"
FLUX_SOURCE_VERSION="v1.9.6"
dir="$root/.tools/crds"
stamp="$dir/.stamp"
want="kyverno $KYVERNO_VERSION source-controller $FLUX_SOURCE_VERSION"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$dir/kyverno.io_clusterpolicies.yaml" && -f "$dir/source.toolkit.fluxcd.io_ocirepositories.yaml" ]]; then
  echo "$dir"; exit 0
fi
source "$root/scripts/lib/go.sh"
ensure_go "scripts/tools/policy-crds.sh (the Kyverno and Flux CRDs come from their Go modules)"
module_dir() { env GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p'; }
mkdir -p "$dir"
kyverno="$(module_dir "github.com/kyverno/kyverno@$KYVERNO_VERSION")"
flux="$(module_dir "github.com/fluxcd/source-controller@$FLUX_SOURCE_VERSION")"
[[ -n "$kyverno" && -n "$flux" ]] || { echo "scripts/tools/policy-crds.sh: go mod download gave no module folder" >&2; exit 1; }
cp "$kyverno/config/crds/kyverno/kyverno.io_clusterpolicies.yaml" "$flux/config/crd/bases/source.toolkit.fluxcd.io_ocirepositories.yaml" "$dir/"
chmod 0644 "$dir"/*.yaml
echo "$want" > "$stamp"
echo "$dir"
