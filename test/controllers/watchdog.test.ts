// The watchdog's passes (app/controllers/watchdog.ts createWatchdogCore) with the API server
// replaced by recorders: what it counts, logs and records as Events, and which workloads it
// restarts within the rate limits. The real list-watch, Events and restarts: test/e2e/watchdog.e2e.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { loadConfig, type WatchdogConfig } from '../../app/config.ts';
import { RestartBudget, type Workload } from '../../app/controllers/heal.ts';
import { createWatchdogCore, createWatchdogMetrics, type EventRecord } from '../../app/controllers/watchdog.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { mutate } from '../../app/inject/mutate.ts';
import { slimPod, type SlimPod } from '../../app/pods/classify.ts';

const PLAN = planInjection(loadConfig({ PANDO_NAMESPACE: 'pando-system', PANDO_EXCLUDED_NAMESPACES: 'kube-system,quiet' }));
const NEWER = planInjection(loadConfig({ PANDO_NAMESPACE: 'pando-system', PANDO_EXCLUDED_NAMESPACES: 'kube-system,quiet', PANDO_SIDECAR_IMAGE: 'registry.pandocore.xyz/pandocore/sidecar:2.0.0' }));

let serial = 0;
function pod(namespace: string, name: string, owner?: { kind: string; name: string }): SlimPod {
  return slimPod({
    metadata: {
      name, namespace, uid: `uid-${++serial}-${name}`, labels: { 'pandocore.xyz/protect': 'true' },
      ...(owner ? { ownerReferences: [{ kind: owner.kind, name: owner.name, uid: `owner-${owner.name}`, controller: true }] } : {}),
    },
    spec: { containers: [{ name: 'app', image: 'app:1' }] },
    status: { phase: 'Pending' },
  });
}

function injected(p: SlimPod): SlimPod {
  const full = { apiVersion: 'v1', kind: 'Pod', metadata: p.metadata, spec: p.spec };
  const result = mutate(structuredClone(full), 'monitor', PLAN);
  return slimPod({ ...result.pod, metadata: { ...result.pod.metadata, ownerReferences: p.metadata.controller ? [{ ...p.metadata.controller, controller: true }] : [] }, status: p.status });
}

function harness(config: Partial<WatchdogConfig> = {}, plan = PLAN) {
  const registry = new Registry();
  const metrics = createWatchdogMetrics(registry);
  const events: EventRecord[] = [];
  const logs: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  const restarts: string[] = [];
  const stamps = new Map<string, number>();
  let clock = Date.parse('2026-11-24T12:00:00Z');
  const core = createWatchdogCore({
    plan,
    config: { heal: 'off', restartStale: false, restartsPerMinute: 5, workloadCooldownMs: 600_000, resyncMs: 60_000, ...config },
    metrics,
    log: { info: (obj, msg) => logs.push({ obj: obj as never, msg }), warn: (obj, msg) => logs.push({ obj: obj as never, msg }) },
    events: async (e) => {
      if (!events.some((x) => x.name === e.name)) events.push(e); // the API server's 409 on a second create
    },
    // ReplicaSet web-abc belongs to Deployment web, as the controller-manager names them.
    resolveWorkload: async (namespace, ref) => (ref.kind === 'ReplicaSet' ? { kind: 'Deployment', name: ref.name.replace(/-[a-z0-9]+$/, ''), namespace } : { kind: ref.kind, name: ref.name, namespace }),
    restarter: {
      lastRestart: async (w: Workload) => stamps.get(`${w.namespace}/${w.kind}/${w.name}`),
      restart: async (w: Workload, at: Date) => {
        restarts.push(`${w.kind}/${w.name}`);
        stamps.set(`${w.namespace}/${w.kind}/${w.name}`, at.getTime());
      },
    },
    now: () => clock,
  });
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((s, v) => s + v.value, 0);
  };
  return { core, events, logs, restarts, stamps, metric, registry, advance: (ms: number) => (clock += ms) };
}

describe('watchdog', () => {
  it('reports a Deployment of 3 and a bare pod created without the sidecar: gauges 4, one log line and Event each, one Event on the Deployment', async () => {
    const h = harness();
    const web = [1, 2, 3].map((i) => pod('shop', `web-abc-${i}`, { kind: 'ReplicaSet', name: 'web-abc' }));
    h.core.replaced([...web, pod('shop', 'bare'), injected(pod('shop', 'fine')), pod('quiet', 'excluded')]);
    await h.core.pass(true);
    assert.deepEqual(h.core.counts(), { protected: 1, stale: 0, unprotected: 4, skipped: 1, 'sidecar-failing': 0 });
    assert.equal(await h.metric('pandocore_pods', { state: 'unprotected' }), 4);
    assert.equal(await h.metric('pandocore_pods', { state: 'skipped' }), 1);
    assert.equal(await h.metric('pandocore_unprotected_pods', { namespace: 'shop' }), 4);
    assert.equal(await h.metric('pandocore_unprotected_pods', { namespace: 'quiet' }), 0);
    const missing = h.events.filter((e) => e.reason === 'SidecarMissing');
    assert.deepEqual(missing.map((e) => `${e.involved.kind}/${e.involved.name}`).sort(), ['Deployment/web', 'Pod/bare', 'Pod/web-abc-1', 'Pod/web-abc-2', 'Pod/web-abc-3']);
    assert.ok(missing.every((e) => e.type === 'Warning' && e.message.includes('fix: kubectl ')), 'each Event names the fix');
    assert.match(missing.find((e) => e.involved.name === 'web')!.message, /fix: kubectl rollout restart deployment\/web -n shop/);
    assert.equal(h.logs.filter((l) => l.msg === 'watchdog: labelled pod runs without the sidecar').length, 4);
    assert.deepEqual(h.restarts, [], 'heal is off by default');

    // Deduplicated: another pass (a resync) reports nothing new.
    await h.core.pass(true);
    assert.equal(h.events.length, 5);
    assert.equal(h.logs.filter((l) => l.msg === 'watchdog: labelled pod runs without the sidecar').length, 4);
  });

  it('a new unprotected pod from the watch is reported; a deleted one leaves the gauge', async () => {
    const h = harness();
    h.core.replaced([]);
    await h.core.pass(true);
    const late = pod('shop', 'late');
    h.core.upserted(late);
    await h.core.pass();
    assert.equal(await h.metric('pandocore_unprotected_pods', { namespace: 'shop' }), 1);
    assert.equal(h.events.length, 1);
    h.core.deleted(late.metadata.uid);
    await h.core.pass();
    assert.equal(await h.metric('pandocore_pods', { state: 'unprotected' }), 0);
    assert.equal((await h.registry.getMetricsAsJSON()).find((m) => m.name === 'pandocore_unprotected_pods')!.values.length, 0, 'no series for namespaces without unprotected pods');
  });

  it('heal=restart: restarts each Deployment, StatefulSet and DaemonSet once; never bare pods, Jobs or skipped pods', async () => {
    const h = harness({ heal: 'restart' });
    h.core.replaced([
      pod('shop', 'web-abc-1', { kind: 'ReplicaSet', name: 'web-abc' }),
      pod('shop', 'web-abc-2', { kind: 'ReplicaSet', name: 'web-abc' }),
      pod('shop', 'db-0', { kind: 'StatefulSet', name: 'db' }),
      pod('shop', 'agent-x', { kind: 'DaemonSet', name: 'agent' }),
      pod('shop', 'bare'),
      pod('shop', 'batch-x', { kind: 'Job', name: 'batch' }),
      pod('quiet', 'web-def-1', { kind: 'ReplicaSet', name: 'web-def' }),
    ]);
    await h.core.pass(true);
    assert.deepEqual(h.restarts.sort(), ['DaemonSet/agent', 'Deployment/web', 'StatefulSet/db']);
    assert.equal(await h.metric('pandocore_watchdog_restarts_total'), 3);
    assert.equal(await h.metric('pandocore_watchdog_restarts_total', { kind: 'Deployment' }), 1);
    assert.equal(h.events.filter((e) => e.reason === 'SidecarRestart').length, 3);
    // The old pods are still there while the rollout runs: no second restart within the cooldown.
    h.advance(120_000);
    await h.core.pass(true);
    assert.equal(h.restarts.length, 3);
  });

  it('rate limit: 8 unprotected Deployments, 5 a minute: exactly 5 in the first minute, the other 3 after', async () => {
    const h = harness({ heal: 'restart', restartsPerMinute: 5 });
    h.core.replaced(Array.from({ length: 8 }, (_, i) => pod('shop', `app${i}-abc-1`, { kind: 'ReplicaSet', name: `app${i}-abc` })));
    await h.core.pass(true);
    assert.equal(h.restarts.length, 5);
    h.advance(30_000);
    await h.core.pass(true);
    assert.equal(h.restarts.length, 5, 'still within the first minute');
    h.advance(30_000);
    await h.core.pass(true);
    assert.equal(h.restarts.length, 8);
    assert.equal(new Set(h.restarts).size, 8, 'no workload twice');
  });

  it('a workload restarted moments ago (by another leader or a person) is not restarted again', async () => {
    const h = harness({ heal: 'restart' });
    h.stamps.set('shop/Deployment/web', Date.parse('2026-11-24T11:59:00Z'));
    h.core.replaced([pod('shop', 'web-abc-1', { kind: 'ReplicaSet', name: 'web-abc' })]);
    await h.core.pass(true);
    assert.deepEqual(h.restarts, []);
    h.advance(600_000);
    await h.core.pass(true);
    assert.deepEqual(h.restarts, ['Deployment/web']);
  });

  it('stale pods after an upgrade: counted, untouched by default, rolled with restartStale', async () => {
    const old = injected(pod('shop', 'web-abc-1', { kind: 'ReplicaSet', name: 'web-abc' }));
    const off = harness({ heal: 'restart' }, NEWER);
    off.core.replaced([old]);
    await off.core.pass(true);
    assert.deepEqual(off.core.counts(), { protected: 0, stale: 1, unprotected: 0, skipped: 0, 'sidecar-failing': 0 });
    assert.deepEqual(off.restarts, []);
    assert.equal(off.events.length, 0, 'stale pods are counted, not reported as missing');
    const on = harness({ restartStale: true }, NEWER);
    on.core.replaced([old]);
    await on.core.pass(true);
    assert.deepEqual(on.restarts, ['Deployment/web']);
  });

  it('sidecar-failing: counted by reason, one SidecarFailing Event per pod and reason and one on the Deployment, logged once, never restarted (heal=restart)', async () => {
    const h = harness({ heal: 'restart' });
    const pullFailed = { phase: 'Pending', initContainerStatuses: [{ name: 'pando-sidecar', ready: false, restartCount: 0, state: { waiting: { reason: 'ErrImagePull', message: 'failed to pull and unpack image "x": connection refused' } } }] };
    const backOff = { phase: 'Pending', initContainerStatuses: [{ name: 'pando-sidecar', ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x"' } } }] };
    const running = { phase: 'Running', initContainerStatuses: [{ name: 'pando-sidecar', ready: true, restartCount: 0, state: { running: { startedAt: '2026-11-24T12:00:00Z' } } }] };
    const withStatus = (p: SlimPod, status: object) => injected({ ...p, status } as SlimPod);
    const web = [1, 2].map((i) => withStatus(pod('shop', `web-abc-${i}`, { kind: 'ReplicaSet', name: 'web-abc' }), pullFailed));
    // An unprotected pod of the same Deployment would have it restarted: not while its sidecar cannot start.
    const webBare = pod('shop', 'web-abc-3', { kind: 'ReplicaSet', name: 'web-abc' });
    const api = pod('shop', 'api-abc-1', { kind: 'ReplicaSet', name: 'api-abc' });
    // The unprotected pod first: the order of the pods does not decide what its Event says.
    h.core.replaced([webBare, ...web, api]);
    await h.core.pass(true);
    assert.deepEqual(h.core.counts(), { protected: 0, stale: 0, unprotected: 2, skipped: 0, 'sidecar-failing': 2 });
    // web's SidecarMissing Events do not tell to restart alone beside its SidecarFailing ones; api's do.
    const missing = (name: string) => h.events.find((e) => e.reason === 'SidecarMissing' && e.involved.name === name)!.message;
    for (const name of ['web', 'web-abc-3']) {
      assert.match(missing(name), /fix: first make the sidecar start \(it cannot in other pods of deployment\/web: ErrImagePull; see its SidecarFailing Event\), then kubectl rollout restart deployment\/web -n shop$/, name);
    }
    assert.match(missing('api'), /fix: kubectl rollout restart deployment\/api -n shop$/);
    assert.equal(await h.metric('pandocore_pods', { state: 'sidecar-failing' }), 2);
    assert.equal(await h.metric('pandocore_sidecar_failing_pods', { namespace: 'shop', reason: 'ErrImagePull' }), 2);
    const failing = () => h.events.filter((e) => e.reason === 'SidecarFailing');
    assert.deepEqual(failing().map((e) => `${e.involved.kind}/${e.involved.name}`).sort(), ['Deployment/web', 'Pod/web-abc-1', 'Pod/web-abc-2']);
    assert.ok(failing().every((e) => e.type === 'Warning'));
    assert.match(failing().find((e) => e.involved.name === 'web-abc-1')!.message, /cannot start: ErrImagePull \(kubelet: failed to pull .*connection refused\); fix: the sidecar image cannot be pulled.*the watchdog does not restart it/);
    assert.match(failing().find((e) => e.involved.kind === 'Deployment')!.message, /pod web-abc-\d of deployment\/web cannot start: ErrImagePull; fix: /);
    assert.deepEqual(h.restarts, ['Deployment/api'], 'web is not restarted, api (only unprotected) is');
    assert.equal(h.logs.filter((l) => /not restarting a workload whose sidecar cannot start/.test(l.msg)).length, 1);
    const logged = () => h.logs.filter((l) => /the sidecar of a labelled pod cannot start/.test(l.msg)).length;
    assert.equal(logged(), 2);

    // Another pass: nothing new, still no restart of web.
    const before = failing().length;
    h.advance(700_000); // past web's cooldown: still not restarted
    await h.core.pass(true);
    assert.equal(failing().length, before);
    assert.equal(logged(), 2, 'logged once per pod and reason, not every pass');
    assert.equal(h.logs.filter((l) => /not restarting a workload whose sidecar cannot start/.test(l.msg)).length, 1, 'the held-back restart is logged once, not every pass');
    assert.ok(!h.restarts.includes('Deployment/web'));

    // The kubelet backs off: a new reason, one more Event on the pod and one on the Deployment.
    h.core.upserted(withStatus(web[0]!, backOff));
    await h.core.pass();
    assert.deepEqual(failing().slice(3).map((e) => `${e.involved.kind}/${e.involved.name}`).sort(), ['Deployment/web', 'Pod/web-abc-1']);
    assert.equal(await h.metric('pandocore_sidecar_failing_pods', { namespace: 'shop', reason: 'ImagePullBackOff' }), 1);
    // And back to ErrImagePull: already reported for this pod.
    h.core.upserted(withStatus(web[0]!, pullFailed));
    await h.core.pass();
    assert.equal(failing().length, 5);

    // Fixed (the sidecar runs): no longer counted, no series left for it.
    for (const p of web) h.core.upserted(withStatus(p, running));
    await h.core.pass();
    assert.equal(h.core.counts()['sidecar-failing'], 0);
    assert.equal(h.core.counts().protected, 2);
    assert.equal((await h.registry.getMetricsAsJSON()).find((m) => m.name === 'pandocore_sidecar_failing_pods')!.values.length, 0);
    // Running for an instant, as a crash-looping native sidecar does at each restart: web is still
    // not restarted while a pod whose sidecar failed lives.
    h.advance(700_000);
    await h.core.pass(true);
    assert.ok(!h.restarts.includes('Deployment/web'), h.restarts.join(', '));
    // Those pods gone: the unprotected pod of web is healed as any other.
    for (const p of web) h.core.deleted(p.metadata.uid);
    await h.core.pass(true);
    assert.ok(h.restarts.includes('Deployment/web'), h.restarts.join(', '));
  });

  it('sidecar-failing Events are one line and the workload\'s names the fix once, with a termination message ending in a newline (as the stand-in writes it)', async () => {
    const h = harness();
    const exited = { terminated: { reason: 'Error', exitCode: 1, message: 'pando-sidecar: version=0.3.0-crash is built to crash; exiting 1\n' } };
    const crashing = injected({ ...pod('shop', 'crash-abc-1', { kind: 'ReplicaSet', name: 'crash-abc' }), status: { phase: 'Pending', initContainerStatuses: [{ name: 'pando-sidecar', ready: false, restartCount: 1, state: exited, lastState: exited }] } } as unknown as SlimPod);
    h.core.replaced([crashing]);
    await h.core.pass(true);
    const [onPod, onDeployment] = h.events.filter((e) => e.reason === 'SidecarFailing');
    assert.doesNotMatch(onPod!.message, /\n/);
    assert.match(onPod!.message, /CrashLoopBackOff: it exited with code 1 \(Error\), restarted 1 time\(s\) \(kubelet: pando-sidecar: version=0\.3\.0-crash is built to crash; exiting 1\); fix: the sidecar keeps exiting/);
    assert.equal(onDeployment!.message, 'the PandoCore sidecar of pod crash-abc-1 of deployment/crash cannot start: CrashLoopBackOff; fix: the sidecar keeps exiting: kubectl logs crash-abc-1 -n shop -c pando-sidecar --previous says why (license key, mode, version); the watchdog does not restart it: a new pod would get the same sidecar');
  });

  it('clear() (leadership lost) removes the gauges: only the leader reports', async () => {
    const h = harness();
    h.core.replaced([pod('shop', 'bare')]);
    await h.core.pass(true);
    h.core.clear();
    const values = (await h.registry.getMetricsAsJSON()).filter((m) => m.name.startsWith('pandocore_') && m.name !== 'pandocore_watchdog_restarts_total').flatMap((m) => m.values);
    assert.deepEqual(values, []);
  });
});

describe('restart budget', () => {
  it('at most N in any 60 s, each key once per cooldown', () => {
    const b = new RestartBudget(2, 600_000);
    assert.equal(b.refusal('a', 0), undefined);
    b.record('a', 0);
    assert.equal(b.refusal('a', 1000), 'cooling-down');
    b.record('b', 1000);
    assert.equal(b.refusal('c', 2000), 'rate-limited');
    assert.equal(b.refusal('c', 59_999), 'rate-limited');
    assert.equal(b.refusal('c', 61_000), undefined);
    assert.equal(b.refusal('a', 599_999), 'cooling-down');
    assert.equal(b.refusal('a', 600_000), undefined);
  });
});
