#!/usr/bin/env bash
# npm run image:reproducible: builds the image twice from scratch (rootfs, compile, npm ci, buildah)
# and fails unless both builds have the same manifest digest. Downloads (.deb, node tgz) are cached
# by their versioned file names; everything else is rebuilt.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
digests=()
for run in 1 2; do
  log "build $run of 2"
  bash "$ROOT/scripts/image/build.sh" >/dev/null
  digests+=("$(cat "$IMAGE_DIR/digest")")
  log "build $run: ${digests[-1]}"
done
if [ "${digests[0]}" != "${digests[1]}" ]; then
  die "not reproducible: ${digests[0]} != ${digests[1]}"
fi
echo "reproducible: both builds are ${digests[0]}"
