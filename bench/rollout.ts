// node bench/rollout.ts [--quick]: the sidecar rollout's cost per pass at scale (issue 24: 500
// workloads in 50 namespaces, the planner's pass under 50 ms). A pass is what the leader computes
// after its lists: buildViews (slim workloads, ReplicaSets and pods -> the planner's view) and
// planRollout. The cluster is simulated in process (no API server: the lists' own cost is the
// informer's, measured by bench/watchdog.ts), and a whole rollout is driven to the end on a fake
// clock, checking at every pass that no limit is broken. --quick (CI) runs fewer passes; it asserts
// the limits, nothing about timings.
import { performance } from 'node:perf_hooks';
import { buildViews, slimRolloutPod, slimWorkload, type ClusterSnapshot } from '../app/controllers/rollout.ts';
import { planRollout, targetKey, type PersistedState, type Target } from '../app/controllers/rollout-plan.ts';

const quick = process.argv.includes('--quick');
const NAMESPACES = 50;
const WORKLOADS = 500;
const PODS_PER_WORKLOAD = 3;
const OLD: Target = { version: '1.0.0', configHash: 'aaaaaaaaaaaa' };
const NEW: Target = { version: '2.0.0', configHash: 'bbbbbbbbbbbb' };
const LIMITS = { maxConcurrent: 10, soakMs: 60_000, readyDeadlineMs: 600_000 };

interface Sim { namespace: string; name: string; running: Target; restartedFor?: string; restartedAt?: number; readyAt?: number }

const sims: Sim[] = Array.from({ length: WORKLOADS }, (_, i) => ({ namespace: `ns-${i % NAMESPACES}`, name: `app-${i}`, running: OLD }));
let now = Date.parse('2026-12-01T00:00:00Z');

function snapshot(): ClusterSnapshot {
  const workloads = [];
  const pods = [];
  const replicaSetOwners = new Map<string, string>();
  for (const s of sims) {
    const ready = s.readyAt !== undefined && now >= s.readyAt;
    const current = ready ? NEW : s.running;
    workloads.push(slimWorkload('Deployment', {
      metadata: { name: s.name, namespace: s.namespace, uid: `uid-${s.name}`, generation: s.restartedFor ? 2 : 1 },
      spec: { replicas: PODS_PER_WORKLOAD, template: { metadata: { annotations: s.restartedFor ? { 'kubectl.kubernetes.io/restartedAt': new Date(s.restartedAt!).toISOString(), 'pandocore.xyz/rollout-target': s.restartedFor } : {} } } },
      status: { observedGeneration: s.restartedFor ? 2 : 1, replicas: PODS_PER_WORKLOAD, updatedReplicas: !s.restartedFor || ready ? PODS_PER_WORKLOAD : 1, availableReplicas: !s.restartedFor || ready ? PODS_PER_WORKLOAD : 0 },
    }));
    replicaSetOwners.set(`${s.namespace}/${s.name}-rs`, s.name);
    for (let p = 0; p < PODS_PER_WORKLOAD; p++) {
      pods.push(slimRolloutPod({
        metadata: { name: `${s.name}-${p}`, namespace: s.namespace, annotations: { 'pandocore.xyz/status': 'injected', 'pandocore.xyz/version': current.version, 'pandocore.xyz/config-hash': current.configHash }, ownerReferences: [{ kind: 'ReplicaSet', name: `${s.name}-rs`, controller: true }] },
        status: { initContainerStatuses: [{ name: 'pando-sidecar', ready: true, restartCount: 0, state: { running: { startedAt: new Date(s.readyAt ?? 0).toISOString() } } }] },
      }));
    }
  }
  return { workloads, pods, replicaSetOwners, canaryNamespaces: new Set(['ns-0']) };
}

const cpuMs: number[] = [];
const wallMs: number[] = [];
let state: PersistedState = { paused: false };
let passes = 0;
let restarts = 0;
const maxPasses = quick ? 400 : 2000;
const restarted = new Set<string>();
// Each simulated pass is 10 s (the leader's interval); a restarted workload is Ready 20-60 s later.
for (; passes < maxPasses; passes++) {
  const snap = snapshot();
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const views = buildViews(snap, NEW, () => undefined);
  const plan = planRollout({ target: NEW, workloads: views, state, limits: LIMITS, now });
  wallMs.push(performance.now() - t0);
  const used = process.cpuUsage(cpu);
  cpuMs.push((used.user + used.system) / 1000);
  const busy = [...plan.verdicts.values()].filter((v) => v.state === 'in-progress').map((v) => v.key.split('/')[0]!);
  const after = busy.length + plan.restart.length;
  if (after > LIMITS.maxConcurrent) throw new Error(`pass ${passes}: ${after} in progress, limit ${LIMITS.maxConcurrent}`);
  const namespaces = [...busy, ...plan.restart.map((k) => k.split('/')[0]!)];
  if (new Set(namespaces).size !== namespaces.length) throw new Error(`pass ${passes}: two workloads at once in one namespace`);
  state = plan.next;
  if (plan.complete) break;
  for (const key of plan.restart) {
    if (restarted.has(key)) throw new Error(`${key} restarted twice`);
    restarted.add(key);
    const s = sims.find((x) => `${x.namespace}/Deployment/${x.name}` === key)!;
    s.restartedFor = targetKey(NEW);
    s.restartedAt = now;
    s.readyAt = now + 20_000 + ((restarts * 7919) % 40_000);
    restarts++;
  }
  now += 10_000;
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;
const complete = restarted.size === WORKLOADS;
console.log(`rollout planner: ${WORKLOADS} workloads (${WORKLOADS * PODS_PER_WORKLOAD} pods) in ${NAMESPACES} namespaces, maxConcurrent ${LIMITS.maxConcurrent}, soak ${LIMITS.soakMs / 1000} s`);
console.log(`  passes ${passes}${complete ? ' (rollout complete: every workload restarted once, limits held at every pass)' : ` (stopped at --quick's bound: ${restarted.size} of ${WORKLOADS} restarted, limits held)`}; simulated time ${Math.round((passes * 10) / 60)} min`);
const warm = cpuMs.slice(1);
console.log(`  CPU per pass (buildViews + planRollout): first (cold) ${cpuMs[0]!.toFixed(2)} ms; then p50 ${pct(warm, 50).toFixed(2)} ms, p99 ${pct(warm, 99).toFixed(2)} ms, max ${Math.max(...warm).toFixed(2)} ms (target < 50 ms); wall p50 ${pct(wallMs, 50).toFixed(2)} ms`);
if (!quick && !complete) {
  console.error('the rollout did not complete within the bound');
  process.exitCode = 1;
}
