#!/usr/bin/env bash
# Builds kube-score (a Kubernetes object linter nobody here wrote) from the github.com/zegl/kube-score
# Go module into .tools/bin/kube-score (gitignored), for `npm run lint:chart`. Like helm, it comes
# from the Go module proxy: no download site. A stamp makes the second run instant; a cold build
# takes minutes on two cores, a warm Go build cache makes a rebuild quick.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
KUBE_SCORE_VERSION="v1.20.0"
bin="$root/.tools/bin"
stamp_file="$bin/.kube-score-stamp"
mkdir -p "$bin"

if [[ -x "$bin/kube-score" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$KUBE_SCORE_VERSION" ]]; then
  exit 0
fi
source "$root/scripts/lib/go.sh"
ensure_go "scripts/tools/kube-score.sh (kube-score $KUBE_SCORE_VERSION comes from the github.com/zegl/kube-score module)"
# stdout carries only what callers read (nothing here): progress goes to stderr. The version
# variable is the one kube-score's release build sets (cmd/kube-score/cmd_version.go), so
# `kube-score version` names what was built.
with_progress "kube-score $KUBE_SCORE_VERSION" env CGO_ENABLED=0 GOBIN="$bin" GOFLAGS=-buildvcs=false nice -n 10 go install -trimpath \
  -ldflags "-s -w -X main.version=$KUBE_SCORE_VERSION" \
  "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" >&2
echo "$KUBE_SCORE_VERSION" > "$stamp_file"
