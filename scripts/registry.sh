#!/usr/bin/env bash
# Local OCI registries: Debian's docker-registry, bound to 127.0.0.1 on a free port, with its own
# config (filesystem storage under .tools/registry/ or .tools/registry-private/). Installed from
# Debian on first use when running as root.
#   - the project registry (no NAME): no authentication; the chart and image publishing tests, the
#     webhook image of the e2e, and the e2e node's images (pando.test/..., test/cluster/node.ts);
#   - `private`: htpasswd (basic) authentication over plain HTTP, for the node's images behind a
#     pull Secret (pando-private.test/...). The user and a password made at start are in
#     .tools/registry-private/credentials (USER:PASSWORD, mode 0600); htpasswd (bcrypt, the only
#     hash the registry accepts) comes from Debian's apache2-utils.
#   scripts/registry.sh start [private]    prints HOST:PORT (reuses a registry this script already started)
#   scripts/registry.sh running [private]  exit 0 when that registry is up and answers
#   scripts/registry.sh stop [private]     stops it and deletes its storage
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
name="${2:-}"
case "$name" in
  '') dir="$root/.tools/registry" ;;
  private) dir="$root/.tools/registry-private" ;;
  *) printf '[registry] error: unknown registry %s (none or private)\n' "$name" >&2; exit 2 ;;
esac
pid_file="$dir/pid"
addr_file="$dir/addr"
credentials_file="$dir/credentials"
user=pando-e2e

log() { printf '[registry%s] %s\n' "${name:+ $name}" "$*" >&2; }
die() { printf '[registry%s] error: %s\n' "${name:+ $name}" "$*" >&2; exit 1; }

running() { [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }
healthy() {
  local auth=()
  [[ -n "$name" ]] && auth=(-u "$(cat "$credentials_file" 2>/dev/null)")
  curl -fs -o /dev/null --max-time 2 "${auth[@]}" "http://$1/v2/"
}

install_from_debian() { # command package
  command -v "$1" >/dev/null && return 0
  [[ "$(id -u)" -eq 0 ]] || die "$1 is missing: apt-get install $2 (or run as root to install it)"
  log "installing $2 from Debian"
  apt-cache show "$2" >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  command -v "$1" >/dev/null || die "apt-get install $2 did not install $1"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  if running && healthy "$(cat "$addr_file")"; then cat "$addr_file"; return 0; fi
  install_from_debian docker-registry docker-registry
  command -v curl >/dev/null || die "curl is needed to check the registry"
  rm -rf "$dir"; mkdir -p "$dir/data"
  local port auth=''; port="$(free_port)"
  if [[ -n "$name" ]]; then
    install_from_debian htpasswd apache2-utils
    local password; password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    (umask 077; printf '%s:%s' "$user" "$password" > "$credentials_file")
    htpasswd -Bbn "$user" "$password" > "$dir/htpasswd" 2>/dev/null
    auth="auth:
  htpasswd:
    realm: pando-$name
    path: $dir/htpasswd"
  fi
  cat > "$dir/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
CONFIG
  # setsid: the registry outlives this script (npm scripts and tests call start and stop apart).
  setsid docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 < /dev/null &
  echo $! > "$pid_file"
  echo "127.0.0.1:$port" > "$addr_file"
  for _ in $(seq 1 100); do
    healthy "127.0.0.1:$port" && { echo "127.0.0.1:$port"; return 0; }
    running || die "docker-registry exited: $(tail -5 "$dir/log")"
    sleep 0.1
  done
  die "docker-registry did not answer on 127.0.0.1:$port within 10 s: $(tail -5 "$dir/log")"
}

stop() {
  if running; then
    kill "$(cat "$pid_file")" 2>/dev/null || true
    for _ in $(seq 1 50); do running || break; sleep 0.1; done
    running && kill -9 "$(cat "$pid_file")" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  running) running && healthy "$(cat "$addr_file")" ;;
  stop) stop ;;
  *) die "usage: scripts/registry.sh start|running|stop [private]" ;;
esac
