#!/usr/bin/env bash
# CI (.ci/run, after the e2e): `npm run demo` as a newcomer runs it, asserted on its output (as root:
# its pods Running on the node, the Job Complete, the sidecar's log); a second run detects the
# first; `npm run demo -- down` leaves no process of the demo (nor of its node) and no port bound.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out="$(mktemp)"; trap 'rm -f "$out"' EXIT
fail() { echo "demo check FAILED: $*" >&2; tail -30 .tools/demo/demo.log 2>/dev/null >&2 || true; npm run -s demo -- down >&2 || true; exit 1; }
expect() { grep -Eq -- "$1" "$out" || fail "no line matching /$1/ in the output of $2"; echo "ok: $2: /$1/"; }

# Failures are one line: a port taken (checked before anything starts).
python3 -c 'import socket, time; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(30)' > "$out.port" &
holder=$!
for _ in $(seq 1 50); do [[ -s "$out.port" ]] && break; sleep 0.1; done
if PANDO_DEMO_PORT="$(cat "$out.port")" npm run -s demo > "$out" 2>&1; then fail "npm run demo succeeded on a taken port"; fi
kill "$holder"; rm -f "$out.port"
expect "^demo: port [0-9]+ \(PANDO_DEMO_PORT\) on 127.0.0.1 is taken by another process; free it .*details: .tools/demo/demo.log" 'npm run demo on a taken port'
# ... and the next run cleans up after the failed one.
start=$SECONDS
npm run -s demo | tee "$out" || fail "npm run demo exited non-zero"
expect '^A previous npm run demo did not finish: stopping what it started and removing its state first.$' 'npm run demo after a failed one'
echo "npm run demo took $((SECONDS - start))s"
expect '^  demo-app-[a-z0-9]+-[a-z0-9]+ +ReplicaSet/demo-app-.*INJECTED$' 'npm run demo'
[[ "$(grep -Ec '^  demo-app-.* INJECTED$' "$out")" == 2 ]] || fail "not both Deployment pods injected"
expect '^  demo-job-[a-z0-9]+ +Job/demo-job .*INJECTED$' 'npm run demo'
expect '^  demo-unlabelled .*NOT INJECTED \(not-labelled' 'npm run demo'
expect 'restartPolicy Always' 'npm run demo'
expect 'secretKeyRef' 'npm run demo'
expect 'Warning: pandocore: ' 'npm run demo'
expect '^  all checks passed$' 'npm run demo (pando doctor -n demo)'
expect 'doctor exit 0 \(all checks ok\)' 'npm run demo'
expect '^  export KUBECONFIG=' 'npm run demo'
if [[ "$(id -u)" == 0 && "${PANDO_NODE:-}" != 0 ]]; then
  # As root the cluster has a node: the pods run there, with the sidecar stand-in.
  expect '^  the pods run on node 127.0.0.1; sidecar.image is the stand-in pando.test/sidecar-standin:1 .*the vendor.s image is not reachable here$' 'npm run demo (root)'
  [[ "$(grep -Ec '^  demo-app-[a-z0-9]+-[a-z0-9]+ +2/2 +Running +0 ' "$out")" == 2 ]] || fail "not both Deployment pods Running 2/2 with 0 restarts (kubectl get pods)"
  echo "ok: npm run demo (root): both demo-app pods 2/2 Running, 0 restarts"
  expect '^  demo-job-[a-z0-9]+ +0/2 +Completed ' 'npm run demo (root; kubectl get pods)'
  expect '^  demo-unlabelled +1/1 +Running ' 'npm run demo (root; kubectl get pods)'
  expect '^  demo-app +2/2 ' 'npm run demo (root; kubectl get deployment)'
  expect '^  demo-job +Complete +1/1 ' 'npm run demo (root; kubectl get job)'
  expect '^\$ kubectl logs demo-app-[a-z0-9]+-[a-z0-9]+ -n demo -c pando-sidecar$' 'npm run demo (root)'
  expect '^  pando-sidecar: mode=monitor uid=65532 \(license key present\)$' 'npm run demo (root; the sidecar log)'
  expect '; on the node: Deployment demo-app READY 2/2, Job demo-job Complete; ' 'npm run demo (root; summary)'
else
  expect '^  no node: the pods stay Pending, and the summary shows what admission stored$' 'npm run demo (no node)'
  expect '; no node: the pods stay Pending \(admission only\); ' 'npm run demo (no node; summary)'
fi

# The README's pipe line, as written, against the running demo with the kubectl it built.
line="$(grep -m1 -- '-f scripts/demo/try.yaml | kubectl apply -f -' README.md | sed 's/ *#.*$//')"
[[ -n "$line" ]] || fail "the README has no pando inject ... | kubectl apply line"
PATH="$root/.tools/bin:$PATH" KUBECONFIG="$root/.tools/cluster/kubeconfig" bash -o pipefail -c "$line" || fail "the README line failed: $line"
for _ in $(seq 1 60); do
  status="$(.tools/bin/kubectl --kubeconfig .tools/cluster/kubeconfig get pods -n demo -l app=try-app -o jsonpath='{.items[*].metadata.annotations.pandocore\.xyz/status}')"
  [[ "$status" == injected ]] && break
  sleep 1
done
[[ "$status" == injected ]] || fail "the README line's Deployment has no injected pod (status '$status')"
echo "ok: the README's line ran as written: $line"

npm run -s demo > "$out" || fail "a second npm run demo exited non-zero"
expect '^A demo is already running' 'a second npm run demo'
expect '^  export KUBECONFIG=' 'a second npm run demo'

# What is recorded before down, checked independently after it.
read -r pids ports < <(node -e '
  const fs = require("node:fs");
  const demo = JSON.parse(fs.readFileSync(".tools/demo/state.json", "utf8"));
  const cluster = JSON.parse(fs.readFileSync(".tools/cluster/state.json", "utf8"));
  // The node (as root): kubelet, containerd, kube-scheduler.
  const node = fs.existsSync(".tools/cluster/node/state.json") ? JSON.parse(fs.readFileSync(".tools/cluster/node/state.json", "utf8")) : { pids: {} };
  const pids = [demo.webhookPid, ...Object.values(cluster.pids), ...Object.values(node.pids), fs.readFileSync(".tools/registry/pid", "utf8").trim()];
  const ports = [demo.webhookPort, demo.metricsPort, cluster.apiserverPort, cluster.etcdPort, fs.readFileSync(".tools/registry/addr", "utf8").trim().split(":")[1]];
  console.log(`${pids.join(",")} ${ports.join(",")}`);')
pids="${pids//,/ }"; ports="${ports//,/ }"
npm run -s demo -- down > "$out" || fail "npm run demo -- down exited non-zero"
cat "$out"
expect '^nothing of the demo left' 'npm run demo -- down'
for pid in $pids; do kill -0 "$pid" 2>/dev/null && fail "process $pid still runs after down"; done
for port in $ports; do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && fail "port $port still bound after down"; done
[[ ! -e .tools/demo && ! -e .tools/cluster ]] || fail "state left in .tools/demo or .tools/cluster"
echo "ok: after down no process ($pids) and no port ($ports) of the demo is left"
