#!/usr/bin/env bash
# Builds the benchmark's Go peers into .tools/bin/: pando-go-peer (map and diff, main.go) and
# pando-go-peer-typed (k8s.io/api types, hand-built patch, typed/main.go). Skips when the stamp
# (sources, this script and the Go version) matches, so a second run is instant; a cold build needs
# the Go module proxy once for gomodules.xyz/jsonpatch/v2 and k8s.io/api (the e2e fetches the latter too).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$root/.tools/bin"
out="$bin/pando-go-peer"
stamp_file="$bin/.pando-go-peer-stamp"

# shellcheck source=../../scripts/lib/go.sh
source "$root/scripts/lib/go.sh"
ensure_go "bench (the Go peer of npm run bench)"

stamp="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/typed/main.go" "$here/peer/peer.go" "$here/build.sh" | sha256sum | cut -c1-16) $(go env GOVERSION)"
if [[ -x "$out" && -x "$out-typed" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
  echo "go peers up to date ($out, $out-typed)"
  exit 0
fi
mkdir -p "$bin"
cd "$here"
with_progress "the benchmark's Go peer with $(go env GOVERSION)" env CGO_ENABLED=0 go build -buildvcs=false -trimpath -o "$out.tmp" .
mv "$out.tmp" "$out"
with_progress "the benchmark's typed Go peer" env CGO_ENABLED=0 go build -buildvcs=false -trimpath -o "$out-typed.tmp" ./typed
mv "$out-typed.tmp" "$out-typed"
echo "$stamp" > "$stamp_file"
