// Issue 23 (second adversarial review), the watchdog's part: the webhook's selectors (2), its own
// namespace budget (3), stale work after the Lease is lost (4), one pass at a time with the budget
// reserved before awaiting (8), reported workloads pruned (12), Event names within 253 characters.
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { loadConfig, type WatchdogConfig } from '../../app/config.ts';
import type { Workload } from '../../app/controllers/heal.ts';
import { startInformer } from '../../app/controllers/informer.ts';
import { createWatchdogCore, createWatchdogMetrics, eventName, type EventRecord } from '../../app/controllers/watchdog.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { slimPod, type ReadinessSource, type SlimPod } from '../../app/pods/classify.ts';
import { builtInNamespaceSelector, DEFAULT_OBJECT_SELECTOR } from '../../app/pods/selection.ts';

const PLAN = planInjection(loadConfig({ PANDO_NAMESPACE: 'pando-system', PANDO_EXCLUDED_NAMESPACES: 'kube-system' }));
const SELECTORS = {
  namespaceSelector: { ...builtInNamespaceSelector(['kube-system'], 'pando-system'), matchLabels: { tier: 'apps' } },
  objectSelector: DEFAULT_OBJECT_SELECTOR,
};
/** Namespace labels as the API server keeps them (kubernetes.io/metadata.name is always there). */
const NAMESPACES: Record<string, Record<string, string>> = {
  shop: { tier: 'apps' },
  optout: { tier: 'apps', 'pandocore.xyz/injection': 'disabled' },
  elsewhere: { tier: 'batch' },
};

let serial = 0;
function pod(namespace: string, name: string, owner?: { kind: string; name: string }): SlimPod {
  return slimPod({
    metadata: {
      name, namespace, uid: `uid-${++serial}-${name}`, labels: { 'pandocore.xyz/protect': 'true' },
      ...(owner ? { ownerReferences: [{ kind: owner.kind, name: owner.name, uid: `owner-${owner.name}`, controller: true }] } : {}),
    },
    spec: { containers: [{ name: 'app', image: 'app:1' }] },
    status: { phase: 'Running' },
  });
}

/** A promise that resolves when told to. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

function harness(config: Partial<WatchdogConfig> = {}, extra: { readiness?: ReadinessSource; lastRestart?: (w: Workload) => Promise<number | undefined> } = {}) {
  const registry = new Registry();
  const events: EventRecord[] = [];
  const restarts: string[] = [];
  const labelLookups: string[] = [];
  const stamps = new Map<string, number>();
  let clock = Date.parse('2026-12-03T12:00:00Z');
  const core = createWatchdogCore({
    plan: PLAN,
    config: { heal: 'restart', restartStale: false, restartsPerMinute: 5, workloadCooldownMs: 600_000, resyncMs: 60_000, ...SELECTORS, ...config },
    metrics: createWatchdogMetrics(registry),
    log: { info: () => undefined, warn: () => undefined },
    events: async (e) => {
      if (!events.some((x) => x.name === e.name)) events.push(e);
    },
    namespaceLabels: async (namespace: string) => {
      labelLookups.push(namespace);
      const labels = NAMESPACES[namespace];
      if (!labels) throw Object.assign(new Error('not found'), { code: 404 });
      return { ...labels, 'kubernetes.io/metadata.name': namespace };
    },
    ...(extra.readiness ? { readiness: extra.readiness } : {}),
    resolveWorkload: async (namespace, ref) => (ref.kind === 'ReplicaSet' ? { kind: 'Deployment', name: ref.name.replace(/-[a-z0-9]+$/, ''), namespace } : { kind: ref.kind, name: ref.name, namespace }),
    restarter: {
      lastRestart: extra.lastRestart ?? (async (w: Workload) => stamps.get(`${w.namespace}/${w.kind}/${w.name}`)),
      restart: async (w: Workload, at: Date) => {
        restarts.push(`${w.namespace}/${w.kind}/${w.name}`);
        stamps.set(`${w.namespace}/${w.kind}/${w.name}`, at.getTime());
      },
    },
    now: () => clock,
  } as Parameters<typeof createWatchdogCore>[0]);
  const series = async () => (await registry.getMetricsAsJSON()).filter((m) => m.name !== 'pandocore_watchdog_restarts_total').flatMap((m) => m.values);
  return { core, events, restarts, labelLookups, registry, series, advance: (ms: number) => (clock += ms) };
}

describe('watchdog and the webhook selectors (issue 23 item 2)', () => {
  it('a Deployment in a namespace opted out (injection: disabled) or outside webhook.namespaceSelector is skipped: not counted, no Event, never restarted', async () => {
    const h = harness();
    h.core.replaced([
      pod('optout', 'web-abc-1', { kind: 'ReplicaSet', name: 'web-abc' }),
      pod('optout', 'web-abc-2', { kind: 'ReplicaSet', name: 'web-abc' }),
      pod('elsewhere', 'job-abc-1', { kind: 'ReplicaSet', name: 'job-abc' }),
      pod('shop', 'api-abc-1', { kind: 'ReplicaSet', name: 'api-abc' }),
    ]);
    await h.core.pass(true);
    assert.deepEqual(h.core.counts(), { protected: 0, stale: 0, unprotected: 1, skipped: 3, 'sidecar-failing': 0 });
    assert.deepEqual(h.restarts, ['shop/Deployment/api'], 'only the selected namespace is healed');
    assert.deepEqual(h.events.filter((e) => e.reason === 'SidecarMissing').map((e) => e.namespace).sort(), ['shop', 'shop']);
    const reasons = h.core.classifications().filter((c) => c.namespace !== 'shop');
    assert.deepEqual([...new Set(reasons.map((c) => c.reason))], ['namespace-not-selected']);
    assert.match(reasons.find((c) => c.namespace === 'optout')!.message, /labelled pandocore\.xyz\/injection: disabled/);
    assert.match(reasons.find((c) => c.namespace === 'elsewhere')!.message, /namespaceSelector does not select it/);
    // Many cooldowns later: still never restarted.
    for (let i = 0; i < 4; i++) {
      h.advance(700_000);
      await h.core.pass(true);
    }
    assert.deepEqual(h.restarts.filter((r) => !r.startsWith('shop/')), []);
  });

  it('a namespace whose labels cannot be read is skipped (namespace-check-failed), never healed', async () => {
    const h = harness();
    h.core.replaced([pod('gone', 'web-abc-1', { kind: 'ReplicaSet', name: 'web-abc' })]);
    await h.core.pass(true);
    assert.deepEqual(h.core.counts(), { protected: 0, stale: 0, unprotected: 0, skipped: 1, 'sidecar-failing': 0 });
    assert.equal(h.core.classifications()[0]!.reason, 'namespace-check-failed');
    assert.deepEqual(h.restarts, []);
  });
});

describe('watchdog namespace lookups (issue 23 item 3)', () => {
  it('one label and one readiness lookup per namespace per pass, however many pods', async () => {
    const fetched: string[] = [];
    const readiness: ReadinessSource = {
      get: async (namespace) => {
        fetched.push(namespace);
        return { ok: true, facts: { serviceAccount: false, licenseSecret: false, limitRanges: [] } };
      },
    };
    const h = harness({}, { readiness });
    h.core.replaced(Array.from({ length: 200 }, (_, i) => pod('shop', `p-${i}`)));
    await h.core.pass(true);
    assert.equal(h.core.counts().skipped, 200, 'namespace-not-ready');
    assert.deepEqual(fetched, ['shop']);
    assert.deepEqual(h.labelLookups, ['shop']);
    await h.core.pass(true);
    assert.deepEqual(fetched, ['shop', 'shop'], 'a new pass looks again (setup may have changed)');
  });
});

describe('watchdog after the Lease is lost (issue 23 item 4)', () => {
  it('a pass in flight when clear() runs restarts nothing and exports no gauges afterwards', async () => {
    const g = gate();
    const h = harness({}, { lastRestart: async () => (await g.opened, undefined) });
    h.core.replaced([pod('shop', 'web-abc-1', { kind: 'ReplicaSet', name: 'web-abc' })]);
    const running = h.core.pass(true);
    await new Promise((r) => setTimeout(r, 20));
    h.core.clear();
    g.open();
    await running;
    assert.deepEqual(h.restarts, [], 'no restart after standing by');
    assert.deepEqual(await h.series(), [], 'no gauge series after standing by');
  });

  it('a list in flight when the informer stops is never delivered (no full pass after standing by)', async () => {
    const g = gate();
    const delivered: number[] = [];
    const kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: 'c', server: 'http://127.0.0.1:9' }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
    const informer = startInformer<SlimPod>(kc, {
      path: '/api/v1/pods',
      labelSelector: 'pandocore.xyz/protect=true',
      list: async () => (await g.opened, { items: [pod('shop', 'web-abc-1', { kind: 'ReplicaSet', name: 'web-abc' })], metadata: { resourceVersion: '1' } }),
      slim: slimPod,
      what: 'pod',
    }, { replaced: (list) => delivered.push(list.length), upserted: () => undefined, deleted: () => undefined }, { info: () => undefined, warn: () => undefined });
    informer.stop();
    g.open();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(delivered, []);
  });

  it('the retry timer (rate limited) armed before clear() never fires', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = harness({ restartsPerMinute: 1 });
    h.core.replaced([pod('shop', 'a-abc-1', { kind: 'ReplicaSet', name: 'a-abc' }), pod('shop', 'b-abc-1', { kind: 'ReplicaSet', name: 'b-abc' })]);
    await h.core.pass(true);
    assert.equal(h.restarts.length, 1, 'one restart, the other deferred to the retry');
    h.core.clear();
    h.advance(61_000);
    t.mock.timers.tick(10_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(h.restarts.length, 1);
    assert.deepEqual(await h.series(), []);
  });
});

describe('watchdog: one pass at a time (issue 23 item 8)', () => {
  it('two passes at once (the retry beside a resync) restart a workload once', async () => {
    const g = gate();
    const h = harness({}, { lastRestart: async () => (await g.opened, undefined) });
    h.core.replaced([pod('shop', 'web-abc-1', { kind: 'ReplicaSet', name: 'web-abc' })]);
    const a = h.core.pass(true);
    const b = h.core.pass(true);
    await new Promise((r) => setTimeout(r, 20));
    g.open();
    await Promise.all([a, b]);
    assert.deepEqual(h.restarts, ['shop/Deployment/web']);
  });

  it('with a limit of 1 a minute, two passes at once restart one of two workloads', async () => {
    const g = gate();
    const h = harness({ restartsPerMinute: 1 }, { lastRestart: async () => (await g.opened, undefined) });
    h.core.replaced([pod('shop', 'a-abc-1', { kind: 'ReplicaSet', name: 'a-abc' }), pod('shop', 'b-abc-1', { kind: 'ReplicaSet', name: 'b-abc' })]);
    const a = h.core.pass(true);
    const b = h.core.pass(true);
    await new Promise((r) => setTimeout(r, 20));
    g.open();
    await Promise.all([a, b]);
    assert.equal(h.restarts.length, 1);
    h.core.clear();
  });
});

describe('watchdog: reported workloads (issue 23 item 12)', () => {
  it('a workload reported in one outage is reported again in a later one; the set does not grow', async () => {
    const h = harness({ heal: 'off' });
    const first = [pod('shop', 'web-abc-1', { kind: 'ReplicaSet', name: 'web-abc' })];
    h.core.replaced(first);
    await h.core.pass(true);
    const onDeployment = () => h.events.filter((e) => e.involved.kind === 'Deployment').length;
    assert.equal(onDeployment(), 1);
    h.core.deleted(first[0]!.metadata.uid);
    await h.core.pass();
    assert.equal(h.core.reportedWorkloads(), 0, 'no workload remembered once its pods are gone');
    // Later outage: new pods of the same Deployment.
    h.core.upserted(pod('shop', 'web-def-1', { kind: 'ReplicaSet', name: 'web-def' }));
    await h.core.pass();
    assert.equal(onDeployment(), 2, 'a second SidecarMissing Event on the Deployment');
    for (let i = 0; i < 100; i++) {
      const p = pod('shop', `w${i}-abc-1`, { kind: 'ReplicaSet', name: `w${i}-abc` });
      h.core.upserted(p);
      await h.core.pass();
      h.core.deleted(p.metadata.uid);
    }
    await h.core.pass();
    assert.equal(h.core.reportedWorkloads(), 1, 'only web, whose pod is still there');
  });
});

describe('Event names (issue 23 suspicion)', () => {
  it('a 253-character pod name gives an Event name that is a DNS subdomain of at most 253 characters, distinct per pod', () => {
    const long = `${'a'.repeat(120)}.${'b'.repeat(132)}`;
    assert.equal(long.length, 253);
    const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
    const one = eventName(long, 'uid-one-0001', 'sidecar-missing');
    const two = eventName(`${long.slice(0, 252)}c`, 'uid-one-0001', 'sidecar-missing');
    for (const name of [one, two, eventName(`${'a'.repeat(229)}-${'b'.repeat(5)}`, 'x', 'sidecar-restart')]) {
      assert.ok(name.length <= 253, `${name.length} characters`);
      assert.match(name, subdomain);
    }
    assert.notEqual(one, two);
    assert.equal(eventName('web-abc-1', '0123456789', 'sidecar-missing'), 'web-abc-1.01234567.sidecar-missing', 'short names unchanged');
  });
});
