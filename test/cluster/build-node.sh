#!/usr/bin/env bash
# What the e2e node needs beside the kubelet (built by build.sh): Debian's containerd and runc
# (installed when root and missing, as scripts/registry.sh installs docker-registry), and, built here
# from Go (nothing comes from outside), the CNI plugin, the pause image, the sidecar stand-in image and the
# tool that writes those images as OCI image-layout tars (node.ts pushes them to the registries on
# 127.0.0.1 the node pulls from).
# Into .tools/node/ (bin/ and images/); skips when the stamp matches the sources and this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/.tools/node"
stamp_file="$out/.stamp"

log() { printf '[node] %s\n' "$*" >&2; }
die() { printf '[node] error: %s\n' "$*" >&2; exit 1; }

# containerd 1.6 from Debian: it works today (the kubelet counts 1.6 as losing support in 1.38).
# containerd's CRI always adds a loopback network: its `loopback` plugin comes from Debian's
# containernetworking-plugins (only that one is used; pod networks use our plugin).
loopback=/usr/lib/cni/loopback
if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || ! command -v ctr >/dev/null || [[ ! -x "$loopback" ]]; then
  [[ "$(id -u)" -eq 0 ]] || die "containerd, runc or the CNI loopback plugin is missing: apt-get install containerd runc containernetworking-plugins (or run as root to install them)"
  log "installing containerd, runc and containernetworking-plugins from Debian"
  apt-cache show containerd >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd runc containernetworking-plugins >/dev/null
  command -v containerd >/dev/null && command -v runc >/dev/null && [[ -x "$loopback" ]] || die "apt-get install containerd runc containernetworking-plugins did not install them"
fi
# skopeo pushes the images below to the registries the node pulls from (test/cluster/node-registry.ts).
if ! command -v skopeo >/dev/null; then
  [[ "$(id -u)" -eq 0 ]] || die "skopeo is missing: apt-get install skopeo (or run as root to install it)"
  log "installing skopeo from Debian"
  apt-cache show skopeo >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo >/dev/null
  command -v skopeo >/dev/null || die "apt-get install skopeo did not install it"
fi

stamp="$(cat "$here/build-node.sh" "$here"/cmd/{cni,pause,ociimage}/*.go "$root"/test/sidecar-standin/{go.mod,*.go} | sha256sum | cut -c1-16)"
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
  log "node programs and images up to date"
  exit 0
fi

source "$root/scripts/lib/go.sh"
ensure_go "test/cluster/build-node.sh"
mkdir -p "$out/bin" "$out/images"
t0=$SECONDS
gobuild() { # output dir package...
  local o="$1" d="$2"; shift 2
  (cd "$d" && CGO_ENABLED=0 nice -n 10 go build -p 2 -buildvcs=false -trimpath -ldflags "-s -w" -o "$o" "$@")
}
export GOARCH="${GOARCH:-$(go env GOARCH)}"
gobuild "$out/bin/pando-cni" "$here" ./cmd/cni
gobuild "$out/bin/pause" "$here" ./cmd/pause
gobuild "$out/bin/ociimage" "$here" ./cmd/ociimage
gobuild "$out/bin/pando-sidecar" "$root/test/sidecar-standin" .
# The pause image is also the e2e's app container (`pause 3s` exits 0 after 3 s, for Jobs).
"$out/bin/ociimage" -out "$out/images/pause.tar" -name pando.test/pause:1 -entrypoint /pause -file "$out/bin/pause:/pause"
"$out/bin/ociimage" -out "$out/images/sidecar-standin.tar" -name pando.test/sidecar-standin:1 \
  -entrypoint /pando-sidecar -user 65532:65532 -file "$out/bin/pando-sidecar:/pando-sidecar"
# The stand-in's versions for test/e2e/rollout-node.e2e.ts, node-heal.e2e.ts and
# node-startup-probe.e2e.ts (keep equal to STANDIN_VERSIONS in node.ts): the same binary, one image
# per version (PANDO_STANDIN_VERSION in its config, so each has its own image ID and the kubelet
# reports the tag the pod named); the crash version's config also sets PANDO_STANDIN_CRASH, which
# makes the stand-in log why and exit 1 at every start; the oom version's sets
# PANDO_STANDIN_ALLOC_MIB=256, twice the chart's sidecar memory limit (128Mi), so the kernel kills it
# 2 s after it is ready (OOMKilled); the slow version's sets PANDO_STANDIN_READY_DELAY=3s: it is
# ready 3 s after it starts.
for version in 0.1.0 0.2.0 0.3.1 0.3.0-crash 0.3.2-oom 0.3.3-slow; do
  extra=()
  [[ "$version" == *-crash ]] && extra=(-env "PANDO_STANDIN_CRASH=the e2e's bad sidecar version")
  [[ "$version" == *-oom ]] && extra=(-env "PANDO_STANDIN_ALLOC_MIB=256")
  [[ "$version" == *-slow ]] && extra=(-env "PANDO_STANDIN_READY_DELAY=3s")
  "$out/bin/ociimage" -out "$out/images/sidecar-standin-$version.tar" -name "pando.test/sidecar-standin:$version" \
    -entrypoint /pando-sidecar -user 65532:65532 -file "$out/bin/pando-sidecar:/pando-sidecar" -env "PANDO_STANDIN_VERSION=$version" "${extra[@]}"
done
echo "$stamp" > "$stamp_file"
log "node programs and images built in $((SECONDS - t0)) s"
