#!/usr/bin/env bash
# Builds the benchmark's Go peer into .tools/bin/pando-go-peer. Skips when the stamp (sources, this
# script and the Go version) matches, so a second run is instant; a cold build needs the Go module
# proxy once for gomodules.xyz/jsonpatch/v2.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$root/.tools/bin"
out="$bin/pando-go-peer"
stamp_file="$bin/.pando-go-peer-stamp"

go_bin="$(command -v go || true)"
[[ -n "$go_bin" ]] || { [[ -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go; }
if [[ -z "$go_bin" ]]; then
  echo "bench: Go is missing (neither 'go' on PATH nor /usr/local/go/bin/go): the Go peer of the benchmark cannot be built; install Go 1.24 or newer" >&2
  exit 1
fi

stamp="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/build.sh" | sha256sum | cut -c1-16) $("$go_bin" env GOVERSION)"
if [[ -x "$out" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
  echo "go peer up to date ($out)"
  exit 0
fi
mkdir -p "$bin"
cd "$here"
start=$SECONDS
CGO_ENABLED=0 "$go_bin" build -buildvcs=false -trimpath -o "$out.tmp" .
mv "$out.tmp" "$out"
echo "$stamp" > "$stamp_file"
echo "go peer built in $((SECONDS - start))s with $("$go_bin" env GOVERSION) ($out)"
