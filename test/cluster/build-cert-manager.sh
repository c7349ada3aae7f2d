#!/usr/bin/env bash
# Builds cert-manager's controller and cainjector (test/cluster/cert-manager: our own small mains
# around the github.com/cert-manager/cert-manager module) into .tools/bin/, and exports the same
# module's CRDs to .tools/cert-manager/crds.yaml. Skips when the stamp matches the module's go.mod,
# go.sum, the mains and this script, so a second run is instant.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="$here/cert-manager"
bin="$root/.tools/bin"
out="$root/.tools/cert-manager"
stamp_file="$bin/.cert-manager-stamp"
mkdir -p "$bin" "$out"

cm_version="$(awk '$1=="github.com/cert-manager/cert-manager" {print $2}' "$src/go.mod")"
stamp="$(cat "$src/go.mod" "$src/go.sum" "$here/build-cert-manager.sh" "$src"/*/*.go | sha256sum | cut -c1-16) $cm_version"
binaries=(cert-manager-controller cert-manager-cainjector)

all_present() { for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done; [[ -s "$out/crds.yaml" ]]; }
if all_present && [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
  echo "cert-manager binaries up to date ($cm_version)"
  exit 0
fi

source "$root/scripts/lib/go.sh"
ensure_go "test/cluster/build-cert-manager.sh"
cd "$src"
start=$SECONDS
echo "downloading Go modules for cert-manager $cm_version ..."
go mod download
# The CRDs of the same module version the binaries are built from.
crds_dir="$(go mod download -json "github.com/cert-manager/cert-manager@$cm_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/deploy/crds"
[[ -d "$crds_dir" ]] || { echo "build-cert-manager.sh: no deploy/crds in the cert-manager module" >&2; exit 1; }
for f in "$crds_dir"/*.yaml; do
  case "$(head -c 4 "$f")" in ---*) ;; *) echo "---" ;; esac
  cat "$f"
done > "$out/crds.yaml.tmp"
mv "$out/crds.yaml.tmp" "$out/crds.yaml"
echo "exported $(grep -c '^kind: CustomResourceDefinition' "$out/crds.yaml") CRDs to .tools/cert-manager/crds.yaml"

build() { # name package
  # -p 2 and nice: the machine has two cores shared with others.
  with_progress "$1" env CGO_ENABLED=0 nice -n 10 go build -p 2 -buildvcs=false -trimpath -ldflags "-s -w" -o "$bin/$1.tmp" "$2"
  mv "$bin/$1.tmp" "$bin/$1"
}
build cert-manager-controller ./controller
build cert-manager-cainjector ./cainjector
echo "$stamp" > "$stamp_file"
echo "cert-manager binaries built in $((SECONDS - start))s ($cm_version)"
