#!/usr/bin/env bash
# npm run image:reproducible: builds the image index twice from scratch (rootfs, compile, npm ci,
# buildah; every platform of PANDO_IMAGE_PLATFORMS, default linux/amd64 and linux/arm64) and fails
# unless both builds have the same index digest, naming each platform whose manifest differs.
# Downloads (.deb, node tgz) are cached by their versioned file names; everything else is rebuilt.
# The first build may be one made earlier from this same commit with a clean tree (build.sh --reuse:
# in CI the e2e's, a from-scratch build too, minutes before); the second is always made here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
digests=()
platforms=()
for run in 1 2; do
  log "build $run of 2"
  t0=$SECONDS
  if [ "$run" = 1 ]; then reuse=(--reuse); else reuse=(); fi
  bash "$ROOT/scripts/image/build.sh" "${reuse[@]}" >/dev/null
  digests+=("$(cat "$IMAGE_DIR/digest")")
  platforms+=("$(cat "$IMAGE_DIR/platforms.txt")")
  log "build $run ($((SECONDS - t0)) s): index ${digests[-1]}"
  while IFS=$'\t' read -r platform digest; do log "  $platform $digest"; done <<< "${platforms[-1]}"
done
if [ "${digests[0]}" != "${digests[1]}" ]; then
  diff <(echo "${platforms[0]}") <(echo "${platforms[1]}") >&2 || true
  die "not reproducible: ${digests[0]} != ${digests[1]}"
fi
echo "reproducible: both builds are ${digests[0]} ($(cut -f1 <<< "${platforms[0]}" | paste -sd ' '))"
