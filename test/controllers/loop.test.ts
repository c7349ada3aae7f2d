// The leader loop both controllers run (app/controllers/loop.ts), against an in-memory Lease with
// the API server's optimistic concurrency: one replica acts, and after it stops another takes over
// once the Lease has expired.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LeaseRecord, LeaseStore } from '../../app/controllers/leader.ts';
import { startLeaderLoop } from '../../app/controllers/loop.ts';

function memoryStore(): LeaseStore {
  let current: LeaseRecord | undefined;
  let version = 0;
  return {
    async read() {
      return current ? { ...current } : undefined;
    },
    async write(record) {
      if ((record.resourceVersion ?? undefined) !== current?.resourceVersion) return false;
      current = { ...record, resourceVersion: String(++version) };
      return true;
    },
  };
}

const quiet = { info() {}, warn() {} };

describe('leader loop', () => {
  it('only the leader acts; when it stops it gives the Lease up and the other takes over at its next round', async () => {
    const store = memoryStore();
    const acted = { a: 0, b: 0 };
    const stopped: string[] = [];
    const loop = (name: 'a' | 'b') =>
      startLeaderLoop({
        name, lease: store, identity: name, log: quiet, leaseDurationSeconds: 1, intervalMs: 50,
        async round() {
          acted[name]++;
        },
        letGo: () => void stopped.push(name),
      });
    const a = loop('a');
    await sleep(20);
    const b = loop('b');
    await sleep(300);
    assert.equal(a.isLeader(), true);
    assert.equal(b.isLeader(), false);
    assert.ok(acted.a > 0);
    assert.equal(acted.b, 0, 'the stand-by never acts');
    const stoppedAt = Date.now();
    await a.stop();
    assert.deepEqual(stopped, ['a']);
    const before = acted.a;
    for (let i = 0; i < 60 && !b.isLeader(); i++) await sleep(50);
    assert.equal(b.isLeader(), true);
    const tookOver = Date.now() - stoppedAt;
    assert.ok(tookOver < 500, `took over after ${tookOver} ms (Lease 1 s, rounds every 50 ms)`);
    assert.equal(acted.a, before, 'a stopped replica no longer acts');
    await b.stop();
  });
});

describe('lease release', () => {
  it('a crashed leader (no release) is replaced only after its Lease expired', async () => {
    const store = memoryStore();
    const { acquireOrRenew } = await import('../../app/controllers/leader.ts');
    const t0 = new Date('2026-11-24T12:00:00Z');
    assert.equal(await acquireOrRenew(store, 'a', t0, 15), true);
    assert.equal(await acquireOrRenew(store, 'b', new Date(t0.getTime() + 14_000), 15), false);
    assert.equal(await acquireOrRenew(store, 'b', new Date(t0.getTime() + 15_001), 15), true);
  });
});
