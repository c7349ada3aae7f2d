#!/usr/bin/env bash
# Builds the e2e control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)
# and the node's kubelet into .tools/bin/. Skips when the stamp matches go.mod + go.sum + this script, so a second run is instant;
# a changed stamp with a warm Go build cache is quick too.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$root/.tools/bin"
stamp_file="$bin/.cluster-stamp"
mkdir -p "$bin"

k8s_version="$(awk '$1=="k8s.io/kubernetes" {print $2}' "$here/go.mod")"
stamp="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" "$here"/cmd/etcd/*.go | sha256sum | cut -c1-16) $k8s_version"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)

all_present() { for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done; }
if all_present && [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
  echo "cluster binaries up to date (Kubernetes $k8s_version)"
  exit 0
fi

source "$root/scripts/lib/go.sh"
ensure_go "test/cluster/build.sh"
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
# The version the binaries report (kubectl version, /version, compatibility checks).
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

cd "$here"
start=$SECONDS
echo "downloading Go modules for Kubernetes $k8s_version ..."
go mod download
build() { # name package
  # -p 2 and nice: the machine has two cores shared with others.
  with_progress "$1" env CGO_ENABLED=0 nice -n 10 go build -p 2 -buildvcs=false -trimpath -ldflags "$ldflags" -o "$bin/$1.tmp" "$2"
  mv "$bin/$1.tmp" "$bin/$1"
}
build etcd ./cmd/etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kubectl k8s.io/kubernetes/cmd/kubectl
build kubelet k8s.io/kubernetes/cmd/kubelet
echo "$stamp" > "$stamp_file"
echo "cluster binaries built in $((SECONDS - start))s (Kubernetes $k8s_version)"
