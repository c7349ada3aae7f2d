#!/usr/bin/env bash
# npm run image:publish -- REGISTRY/pando-webhook [TAG]
# Pushes the image index npm run image built (.tools/image/oci) unchanged, with every platform's
# image (skopeo copy --all), so the registry digest is the build's index digest. TLS verification
# is off only for a registry on the loopback address.
# Prints the pinned reference REGISTRY/pando-webhook@sha256:... (the index; a runtime picks its
# platform from it) and writes it to .tools/image/published.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="${1:-}"
[ -n "$REPO" ] || die "usage: npm run image:publish -- REGISTRY/pando-webhook [TAG]"
case "$REPO" in *@*|*://*) die "give a repository without tag, digest or scheme: $REPO";; esac
ensure_tools
[ -f "$IMAGE_DIR/digest" ] && [ -d "$IMAGE_DIR/oci" ] || { log "no image built yet: npm run image"; bash "$ROOT/scripts/image/build.sh" >&2; }
SRC_TAG="$(cat "$IMAGE_DIR/tag")"
TAG="${2:-$SRC_TAG}"
DIGEST="$(cat "$IMAGE_DIR/digest")"
HEAD="$(git -C "$ROOT" rev-parse HEAD)"
BUILT="$(skopeo inspect --config "oci:$IMAGE_DIR/oci:$SRC_TAG" | "$NODE" -p "JSON.parse(require('fs').readFileSync(0)).config.Labels['org.opencontainers.image.revision']")"
[ "$BUILT" = "$HEAD" ] || log "warning: the image was built from $BUILT, HEAD is $HEAD (npm run image to rebuild)"

tls=()
case "${REPO%%/*}" in
  127.0.0.1|127.0.0.1:*|localhost|localhost:*|\[::1\]|\[::1\]:*) tls=(--dest-tls-verify=false) ;;
esac
log "skopeo copy --all $DIGEST ($(cut -f1 "$IMAGE_DIR/platforms.txt" | paste -sd " ")) -> $REPO:$TAG"
skopeo copy --all --quiet --policy "$POLICY" "${tls[@]}" --digestfile "$IMAGE_DIR/pushed-digest" \
  "oci:$IMAGE_DIR/oci:$SRC_TAG" "docker://$REPO:$TAG"
PUSHED="$(cat "$IMAGE_DIR/pushed-digest")"
[ "$PUSHED" = "$DIGEST" ] || die "the registry has $PUSHED, the build is $DIGEST (the copy was converted)"
echo "$REPO@$DIGEST" | tee "$IMAGE_DIR/published"
