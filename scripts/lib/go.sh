# Sourced by the scripts that build Go binaries into .tools/bin (helm, the control plane,
# cert-manager): finding Go, and saying that a long, silent build is still going.

# ensure_go WHO: puts Go on PATH (it lives in /usr/local/go/bin on this kind of machine) or fails
# with a message that says what is missing.
ensure_go() {
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="$PATH:/usr/local/go/bin"; fi
  command -v go >/dev/null || {
    echo "$1: Go is needed (1.26 or newer, on PATH) to build from the Go module proxy" >&2
    exit 1
  }
}

# with_progress NAME COMMAND...: runs COMMAND, printing a line every 30 s while it runs and the time
# it took. A cold Go build is silent for minutes; CI logs must show that it is alive.
with_progress() {
  local name="$1" t=$SECONDS ticker s
  shift
  echo "building $name ($(date -u +%H:%M:%S)) ..."
  (trap 'kill "$s" 2>/dev/null; exit 0' TERM
   while :; do sleep 30 & s=$!; wait "$s"; echo "  ... still building $name ($((SECONDS - t))s)"; done) &
  ticker=$!
  if ! "$@"; then kill "$ticker"; wait "$ticker" 2>/dev/null || true; return 1; fi
  kill "$ticker"; wait "$ticker" 2>/dev/null || true
  echo "built $name in $((SECONDS - t))s"
}
