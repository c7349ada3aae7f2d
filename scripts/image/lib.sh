# Shared by the image scripts: where things live, and how buildah/skopeo/umoci are called here.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGE_DIR="$ROOT/.tools/image"
IMAGE_NAME="pando-webhook"
# Node 24 of the node devDependency (node_modules/.bin/node); the system node may be older.
NODE="$ROOT/node_modules/.bin/node"
POLICY="$ROOT/scripts/image/policy.json"

# As root in a container sandbox: no overlay mounts and no user namespaces for RUN steps, so vfs
# storage and chroot isolation. A storage root of our own under .tools/ keeps the images apart
# from anybody else's on the machine (and `rm -rf .tools/image` forgets them).
export BUILDAH_ISOLATION=chroot
export STORAGE_DRIVER=vfs
BUILDAH=(buildah --root "$IMAGE_DIR/storage" --runroot "$IMAGE_DIR/runroot" --storage-driver vfs)

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

# buildah, skopeo and umoci from Debian; installed on first use (CI runs as root on a clean machine).
ensure_tools() {
  local missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v skopeo >/dev/null || missing+=(skopeo)
  command -v umoci >/dev/null || missing+=(umoci)
  command -v strip >/dev/null || missing+=(binutils)
  command -v dpkg-deb >/dev/null || die "dpkg-deb not found: the image is assembled from Debian packages"
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
  log "installing ${missing[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

package_version() { "$NODE" -p "require('$ROOT/package.json').version"; }
