import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseQuantity } from '../app/inject/quantity.ts';
import type { NamespaceReadiness } from '../app/inject/decide.ts';
import { createReadinessCache } from '../app/namespaces.ts';

const READY: NamespaceReadiness = { serviceAccount: true, licenseSecret: true };
const BARE: NamespaceReadiness = { serviceAccount: false, licenseSecret: false };

describe('namespace readiness cache', () => {
  it('looks a namespace up once per TTL, and concurrent reviews share one lookup', async () => {
    let clock = 0;
    const calls: string[] = [];
    const cache = createReadinessCache({
      fetch: async (ns) => {
        calls.push(ns);
        return ns === 'shop' ? READY : BARE;
      },
      readyTtlMs: 30_000,
      notReadyTtlMs: 5_000,
      now: () => clock,
    });
    const [a, b] = await Promise.all([cache.get('shop'), cache.get('shop')]);
    assert.deepEqual([a, b], [READY, READY]);
    assert.deepEqual(calls, ['shop']);
    clock = 29_000;
    await cache.get('shop');
    assert.deepEqual(calls, ['shop'], 'still cached');
    clock = 31_000;
    await cache.get('shop');
    assert.deepEqual(calls, ['shop', 'shop'], 'looked up again after the TTL');

    assert.deepEqual(await cache.get('new'), BARE);
    clock += 6_000;
    await cache.get('new');
    assert.equal(calls.filter((c) => c === 'new').length, 2, 'a namespace that is not ready is re-checked sooner');
  });

  it('is unknown (undefined), not "not ready", when the lookup fails or is too slow', async () => {
    const failing = createReadinessCache({ fetch: async () => { throw new Error('forbidden'); } });
    assert.equal(await failing.get('shop'), undefined);
    const slow = createReadinessCache({ fetch: () => new Promise((r) => setTimeout(() => r(READY), 500)), timeoutMs: 20 });
    const started = Date.now();
    assert.equal(await slow.get('shop'), undefined);
    assert.ok(Date.now() - started < 400, 'answers at the timeout, not when the API server does');
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
