// Issue 23 item 3: the watchdog's passes must never use up the webhook's namespace lookups. The
// caches main.ts builds (readinessCaches: one for the server, one for the watchdog, each with its
// own rate limit) under a pass over 200 pods of a namespace that is not set up, then a review of a
// pod in a ready namespace: injected, not namespace-check-failed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { loadConfig } from '../../app/config.ts';
import { createWatchdogCore, createWatchdogMetrics } from '../../app/controllers/watchdog.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { readinessCaches } from '../../app/kube/namespaces.ts';
import { slimPod } from '../../app/pods/classify.ts';
import { labelledPod, podReview, testServer } from '../helpers/server.ts';

describe('watchdog and webhook namespace lookups', () => {
  it('a pass over 200 pods in a namespace without setup leaves the webhook its lookups: a pod in a ready namespace is injected', async () => {
    const fetched: string[] = [];
    // A frozen clock: the token buckets do not refill while the test runs.
    const caches = readinessCaches({
      now: () => 1_000,
      fetch: async (namespace) => {
        fetched.push(namespace);
        const ready = namespace === 'shop';
        return { serviceAccount: ready, licenseSecret: ready, limitRanges: [] };
      },
    });
    const env = { PANDO_NAMESPACE: 'pando-system', PANDO_NAMESPACE_CHECK: 'true', PANDO_WATCHDOG: 'true' };
    const config = loadConfig(env);
    const core = createWatchdogCore({
      plan: planInjection(config),
      config: { ...config.watchdog!, heal: 'off' },
      readiness: caches.watchdog,
      metrics: createWatchdogMetrics(new Registry()),
      log: { info: () => undefined, warn: () => undefined },
      events: async () => undefined,
      resolveWorkload: async (namespace, ref) => ({ kind: ref.kind, name: ref.name, namespace }),
      restarter: { lastRestart: async () => undefined, restart: async () => undefined },
    });
    core.replaced(Array.from({ length: 200 }, (_, i) => slimPod({ metadata: { name: `p-${i}`, namespace: 'bare', uid: `u-${i}`, labels: { 'pandocore.xyz/protect': 'true' } }, spec: { containers: [{ name: 'app', image: 'app:1' }] }, status: { phase: 'Running' } })));
    await core.pass(true);
    assert.equal(core.counts().skipped, 200, 'namespace-not-ready');
    const watchdogLookups = fetched.length;
    assert.equal(watchdogLookups, 1, `${watchdogLookups} lookups for one namespace in one pass`);

    const { app } = testServer(env, { readiness: caches.server });
    const res = await app.inject({ method: 'POST', url: '/mutate', payload: podReview(labelledPod(), { namespace: 'shop' }) });
    const review = res.json() as { response: { patch?: string; warnings?: string[]; auditAnnotations?: Record<string, string> } };
    assert.ok(review.response.patch, `injected; warnings: ${JSON.stringify(review.response.warnings ?? [])}`);
    await app.close();
  });
});
