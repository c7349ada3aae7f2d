#!/usr/bin/env bash
# npm run chart:publish -- oci://HOST/PATH
# Packages dist/pando-webhook with helm and pushes it to HOST/PATH/pando-webhook:VERSION.
# Plain HTTP only for a registry on this machine (127.0.0.1, ::1, localhost).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${1:-}"
[[ "$target" == oci://* ]] || { echo "usage: npm run chart:publish -- oci://HOST/PATH   (for example oci://127.0.0.1:5000/charts)" >&2; exit 2; }
[[ -f "$root/dist/pando-webhook/Chart.yaml" ]] || { echo "dist/pando-webhook is missing: npm run chart" >&2; exit 1; }
bash "$root/scripts/tools/helm.sh"
helm="$root/.tools/bin/helm"
export HELM_CACHE_HOME="$root/.tools/helm/cache" HELM_CONFIG_HOME="$root/.tools/helm/config" HELM_DATA_HOME="$root/.tools/helm/data"
host="${target#oci://}"; host="${host%%/*}"
plain=()
case "$host" in 127.0.0.1:*|127.0.0.1|localhost|localhost:*|\[::1\]*) plain=(--plain-http) ;; esac
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$helm" package "$root/dist/pando-webhook" --destination "$work" >&2
pkg="$(ls "$work"/*.tgz)"
"$helm" push "$pkg" "$target" "${plain[@]}" >&2
version="$(basename "$pkg" .tgz)"; version="${version#pando-webhook-}"
echo "$target/pando-webhook:$version"
