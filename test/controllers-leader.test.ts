// Leader election (app/controllers/leader.ts) against an in-memory Lease with the API server's
// optimistic concurrency (a write with a stale resourceVersion is a conflict).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acquireOrRenew, microTime, type LeaseRecord, type LeaseStore } from '../app/controllers/leader.ts';

function memoryStore(): LeaseStore & { current?: LeaseRecord; writes: number } {
  let version = 0;
  const store = {
    current: undefined as LeaseRecord | undefined,
    writes: 0,
    async read() {
      return store.current ? { ...store.current } : undefined;
    },
    async write(record: LeaseRecord) {
      const expected = store.current?.resourceVersion;
      if ((record.resourceVersion ?? undefined) !== expected) return false;
      store.current = { ...record, resourceVersion: String(++version) };
      store.writes++;
      return true;
    },
  };
  return store;
}

const at = (s: number) => new Date(Date.UTC(2026, 10, 24, 12, 0, s));

describe('namespace setup leader election', () => {
  it('writes MicroTime with six fractional digits', () => {
    assert.equal(microTime(new Date('2026-11-24T12:00:01.234Z')), '2026-11-24T12:00:01.234000Z');
  });

  it('the first replica acquires a free Lease; a second stands by while it is fresh', async () => {
    const store = memoryStore();
    assert.equal(await acquireOrRenew(store, 'a', at(0), 15), true);
    assert.equal(store.current?.holderIdentity, 'a');
    assert.equal(await acquireOrRenew(store, 'b', at(10), 15), false);
    assert.equal(store.current?.holderIdentity, 'a');
  });

  it('the holder renews; an expired Lease is taken over with a transition', async () => {
    const store = memoryStore();
    await acquireOrRenew(store, 'a', at(0), 15);
    assert.equal(await acquireOrRenew(store, 'a', at(5), 15), true);
    assert.equal(store.current?.renewTime, microTime(at(5)));
    assert.equal(await acquireOrRenew(store, 'b', at(19), 15), false, 'renewed at 5 s: fresh until 20 s');
    assert.equal(await acquireOrRenew(store, 'b', at(21), 15), true);
    assert.equal(store.current?.holderIdentity, 'b');
    assert.equal(store.current?.leaseTransitions, 1);
    assert.equal(await acquireOrRenew(store, 'a', at(22), 15), false, 'the old holder does not take it back');
  });

  it('two replicas racing for an expired Lease: exactly one wins', async () => {
    const store = memoryStore();
    await acquireOrRenew(store, 'old', at(0), 15);
    // Both read the expired Lease before either writes.
    const read = store.read.bind(store);
    const snapshot = await read();
    store.read = async () => ({ ...snapshot! });
    const results = await Promise.all([acquireOrRenew(store, 'a', at(30), 15), acquireOrRenew(store, 'b', at(30), 15)]);
    assert.deepEqual(results.sort(), [false, true]);
  });
});
