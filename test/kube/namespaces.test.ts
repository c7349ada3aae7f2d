import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseQuantity } from '../../app/inject/quantity.ts';
import type { NamespaceReadiness } from '../../app/inject/decide.ts';
import { createReadinessCache, LOOKUP_ERRORS } from '../../app/kube/namespaces.ts';
import { labelledPod, podReview, testServer } from '../helpers/server.ts';

const READY: NamespaceReadiness = { serviceAccount: true, licenseSecret: true };
const BARE: NamespaceReadiness = { serviceAccount: false, licenseSecret: false };
const HALF: NamespaceReadiness = { serviceAccount: true, licenseSecret: false };

describe('namespace readiness cache', () => {
  it('looks a namespace up once per TTL, and concurrent reviews share one lookup', async () => {
    let clock = 0;
    const calls: string[] = [];
    const cache = createReadinessCache({
      fetch: async (ns) => {
        calls.push(ns);
        return ns === 'shop' ? READY : HALF;
      },
      now: () => clock,
    });
    const [a, b] = await Promise.all([cache.get('shop'), cache.get('shop')]);
    assert.deepEqual([a, b], [{ ok: true, facts: READY }, { ok: true, facts: READY }]);
    assert.deepEqual(calls, ['shop']);
    clock = 1_900;
    await cache.get('shop');
    assert.deepEqual(calls, ['shop'], 'still cached');
    clock = 2_100;
    await cache.get('shop');
    assert.deepEqual(calls, ['shop', 'shop'], 'a ready answer is trusted 2 s, no longer');

    assert.deepEqual(await cache.get('new'), { ok: true, facts: HALF });
    clock += 2_100;
    await cache.get('new');
    assert.equal(calls.filter((c) => c === 'new').length, 2, 'a namespace that is not ready is re-checked as soon');
  });

  it('fails (with a reason from a fixed set, reported once per lookup) when the lookup fails or is too slow', async () => {
    const reported: string[] = [];
    const onError = (ns: string, reason: string) => void reported.push(`${ns}:${reason}`);
    const forbidden = createReadinessCache({ fetch: async () => { throw Object.assign(new Error('forbidden'), { code: 403 }); }, onError });
    const both = await Promise.all([forbidden.get('shop'), forbidden.get('shop')]);
    assert.deepEqual(both, [{ ok: false, reason: 'forbidden' }, { ok: false, reason: 'forbidden' }]);
    assert.deepEqual(reported, ['shop:forbidden'], 'two reviews waiting on one failed lookup: one report');
    const slow = createReadinessCache({ fetch: () => new Promise((r) => setTimeout(() => r(READY), 500)), timeoutMs: 20, onError });
    const started = Date.now();
    assert.deepEqual(await slow.get('shop'), { ok: false, reason: 'timeout' });
    assert.ok(Date.now() - started < 400, 'answers at the timeout, not when the API server does');
    assert.deepEqual(reported, ['shop:forbidden', 'shop:timeout']);
    for (const r of reported) assert.ok((LOOKUP_ERRORS as readonly string[]).includes(r.split(':')[1]!));
  });

  it('is a bounded LRU that namespaces without any of our objects never fill, and its lookups are rate limited', async () => {
    let clock = 0;
    let fetched = 0;
    const cache = createReadinessCache({
      fetch: async (ns) => {
        fetched++;
        return ns.startsWith('ready-') ? READY : BARE;
      },
      maxEntries: 3,
      lookupsPerSecond: 10,
      lookupBurst: 10,
      now: () => clock,
    });
    for (const ns of ['ready-a', 'ready-b', 'ready-c']) await cache.get(ns);
    await cache.get('ready-a'); // used: b is now the least recently used
    await cache.get('ready-d');
    assert.equal(cache.size(), 3, 'never more than maxEntries');
    const before = fetched;
    await cache.get('ready-a');
    assert.equal(fetched, before, 'the recently used entry stayed');
    await cache.get('ready-b');
    assert.equal(fetched, before + 1, 'the least recently used entry was dropped');

    for (let i = 0; i < 5; i++) await cache.get(`no-such-namespace-${i}`);
    assert.equal(cache.size(), 3, 'a namespace with none of our objects (or none at all) is not remembered');

    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => cache.get(`flood-${i}`)));
    const limited = answers.filter((a) => !a.ok && a.reason === 'rate-limited').length;
    assert.ok(fetched <= 10 + 1 && limited >= 10, `at most the burst of lookups at once (fetched ${fetched}, refused ${limited})`);
    clock += 1_000;
    assert.equal((await cache.get('after-a-second')).ok, true, 'tokens come back with time');
  });
});

describe('reviews naming many namespaces (issue 19 item 5, the cache half)', () => {
  it('2,000 reviews with made-up namespaces: lookups stay within the rate limit and the cache stays empty', async () => {
    let fetched = 0;
    const readiness = createReadinessCache({ fetch: async () => { fetched++; return BARE; } });
    const { app } = testServer({}, { readiness });
    const started = Date.now();
    try {
      for (let i = 0; i < 2_000; i++) {
        const res = await app.inject({ method: 'POST', url: '/mutate', payload: podReview(labelledPod(), { namespace: `made-up-${i}` }) });
        assert.equal(res.statusCode, 200);
      }
    } finally {
      await app.close();
    }
    const seconds = (Date.now() - started) / 1000;
    assert.ok(fetched <= 100 + Math.ceil(50 * seconds), `${fetched} lookups in ${seconds.toFixed(1)} s: at most the burst plus 50/s`);
    assert.equal(readiness.size(), 0, 'namespaces holding none of our objects are not remembered');
  });
});

describe('a failed namespace lookup (issue 19 item 2)', () => {
  it('creates the pod without the sidecar: reason namespace-check-failed, with a warning', async () => {
    const readiness = createReadinessCache({ fetch: async () => { throw Object.assign(new Error('forbidden'), { code: 403 }); } });
    const { app } = testServer({}, { readiness });
    try {
      const res = await app.inject({ method: 'POST', url: '/mutate', payload: podReview(labelledPod()) });
      const answer = res.json().response;
      assert.equal(answer.allowed, true);
      assert.equal(answer.patch, undefined, 'no sidecar: its ServiceAccount or Secret may be missing');
      assert.equal(answer.auditAnnotations.reason, 'namespace-check-failed');
      assert.deepEqual(answer.warnings, ['pandocore: sidecar not injected: namespace shop could not be checked (forbidden)']);
    } finally {
      await app.close();
    }
  });
});

describe('quantities', () => {
  it('parses the forms the API server accepts', () => {
    assert.equal(parseQuantity('250m'), 0.25);
    assert.equal(parseQuantity('2'), 2);
    assert.equal(parseQuantity('1.5Gi'), 1.5 * 2 ** 30);
    assert.equal(parseQuantity('128Mi'), 128 * 2 ** 20);
    assert.equal(parseQuantity('1e3'), 1000);
    assert.equal(parseQuantity('2k'), 2000);
    assert.ok(Number.isNaN(parseQuantity('lots')));
    assert.ok(Number.isNaN(parseQuantity(undefined)));
  });
});
