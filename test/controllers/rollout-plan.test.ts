// The rollout planner (app/controllers/rollout-plan.ts) on a fake clock and a fake cluster: the
// order (canary, then waves), the limits (cluster-wide, per namespace), pause on the first failure,
// resume, and a new leader planning from the same cluster and persisted state. The controller that
// applies the plans to the API server: test/controllers/rollout.test.ts and test/e2e/rollout.e2e.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  planRollout, podHealth, rolloutComplete, targetKey, workloadKeyOf,
  type Limits, type PersistedState, type PodHealth, type RolloutPlan, type Target, type WorkloadView,
} from '../../app/controllers/rollout-plan.ts';

const OLD: Target = { version: '1.0.0', configHash: 'aaaaaaaaaaaa' };
const NEW: Target = { version: '2.0.0', configHash: 'bbbbbbbbbbbb' };
const FIXED: Target = { version: '2.0.1', configHash: 'cccccccccccc' };
const LIMITS: Limits = { maxConcurrent: 4, soakMs: 30_000, readyDeadlineMs: 300_000 };

interface FakeWorkload {
  namespace: string;
  name: string;
  size: number;
  manual: boolean;
  canary: boolean;
  /** The sidecar version its pods run and whether they are healthy. */
  running: Target;
  restartedFor?: string;
  restartedAt?: number;
  /** When the restarted pods become Ready (ms after restart). */
  readyAfter: number;
  complete: boolean;
  since?: number;
  problem?: string;
}

/** A fake cluster: a restart replaces the pods after readyAfter; a bad version's sidecar crash-loops. */
class FakeCluster {
  now = 1_000_000;
  readonly workloads: FakeWorkload[];
  readonly restarts = new Map<string, number>();
  readonly log: Array<{ at: number; key: string; canary: boolean; canariesDone: boolean; inProgress: number; busyNamespace: boolean }> = [];
  private readonly bad: Set<string>;
  constructor(workloads: FakeWorkload[], bad: Set<string> = new Set()) {
    this.workloads = workloads;
    this.bad = bad;
  }
  views(): WorkloadView[] {
    return this.workloads.map((w) => {
      const pods: PodHealth[] = Array.from({ length: w.size }, (_, i) => {
        const current = targetKey(w.running) === targetKey(this.current);
        return { name: `${w.name}-${i}`, current, stale: !current, sidecarReady: w.complete && !w.problem, restartCount: 0, ...(w.problem ? { problem: w.problem } : {}), ...(w.since !== undefined ? { runningSince: w.since } : {}) };
      });
      return {
        kind: 'Deployment', namespace: w.namespace, name: w.name, size: w.size, manual: w.manual, canary: w.canary,
        ...(w.restartedFor ? { restartedFor: w.restartedFor, restartedAt: w.restartedAt! } : {}),
        complete: w.complete, progressDeadlineExceeded: false, pods,
      };
    });
  }
  current: Target = NEW;
  restart(key: string) {
    const w = this.workloads.find((x) => workloadKeyOf({ ...x, kind: 'Deployment' }) === key)!;
    this.restarts.set(`${targetKey(this.current)} ${key}`, (this.restarts.get(`${targetKey(this.current)} ${key}`) ?? 0) + 1);
    w.restartedFor = targetKey(this.current);
    w.restartedAt = this.now;
    w.complete = false;
    delete w.since;
    delete w.problem;
  }
  advance(ms: number) {
    this.now += ms;
    for (const w of this.workloads) {
      if (w.restartedFor !== targetKey(this.current) || w.complete || w.problem) continue;
      if (this.now - w.restartedAt! >= w.readyAfter) {
        w.running = this.current;
        if (this.bad.has(targetKey(this.current))) w.problem = 'CrashLoopBackOff';
        else {
          w.complete = true;
          w.since = this.now;
        }
      }
    }
  }
}

function fleet(spec: Array<[string, number, { canary?: boolean; manual?: boolean; readyAfter?: number }?]>): FakeWorkload[] {
  return spec.map(([id, size, o], i) => ({ namespace: id.split('/')[0]!, name: id.split('/')[1] ?? `w${i}`, size, manual: o?.manual ?? false, canary: o?.canary ?? false, running: OLD, readyAfter: o?.readyAfter ?? 10_000, complete: true, since: 0 }));
}

/** Drives the planner against the cluster until complete, paused or out of steps, checking invariants at each restart. */
function drive(cluster: FakeCluster, state: PersistedState, limits = LIMITS, steps = 500, stepMs = 5_000): { state: PersistedState; last: RolloutPlan; plans: number } {
  let last!: RolloutPlan;
  for (let i = 0; i < steps; i++) {
    const views = cluster.views();
    last = planRollout({ target: cluster.current, workloads: views, state, limits, now: cluster.now });
    if (state.paused) assert.deepEqual(last.restart, [], 'nothing restarted while paused');
    const canaryKeys = canaries(views, targetKey(cluster.current));
    const canariesDone = [...canaryKeys].every((k) => last.verdicts.get(k)!.state === 'done');
    for (const key of last.restart) {
      cluster.log.push({ at: cluster.now, key, canary: canaryKeys.has(key), canariesDone, inProgress: 0, busyNamespace: false });
      cluster.restart(key);
    }
    state = last.next;
    // After the restarts: the limits hold on what is now in progress.
    const after = planRollout({ target: cluster.current, workloads: cluster.views(), state, limits, now: cluster.now });
    const running = [...after.verdicts.values()].filter((v) => v.state === 'in-progress' || v.state === 'failed');
    assert.ok(running.length <= limits.maxConcurrent, `at most ${limits.maxConcurrent} in progress, saw ${running.length}`);
    const namespaces = running.map((v) => v.key.split('/')[0]);
    assert.equal(new Set(namespaces).size, namespaces.length, `one at a time per namespace: ${namespaces.join(',')}`);
    if (last.complete || last.next.paused) return { state, last, plans: i + 1 };
    cluster.advance(stepMs);
  }
  return { state, last, plans: steps };
}

/** The canaries as the planner must choose them: canary namespaces, else the smallest stale workload. */
function canaries(views: WorkloadView[], target: string): Set<string> {
  const members = views.filter((w) => w.restartedFor === target || (w.pods.some((p) => p.stale) && !w.manual && w.restartedFor !== target));
  const flagged = members.filter((w) => w.canary);
  if (flagged.length > 0) return new Set(flagged.map(workloadKeyOf));
  const sorted = [...members].sort((a, b) => a.size - b.size || (workloadKeyOf(a) < workloadKeyOf(b) ? -1 : 1));
  return new Set(sorted.slice(0, 1).map(workloadKeyOf));
}

describe('rollout planner: order and limits', () => {
  it('restarts the canary namespace first, alone, then waves of 1, 2, 4 up to maxConcurrent', () => {
    const cluster = new FakeCluster(fleet([
      ['canary/a', 3, { canary: true }], ['team1/b', 2], ['team1/c', 2], ['team2/d', 1], ['team2/e', 5],
      ['team3/f', 2], ['team3/g', 2], ['team4/h', 2], ['team5/i', 2], ['team6/j', 2], ['team7/k', 2], ['team8/l', 2],
    ]));
    const { last } = drive(cluster, { paused: false });
    assert.equal(last.complete, true);
    assert.equal(cluster.log[0]!.key, 'canary/Deployment/a', 'the canary namespace first');
    assert.ok(cluster.log.slice(1).every((r) => r.canariesDone), 'nothing else before the canary is done');
    // Restart times group into waves; their sizes grow 1, 2, 4 (maxConcurrent 4), never beyond.
    const waves = new Map<number, number>();
    for (const r of cluster.log.slice(1)) waves.set(r.at, (waves.get(r.at) ?? 0) + 1);
    const sizes = [...waves.values()];
    assert.deepEqual(sizes.slice(0, 2), [1, 2], `waves ${sizes.join(',')}`);
    assert.ok(Math.max(...sizes) <= 4);
    assert.ok(sizes.includes(4) || sizes.length > 3, `waves ${sizes.join(',')}`);
    for (const n of cluster.restarts.values()) assert.equal(n, 1, 'each workload restarted once');
    assert.equal(cluster.restarts.size, 12);
  });

  it('without a canary namespace the smallest stale workload goes first', () => {
    const cluster = new FakeCluster(fleet([['a/big', 9], ['b/small', 1], ['c/mid', 4]]));
    drive(cluster, { paused: false });
    assert.equal(cluster.log[0]!.key, 'b/Deployment/small');
    assert.equal(cluster.log[1]!.at > cluster.log[0]!.at, true);
  });

  it('one workload at a time per namespace, even with room cluster-wide', () => {
    const cluster = new FakeCluster(fleet([['one/a', 1], ['one/b', 1], ['one/c', 1], ['one/d', 1]]));
    const { last } = drive(cluster, { paused: false });
    assert.equal(last.complete, true);
    const times = cluster.log.map((r) => r.at);
    assert.equal(new Set(times).size, 4, 'four restarts at four different times');
  });

  it('a workload counts as done only after soakSeconds of Ready sidecars with no restart', () => {
    const cluster = new FakeCluster(fleet([['a/x', 1], ['b/y', 1]]));
    let plan = planRollout({ target: NEW, workloads: cluster.views(), state: { paused: false }, limits: LIMITS, now: cluster.now });
    assert.deepEqual(plan.restart, ['a/Deployment/x']);
    cluster.restart('a/Deployment/x');
    cluster.advance(10_000); // Ready now
    plan = planRollout({ target: NEW, workloads: cluster.views(), state: plan.next, limits: LIMITS, now: cluster.now });
    assert.equal(plan.verdicts.get('a/Deployment/x')!.state, 'in-progress');
    assert.match(plan.verdicts.get('a/Deployment/x')!.detail!, /soaking \(0 of 30 s\)/);
    assert.deepEqual(plan.restart, [], 'the canary soaks before anything else');
    cluster.advance(29_000);
    assert.deepEqual(planRollout({ target: NEW, workloads: cluster.views(), state: plan.next, limits: LIMITS, now: cluster.now }).restart, []);
    cluster.advance(1_000);
    plan = planRollout({ target: NEW, workloads: cluster.views(), state: plan.next, limits: LIMITS, now: cluster.now });
    assert.equal(plan.verdicts.get('a/Deployment/x')!.state, 'done');
    assert.deepEqual(plan.restart, ['b/Deployment/y']);
  });

  it('a sidecar restart during the soak keeps it in progress, then fails it at the deadline', () => {
    const view: WorkloadView = { kind: 'Deployment', namespace: 'a', name: 'x', size: 1, manual: false, canary: false, restartedFor: targetKey(NEW), restartedAt: 0, complete: true, progressDeadlineExceeded: false,
      pods: [{ name: 'x-1', current: true, stale: false, sidecarReady: true, restartCount: 1, runningSince: 0 }] };
    assert.equal(planRollout({ target: NEW, workloads: [view], state: { paused: false }, limits: LIMITS, now: 60_000 }).verdicts.get('a/Deployment/x')!.state, 'in-progress');
    const late = planRollout({ target: NEW, workloads: [view], state: { paused: false }, limits: LIMITS, now: 300_000 });
    assert.equal(late.pause?.reason, 'SidecarRestarted');
    assert.equal(late.pause?.pod, 'x-1');
  });

  it('manual workloads are only reported; skipped ones are left alone; both do not block completion', () => {
    const cluster = new FakeCluster(fleet([['a/x', 1, { manual: true }], ['b/y', 1]]));
    const views = cluster.views();
    views.push({ ...views[1]!, namespace: 'kube-system', skip: 'namespace-excluded' });
    const plan = planRollout({ target: NEW, workloads: views, state: { paused: false }, limits: LIMITS, now: cluster.now });
    assert.equal(plan.verdicts.get('a/Deployment/x')!.state, 'manual');
    assert.equal(plan.verdicts.get('kube-system/Deployment/y')!.state, 'skipped');
    assert.deepEqual(plan.restart, ['b/Deployment/y']);
    const { last } = drive(cluster, { paused: false });
    assert.equal(last.complete, true);
    assert.equal(cluster.restarts.has(`${targetKey(NEW)} a/Deployment/x`), false);
  });

  it('workloads whose pods already run the target are done and never restarted', () => {
    const cluster = new FakeCluster(fleet([['a/x', 2]]));
    cluster.workloads[0]!.running = NEW;
    const plan = planRollout({ target: NEW, workloads: cluster.views(), state: { paused: false }, limits: LIMITS, now: cluster.now });
    assert.deepEqual(plan.restart, []);
    assert.equal(plan.complete, true);
    assert.equal(plan.next.target, targetKey(NEW));
  });
});

describe('rollout planner: failure, pause and resume', () => {
  it('a crash-looping canary pauses the rollout cluster-wide and names workload, pod and reason; nothing else is touched', () => {
    const cluster = new FakeCluster(fleet([['canary/a', 1, { canary: true }], ['b/x', 1], ['c/y', 1], ['d/z', 1]]), new Set([targetKey(NEW)]));
    const { state, last } = drive(cluster, { paused: false });
    assert.equal(state.paused, true);
    assert.deepEqual(last.pause && { workload: last.pause.workload, pod: last.pause.pod, reason: last.pause.reason }, { workload: 'canary/Deployment/a', pod: 'a-0', reason: 'CrashLoopBackOff' });
    assert.deepEqual([...cluster.restarts.keys()], [`${targetKey(NEW)} canary/Deployment/a`]);
    // Paused: later passes restart nothing, however long.
    const again = drive(cluster, state, LIMITS, 50);
    assert.equal(again.last.restart.length, 0);
    assert.equal(cluster.restarts.size, 1);
    assert.equal(again.last.verdicts.get('b/Deployment/x')!.state, 'waiting');
  });

  it('progressDeadlineExceeded and ImagePullBackOff are failures; a pending pod is not', () => {
    const base: WorkloadView = { kind: 'Deployment', namespace: 'a', name: 'x', size: 1, manual: false, canary: false, restartedFor: targetKey(NEW), restartedAt: 0, complete: false, progressDeadlineExceeded: false, pods: [{ name: 'x-1', current: true, stale: false, sidecarReady: false, restartCount: 0, problem: 'ContainerCreating' }] };
    const at = (w: WorkloadView) => planRollout({ target: NEW, workloads: [w], state: { paused: false }, limits: LIMITS, now: 1000 });
    assert.equal(at(base).pause, undefined);
    assert.equal(at({ ...base, progressDeadlineExceeded: true }).pause?.reason, 'ProgressDeadlineExceeded');
    assert.equal(at({ ...base, pods: [{ ...base.pods[0]!, problem: 'ImagePullBackOff' }] }).pause?.reason, 'ImagePullBackOff');
    assert.equal(at({ ...base, pods: [{ ...base.pods[0]!, problem: 'OOMKilled' }] }).pause?.reason, 'OOMKilled');
    // Every reason the watchdog counts as sidecar-failing pauses at once (before: only at readyDeadline).
    assert.equal(at({ ...base, pods: [{ ...base.pods[0]!, problem: 'CreateContainerConfigError' }] }).pause?.reason, 'CreateContainerConfigError');
    assert.equal(at({ ...base, pods: [{ ...base.pods[0]!, problem: 'InvalidImageName' }] }).pause?.reason, 'InvalidImageName');
    // An old pod's trouble is not the new version's.
    assert.equal(at({ ...base, pods: [{ ...base.pods[0]!, current: false, stale: true, problem: 'CrashLoopBackOff' }] }).pause, undefined);
  });

  it('resume after a fixed version continues: the failed canary is restarted for the new target, then the rest', () => {
    const cluster = new FakeCluster(fleet([['canary/a', 1, { canary: true }], ['b/x', 1], ['c/y', 2], ['d/z', 1]]), new Set([targetKey(NEW)]));
    const paused = drive(cluster, { paused: false }).state;
    assert.equal(paused.paused, true);
    cluster.current = FIXED; // helm upgrade with a corrected version
    const stillPaused = drive(cluster, paused, LIMITS, 5);
    assert.equal(cluster.restarts.size, 1, 'a new target alone does not resume');
    const resumed: PersistedState = { target: stillPaused.state.target!, paused: false }; // pando rollout resume
    const before = cluster.log.length;
    const { last } = drive(cluster, resumed);
    assert.equal(last.complete, true);
    assert.equal(cluster.log[before]!.key, 'canary/Deployment/a', 'the canary first again');
    for (const k of ['canary/Deployment/a', 'b/Deployment/x', 'c/Deployment/y', 'd/Deployment/z']) assert.equal(cluster.restarts.get(`${targetKey(FIXED)} ${k}`), 1, k);
  });

  it('an operator pause (no failure) stops restarts; resume continues', () => {
    const cluster = new FakeCluster(fleet([['a/x', 1], ['b/y', 1], ['c/z', 1]]));
    let plan = planRollout({ target: NEW, workloads: cluster.views(), state: { paused: true }, limits: LIMITS, now: cluster.now });
    assert.deepEqual(plan.restart, []);
    assert.equal(plan.wait, 'paused by an operator');
    plan = planRollout({ target: NEW, workloads: cluster.views(), state: { paused: false }, limits: LIMITS, now: cluster.now });
    assert.equal(plan.restart.length, 1);
  });
});

describe('rollout planner: extractors', () => {
  it('rolloutComplete follows kubectl rollout status', () => {
    const d = { metadata: { generation: 2 }, spec: { replicas: 3 }, status: { observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3 } };
    assert.equal(rolloutComplete('Deployment', d), true);
    assert.equal(rolloutComplete('Deployment', { ...d, status: { ...d.status, observedGeneration: 1 } }), false, 'generation not observed');
    assert.equal(rolloutComplete('Deployment', { ...d, status: { ...d.status, replicas: 4 } }), false, 'an old replica left');
    assert.equal(rolloutComplete('Deployment', { ...d, status: { ...d.status, availableReplicas: 2 } }), false);
    const s = { metadata: { generation: 1 }, spec: { replicas: 2 }, status: { observedGeneration: 1, readyReplicas: 2, currentRevision: 'r2', updateRevision: 'r2' } };
    assert.equal(rolloutComplete('StatefulSet', s), true);
    assert.equal(rolloutComplete('StatefulSet', { ...s, status: { ...s.status, currentRevision: 'r1' } }), false);
    const ds = { metadata: { generation: 1 }, status: { observedGeneration: 1, desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 3 } };
    assert.equal(rolloutComplete('DaemonSet', ds), true);
    assert.equal(rolloutComplete('DaemonSet', { ...ds, status: { ...ds.status, numberAvailable: 2 } }), false);
  });

  it('podHealth reads the native sidecar from initContainerStatuses', () => {
    const pod = {
      metadata: { name: 'p', annotations: { 'pandocore.xyz/status': 'injected', 'pandocore.xyz/version': '2.0.0', 'pandocore.xyz/config-hash': 'bbbbbbbbbbbb' } },
      status: { initContainerStatuses: [{ name: 'pando-sidecar', ready: false, restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff' } } }] },
    };
    assert.deepEqual(podHealth(pod, NEW, 'pando-sidecar'), { name: 'p', current: true, stale: false, sidecarReady: false, restartCount: 3, problem: 'CrashLoopBackOff' });
    assert.equal(podHealth(pod, OLD, 'pando-sidecar').stale, true);
  });

  it('a native sidecar that keeps exiting is in CrashLoopBackOff, though the kubelet leaves it terminated (Init:Error), never waiting', () => {
    // As the kubelet v1.37.2 on the e2e node reports it through the back-off (test/e2e/rollout-node.e2e.ts):
    // state terminated (Error, exit 1), restartCount growing; `kubectl get pods` shows Init:Error.
    const exited = { terminated: { reason: 'Error', exitCode: 1, startedAt: '2026-12-06T07:47:53Z', finishedAt: '2026-12-06T07:47:53Z' } };
    const pod = (restartCount: number) => ({
      metadata: { name: 'c1-new', annotations: { 'pandocore.xyz/status': 'injected', 'pandocore.xyz/version': '2.0.0', 'pandocore.xyz/config-hash': 'bbbbbbbbbbbb' } },
      status: { initContainerStatuses: [{ name: 'pando-sidecar', ready: false, restartCount, state: exited, lastState: exited }] },
    });
    const view = (restartCount: number): WorkloadView => ({
      kind: 'Deployment', namespace: 'canary', name: 'c1', size: 1, manual: false, canary: true, restartedFor: targetKey(NEW), restartedAt: 0, complete: false, progressDeadlineExceeded: false,
      pods: [podHealth(pod(restartCount), NEW, 'pando-sidecar')],
    });
    const at = (w: WorkloadView) => planRollout({ target: NEW, workloads: [w], state: { paused: false }, limits: LIMITS, now: 10_000 });
    assert.equal(at(view(0)).pause, undefined, 'exited once, not restarted yet: not a crash loop yet');
    const pause = at(view(2)).pause;
    assert.deepEqual(pause && { pod: pause.pod, reason: pause.reason }, { pod: 'c1-new', reason: 'CrashLoopBackOff' }, 'paused at once, not at readyDeadline');
    assert.match(pause!.message, /CrashLoopBackOff: it exited with code 1 \(Error\), restarted 2 time\(s\)/);
  });
});

// Properties over random fleets (sizes, namespaces, canary and manual flags, readiness delays) and limits.
const fleetArb = fc.array(
  fc.record({ ns: fc.integer({ min: 0, max: 5 }), size: fc.integer({ min: 1, max: 6 }), manual: fc.boolean(), canary: fc.boolean(), readyAfter: fc.integer({ min: 0, max: 60_000 }) }),
  { minLength: 1, maxLength: 25 },
).map((items) => items.map((x, i) => ({ namespace: `ns${x.ns}`, name: `w${i}`, size: x.size, manual: x.manual && i % 4 === 0, canary: x.canary && x.ns === 0, running: OLD, readyAfter: x.readyAfter, complete: true, since: 0 }) as FakeWorkload));
const limitsArb = fc.record({ maxConcurrent: fc.integer({ min: 1, max: 8 }), soakMs: fc.integer({ min: 0, max: 60_000 }), readyDeadlineMs: fc.constant(600_000) });

describe('rollout planner: properties', () => {
  it('limits hold, canaries go first, each workload is restarted once, and a good target completes', () => {
    fc.assert(fc.property(fleetArb, limitsArb, (workloads, limits) => {
      const cluster = new FakeCluster(workloads);
      const { last } = drive(cluster, { paused: false }, limits, 2_000);
      assert.equal(last.complete, true, 'complete');
      for (const n of cluster.restarts.values()) assert.equal(n, 1, 'restarted once for one target');
      const firstOther = cluster.log.findIndex((r) => !r.canary);
      if (firstOther >= 0) assert.ok(cluster.log[firstOther]!.canariesDone, 'canary done before any other restart');
      const manual = workloads.filter((w) => w.manual).map((w) => `${w.namespace}/Deployment/${w.name}`);
      for (const k of manual) assert.equal(cluster.restarts.has(`${targetKey(NEW)} ${k}`), false, 'manual never restarted');
    }), { numRuns: 150 });
  });

  it('a bad target pauses after the canaries and restarts nothing else', () => {
    fc.assert(fc.property(fleetArb, limitsArb, (workloads, limits) => {
      const cluster = new FakeCluster(workloads, new Set([targetKey(NEW)]));
      const { state } = drive(cluster, { paused: false }, limits, 2_000);
      if (workloads.every((w) => w.manual)) return;
      assert.equal(state.paused, true);
      assert.ok(cluster.log.every((r) => r.canary), `only canaries restarted: ${cluster.log.map((r) => r.key).join(',')}`);
      const more = drive(cluster, state, limits, 20);
      assert.equal(more.last.restart.length, 0);
    }), { numRuns: 100 });
  });

  it('a new leader (same cluster, same persisted state, lists in any order) makes the same plan at every step', () => {
    fc.assert(fc.property(fleetArb, limitsArb, fc.integer({ min: 1, max: 40 }), fc.boolean(), (workloads, limits, steps, bad) => {
      const cluster = new FakeCluster(workloads, bad ? new Set([targetKey(NEW)]) : new Set());
      const { state } = drive(cluster, { paused: false }, limits, steps);
      const views = cluster.views();
      const a = planRollout({ target: NEW, workloads: views, state, limits, now: cluster.now });
      const b = planRollout({ target: NEW, workloads: [...views].reverse(), state: JSON.parse(JSON.stringify(state)) as PersistedState, limits, now: cluster.now });
      assert.deepEqual(b.restart, a.restart);
      assert.deepEqual(b.pause, a.pause);
      assert.deepEqual([...b.verdicts.entries()].sort(), [...a.verdicts.entries()].sort());
    }), { numRuns: 150 });
  });
});
