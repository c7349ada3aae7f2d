#!/usr/bin/env bash
# Prepares this (amd64) host to build and run the linux/arm64 image, each step only when it is
# missing, so a second run changes nothing:
#   1. Debian's qemu-user-static, binfmt-support and binutils-aarch64-linux-gnu (the arm64 strip)
#   2. binfmt_misc mounted at /proc/sys/fs/binfmt_misc
#   3. update-binfmts --enable qemu-aarch64 (Debian registers it with the F flag: the kernel opens
#      the interpreter once, so it also runs arm64 binaries inside a chroot that has no qemu)
#   4. dpkg --add-architecture arm64, and apt-get update when the arm64 package lists are missing
# Exit 0: ready. Exit 3 (one line on stderr): not ready and not root, the arm64 image is skipped.
# Usage: bash scripts/image/host-arm64.sh [--check]   (--check changes nothing)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BINFMT=/proc/sys/fs/binfmt_misc

missing() {
  command -v qemu-aarch64-static >/dev/null || { echo "qemu-user-static is not installed"; return; }
  command -v update-binfmts >/dev/null || { echo "binfmt-support is not installed"; return; }
  command -v aarch64-linux-gnu-strip >/dev/null || { echo "binutils-aarch64-linux-gnu is not installed"; return; }
  mountpoint -q "$BINFMT" || { echo "binfmt_misc is not mounted"; return; }
  grep -qx enabled "$BINFMT/qemu-aarch64" 2>/dev/null || { echo "qemu-aarch64 is not enabled in binfmt_misc"; return; }
  grep -q '^flags: .*F' "$BINFMT/qemu-aarch64" || { echo "qemu-aarch64 is registered without the F flag"; return; }
  dpkg --print-foreign-architectures | grep -qx arm64 || { echo "dpkg does not know the arm64 architecture"; return; }
  apt-cache show libc6:arm64 >/dev/null 2>&1 || { echo "no arm64 package lists"; return; }
}

reason="$(missing)"
[ -n "$reason" ] || exit 0
if [ "${1:-}" = --check ]; then log "arm64 not ready: $reason"; exit 3; fi
if [ "$(id -u)" -ne 0 ]; then
  log "linux/arm64 skipped: $reason, and preparing the host needs root (sudo bash scripts/image/host-arm64.sh)"
  exit 3
fi

pkgs=()
command -v qemu-aarch64-static >/dev/null || pkgs+=(qemu-user-static)
command -v update-binfmts >/dev/null || pkgs+=(binfmt-support)
command -v aarch64-linux-gnu-strip >/dev/null || pkgs+=(binutils-aarch64-linux-gnu)
if [ "${#pkgs[@]}" -gt 0 ]; then
  log "apt-get install ${pkgs[*]}"
  apt-cache show "${pkgs[@]}" >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
if ! mountpoint -q "$BINFMT"; then
  log "mount -t binfmt_misc binfmt_misc $BINFMT"
  mount -t binfmt_misc binfmt_misc "$BINFMT"
fi
if ! grep -qx enabled "$BINFMT/qemu-aarch64" 2>/dev/null; then
  log "update-binfmts --enable qemu-aarch64"
  update-binfmts --enable qemu-aarch64
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  log "dpkg --add-architecture arm64"
  dpkg --add-architecture arm64
fi
if ! apt-cache show libc6:arm64 >/dev/null 2>&1; then
  log "apt-get update (no arm64 package lists yet)"
  apt-get update -qq
fi
reason="$(missing)"
[ -z "$reason" ] || die "the host is still not ready for arm64: $reason"
