// The rollout controller's passes (app/controllers/rollout.ts createRolloutCore) with the API server
// replaced by a fake cluster: raw objects made slim as the lists do, the ConfigMap state, restarts
// recorded, Events and gauges. The planner's own rules: rollout-plan.test.ts; the real API server:
// test/e2e/rollout.e2e.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { buildViews, createRolloutCore, createRolloutMetrics, restartPatch, slimRolloutPod, slimWorkload, type ClusterSnapshot, type WorkloadPatcher } from '../../app/controllers/rollout.ts';
import { decodeState, encodeState, type RolloutStore } from '../../app/controllers/rollout-state.ts';
import type { PersistedState, Target } from '../../app/controllers/rollout-plan.ts';
import type { EventRecord } from '../../app/controllers/watchdog.ts';
import type { RolloutConfig } from '../../app/config.ts';

const OLD: Target = { version: '1.0.0', configHash: 'aaaaaaaaaaaa' };
const NEW: Target = { version: '2.0.0', configHash: 'bbbbbbbbbbbb' };
const CONFIG: RolloutConfig = { maxConcurrent: 2, soakMs: 10_000, readyDeadlineMs: 120_000, canarySelector: 'pandocore.xyz/rollout-canary=true', intervalMs: 1000 };

interface FakeDeployment { namespace: string; name: string; replicas: number; running: Target; template: Record<string, string>; ready: boolean; crash?: boolean; manual?: boolean; since?: string }

class Fake {
  now = Date.parse('2026-12-01T00:00:00Z');
  state: PersistedState | undefined = { paused: false };
  rv = 1;
  deployments: FakeDeployment[] = [];
  canary = new Set<string>();
  patches: Array<{ key: string; body: any }> = [];
  events: EventRecord[] = [];
  logs: string[] = [];
  registry = new Registry();
  metrics = createRolloutMetrics(this.registry);

  snapshot(): ClusterSnapshot {
    const replicaSetOwners = new Map<string, string>();
    const pods = [];
    const workloads = [];
    for (const d of this.deployments) {
      replicaSetOwners.set(`${d.namespace}/${d.name}-rs`, d.name);
      const complete = d.ready;
      workloads.push(slimWorkload('Deployment', {
        metadata: { name: d.name, namespace: d.namespace, uid: `uid-${d.name}`, generation: 2, labels: d.manual ? { 'pandocore.xyz/rollout': 'manual' } : {}, annotations: {} },
        spec: { replicas: d.replicas, template: { metadata: { annotations: d.template } } },
        status: { observedGeneration: 2, replicas: d.replicas, updatedReplicas: complete ? d.replicas : 0, availableReplicas: complete ? d.replicas : 0 },
      }));
      for (let i = 0; i < d.replicas; i++) {
        pods.push(slimRolloutPod({
          metadata: { name: `${d.name}-${i}`, namespace: d.namespace, annotations: { 'pandocore.xyz/status': 'injected', 'pandocore.xyz/version': d.running.version, 'pandocore.xyz/config-hash': d.running.configHash, other: 'x' }, ownerReferences: [{ kind: 'ReplicaSet', name: `${d.name}-rs`, controller: true }] },
          status: { initContainerStatuses: [{ name: 'pando-sidecar', ready: d.ready && !d.crash, restartCount: d.crash ? 2 : 0, state: d.crash ? { waiting: { reason: 'CrashLoopBackOff' } } : { running: { startedAt: d.since ?? '2026-11-01T00:00:00Z' } } }] },
        }));
      }
    }
    return { workloads, pods, replicaSetOwners, canaryNamespaces: this.canary };
  }

  store(): RolloutStore {
    return {
      read: async () => (this.state ? { state: decodeState(encodeState(this.state)), resourceVersion: String(this.rv) } : undefined),
      write: async (state, rv) => {
        if (rv !== String(this.rv)) return false;
        this.state = state;
        this.rv++;
        return true;
      },
    };
  }

  patcher(bad = false): WorkloadPatcher {
    return {
      restart: async (w, target, at) => {
        const d = this.deployments.find((x) => x.namespace === w.namespace && x.name === w.name)!;
        if (d.template['pandocore.xyz/rollout-target'] === target) return 'already';
        const body = restartPatch(w, target, at) as any;
        this.patches.push({ key: `${w.namespace}/${w.name}`, body });
        Object.assign(d.template, body.spec.template.metadata.annotations);
        // The new pods come up at once (the test advances the clock for the soak).
        d.running = NEW;
        d.ready = !bad;
        d.crash = bad;
        d.since = new Date(this.now).toISOString();
        return 'restarted';
      },
    };
  }

  core(bad = false) {
    return createRolloutCore({
      target: NEW, config: CONFIG,
      skipNamespace: (ns) => (ns === 'kube-system' ? 'namespace-excluded' : undefined),
      snapshot: async () => this.snapshot(), store: this.store(), patcher: this.patcher(bad),
      events: async (e) => void this.events.push(e), metrics: this.metrics,
      log: { info: (_o, m) => void this.logs.push(m), warn: (_o, m) => void this.logs.push(m) },
      now: () => this.now,
    });
  }
}

function fleet(f: Fake, names: string[]) {
  for (const id of names) {
    const [namespace, name] = id.split('/') as [string, string];
    f.deployments.push({ namespace, name, replicas: 2, running: OLD, template: {}, ready: true });
  }
}

describe('rollout controller', () => {
  it('restarts with exactly the two template annotations, canary first, and persists the target', async () => {
    const f = new Fake();
    fleet(f, ['canary/a', 'b/x', 'c/y']);
    f.canary.add('canary');
    const core = f.core();
    await core.pass();
    assert.deepEqual(f.patches.map((p) => p.key), ['canary/a']);
    assert.deepEqual(f.patches[0]!.body.spec, { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-12-01T00:00:00Z', 'pandocore.xyz/rollout-target': '2.0.0/bbbbbbbbbbbb' } } } });
    assert.equal(f.state!.target, '2.0.0/bbbbbbbbbbbb');
    assert.equal(f.events[0]!.reason, 'RolloutRestart');
    await core.pass();
    assert.equal(f.patches.length, 1, 'soaking: nothing else yet, canary not restarted twice');
    f.now += 10_000;
    await core.pass();
    assert.deepEqual(f.patches.map((p) => p.key), ['canary/a', 'b/x'], 'wave of 1 after the canary');
    f.now += 10_000;
    await core.pass();
    f.now += 10_000;
    const plan = await core.pass();
    assert.deepEqual(f.patches.map((p) => p.key), ['canary/a', 'b/x', 'c/y']);
    assert.equal(plan!.complete, true);
    const text = await f.registry.metrics();
    assert.match(text, /pandocore_rollout_workloads\{state="done"\} 3/);
    assert.match(text, /pandocore_rollout_paused 0/);
  });

  it('a crash-looping canary: paused in the ConfigMap, a RolloutPaused Event naming pod and reason, nothing else restarted', async () => {
    const f = new Fake();
    fleet(f, ['canary/a', 'b/x', 'c/y']);
    f.canary.add('canary');
    const core = f.core(true);
    await core.pass();
    const plan = await core.pass();
    assert.equal(plan!.pause?.reason, 'CrashLoopBackOff');
    assert.equal(f.state!.paused, true);
    assert.deepEqual({ workload: f.state!.failure!.workload, pod: f.state!.failure!.pod }, { workload: 'canary/Deployment/a', pod: 'a-0' });
    const paused = f.events.find((e) => e.reason === 'RolloutPaused')!;
    assert.deepEqual(paused.involved, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'a', uid: 'uid-a' });
    assert.match(paused.message, /pod a-0: CrashLoopBackOff/);
    assert.match(paused.message, /pando rollout resume/);
    f.now += 3_600_000;
    await core.pass();
    await core.pass();
    assert.deepEqual(f.patches.map((p) => p.key), ['canary/a']);
    assert.match(await f.registry.metrics(), /pandocore_rollout_paused 1/);
    assert.equal(f.events.filter((e) => e.reason === 'RolloutPaused').length, 1, 'one Event per pause');
  });

  it('without its ConfigMap it restarts nothing and says so once', async () => {
    const f = new Fake();
    fleet(f, ['b/x']);
    f.state = undefined;
    const core = f.core();
    await core.pass();
    await core.pass();
    assert.equal(f.patches.length, 0);
    assert.equal(f.logs.filter((m) => /ConfigMap is missing/.test(m)).length, 1);
  });

  it('a pause written between read and write (pando rollout pause) wins: no restart in that pass', async () => {
    const f = new Fake();
    fleet(f, ['b/x']);
    const store = f.store();
    const core = createRolloutCore({
      target: NEW, config: CONFIG, skipNamespace: () => undefined, snapshot: async () => f.snapshot(),
      store: { read: store.read, write: async (s, rv) => { f.state = { paused: true }; f.rv++; return store.write(s, rv); } },
      patcher: f.patcher(), events: async () => undefined, metrics: f.metrics, log: { info() {}, warn() {} }, now: () => f.now,
    });
    await core.pass();
    assert.equal(f.patches.length, 0);
    assert.equal(f.state!.paused, true);
  });

  it('a new leader (a fresh core on the same cluster and ConfigMap) continues without restarting anything twice', async () => {
    const f = new Fake();
    fleet(f, ['a/x', 'b/y', 'c/z', 'd/w']);
    await f.core().pass();
    f.now += 10_000;
    await f.core().pass();
    f.now += 10_000;
    await f.core().pass();
    f.now += 10_000;
    await f.core().pass();
    f.now += 10_000;
    await f.core().pass();
    const keys = f.patches.map((p) => p.key);
    assert.equal(new Set(keys).size, keys.length, `no workload twice: ${keys.join(',')}`);
    assert.equal(keys.length, 4);
  });

  it('clear() (leadership lost) drops a pass in flight and removes the gauges', async () => {
    const f = new Fake();
    fleet(f, ['b/x']);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const core = createRolloutCore({
      target: NEW, config: CONFIG, skipNamespace: () => undefined,
      snapshot: async () => { await gate; return f.snapshot(); },
      store: f.store(), patcher: f.patcher(), events: async () => undefined, metrics: f.metrics, log: { info() {}, warn() {} }, now: () => f.now,
    });
    const running = core.pass();
    await new Promise((r) => setImmediate(r));
    core.clear();
    release();
    assert.equal(await running, undefined);
    assert.equal(f.patches.length, 0);
    assert.doesNotMatch(await f.registry.metrics(), /pandocore_rollout_workloads\{/);
  });

  it('buildViews: pods through their ReplicaSet, manual label, skipped namespaces, workloads without injected pods left out', () => {
    const f = new Fake();
    fleet(f, ['a/x', 'kube-system/y']);
    f.deployments[0]!.manual = true;
    const snap = f.snapshot();
    snap.workloads.push(slimWorkload('Deployment', { metadata: { name: 'plain', namespace: 'a' }, spec: { replicas: 1 }, status: {} }));
    const views = buildViews(snap, NEW, (ns) => (ns === 'kube-system' ? 'namespace-excluded' : undefined));
    assert.deepEqual(views.map((v) => [v.name, v.manual, v.skip ?? '', v.pods.length, v.pods[0]!.stale]), [['x', true, '', 2, true], ['y', false, 'namespace-excluded', 2, true]]);
  });
});
