#!/usr/bin/env bash
# A local OCI registry for the chart and image publishing tests: Debian's docker-registry, bound to
# 127.0.0.1 on a free port, with its own config (no htpasswd, filesystem storage under
# .tools/registry/). Installed from Debian on first use when running as root.
#   scripts/registry.sh start   prints HOST:PORT (reuses a registry this script already started)
#   scripts/registry.sh stop    stops it and deletes its storage
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/.tools/registry"
pid_file="$dir/pid"
addr_file="$dir/addr"

log() { printf '[registry] %s\n' "$*" >&2; }
die() { printf '[registry] error: %s\n' "$*" >&2; exit 1; }

running() { [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }
healthy() { curl -fs -o /dev/null --max-time 2 "http://$1/v2/"; }

ensure_installed() {
  command -v docker-registry >/dev/null && return 0
  [[ "$(id -u)" -eq 0 ]] || die "docker-registry is missing: apt-get install docker-registry (or run as root to install it)"
  log "installing docker-registry from Debian"
  apt-cache show docker-registry >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
  command -v docker-registry >/dev/null || die "apt-get install docker-registry did not install the binary"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  if running && healthy "$(cat "$addr_file")"; then cat "$addr_file"; return 0; fi
  ensure_installed
  command -v curl >/dev/null || die "curl is needed to check the registry"
  rm -rf "$dir"; mkdir -p "$dir/data"
  local port; port="$(free_port)"
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
  stop) stop ;;
  *) die "usage: scripts/registry.sh start|stop" ;;
esac
