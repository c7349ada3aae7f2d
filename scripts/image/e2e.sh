#!/usr/bin/env bash
# npm run test:image: builds the image index (PANDO_IMAGE_PLATFORMS, default linux/amd64 and
# linux/arm64), publishes it to a registry on 127.0.0.1, and runs test/image/*.e2e.ts against the
# pinned reference (pulled back, unpacked and started as 65532; the arm64 image under qemu-user).
# The registry: PANDO_REGISTRY (host:port of a running one) if set, else the project's
# scripts/registry.sh. Needs root (buildah, mount namespace, chroot).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ "$(id -u)" -eq 0 ] || die "npm run test:image needs root (buildah storage, mount namespace, chroot)"
ensure_tools

REGISTRY="${PANDO_REGISTRY:-}"
if [ -z "$REGISTRY" ]; then
  [ -x "$ROOT/scripts/registry.sh" ] || [ -f "$ROOT/scripts/registry.sh" ] || die "no registry: set PANDO_REGISTRY=127.0.0.1:PORT or add scripts/registry.sh"
  REGISTRY="$(bash "$ROOT/scripts/registry.sh" start)"
  trap 'bash "$ROOT/scripts/registry.sh" stop >/dev/null 2>&1 || true' EXIT
fi

# The index npm run image or image:reproducible just built from this commit is reused (same digest).
bash "$ROOT/scripts/image/build.sh" --reuse
# Forget earlier pulls, so the tests run what the registry serves.
rm -rf "$IMAGE_DIR/pulled"
REF="$(bash "$ROOT/scripts/image/publish.sh" "$REGISTRY/$IMAGE_NAME")"
log "testing $REF"
cd "$ROOT"
PANDO_IMAGE_REF="$REF" "$NODE" --test --test-reporter=spec --test-timeout=300000 "test/image/*.e2e.ts"
