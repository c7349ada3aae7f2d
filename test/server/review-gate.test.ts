// The review gate (issue 17 item 5): review bodies are read and parsed within a byte budget, first
// come first served; a place is freed when the answer is sent or the client goes away.

import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { describe, it } from 'node:test';
import { createReviewGate, type ReviewGate } from '../../app/server/review-gate.ts';
import { labelledPod, podReview, testServer } from '../helpers/server.ts';

describe('review gate', () => {
  it('starts entries in arrival order while they fit, the rest when places are freed', () => {
    const gate = createReviewGate(10);
    const started: string[] = [];
    const a = gate.enter(6, () => started.push('a'));
    const b = gate.enter(6, () => started.push('b'));
    const c = gate.enter(1, () => started.push('c'));
    assert.deepEqual(started, ['a'], 'c fits but must not overtake b');
    assert.equal(gate.waiting, 2);
    a.leave();
    assert.deepEqual(started, ['a', 'b', 'c']);
    assert.equal(gate.bytesInFlight, 7);
    b.leave();
    c.leave();
    c.leave();
    assert.equal(gate.bytesInFlight, 0, 'leaving twice frees once');
  });

  it('an entry larger than the capacity runs alone; one that leaves while waiting is skipped', () => {
    const gate = createReviewGate(4);
    const started: string[] = [];
    const big = gate.enter(100, () => started.push('big'));
    const gone = gate.enter(1, () => started.push('gone'));
    const next = gate.enter(1, () => started.push('next'));
    assert.deepEqual(started, ['big']);
    gone.leave();
    big.leave();
    assert.deepEqual(started, ['big', 'next']);
    next.leave();
    assert.equal(gate.waiting, 0);
    assert.equal(gate.bytesInFlight, 0);
  });

  it('refuses a capacity that is not a positive integer', () => {
    assert.throws(() => createReviewGate(0), /positive integer \(got 0\)/);
  });
});

/** A gate that records the most bytes it let in at once. */
function recordingGate(capacity: number) {
  const gate = createReviewGate(capacity);
  let peak = 0;
  let entered = 0;
  const recording: ReviewGate & { peak: () => number; entered: () => number } = {
    enter(weight, start) {
      entered++;
      return gate.enter(weight, () => {
        peak = Math.max(peak, gate.bytesInFlight);
        start();
      });
    },
    get waiting() {
      return gate.waiting;
    },
    get bytesInFlight() {
      return gate.bytesInFlight;
    },
    peak: () => peak,
    entered: () => entered,
  };
  return recording;
}

function post(port: number, body: string): Promise<{ status: number; uid: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/mutate', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, uid: JSON.parse(Buffer.concat(chunks).toString()).response?.uid }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('POST /mutate behind the gate', () => {
  it('bodies of 1 MiB through a 1 MiB gate: one at a time, answered in arrival order, all places freed', async () => {
    const gate = recordingGate(1024 * 1024);
    const { app } = testServer({}, { gate });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const bodies = Array.from({ length: 6 }, (_, i) => {
      const pod = labelledPod({ metadata: { name: `big-${i}`, labels: { 'pandocore.xyz/protect': 'true' }, annotations: { 'example.com/blob': 'x'.repeat(1024 * 1024 - 2048) } } });
      return JSON.stringify(podReview(pod, { uid: `uid-${i}` }));
    });
    const answered: string[] = [];
    const pending: Array<Promise<void>> = [];
    for (const body of bodies) {
      // Arrival order: the next request is sent once the server has seen this one's headers.
      const before = gate.entered();
      pending.push(post(port, body).then((answer) => {
        assert.equal(answer.status, 200);
        answered.push(answer.uid);
      }));
      while (gate.entered() === before) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await Promise.all(pending);
    assert.deepEqual(answered, bodies.map((_, i) => `uid-${i}`), 'first come, first served');
    assert.ok(gate.peak() <= 1024 * 1024, `at most one body in flight (peak ${gate.peak()} bytes)`);
    assert.equal(gate.bytesInFlight, 0, 'every place freed');
    assert.equal(gate.waiting, 0);
    await app.close();
  });

  it('a client that goes away while waiting frees its place', async () => {
    const gate = recordingGate(1);
    const { app } = testServer({}, { gate });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const body = JSON.stringify(podReview(labelledPod()));
    // Holds the only place: headers sent, body never finished.
    const holder = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/mutate', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
    holder.on('error', () => {});
    holder.write(body.slice(0, 10));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const waiting = post(port, body);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(gate.waiting, 1, 'the second review waits');
    holder.destroy();
    const answer = await waiting;
    assert.equal(answer.status, 200);
    assert.equal(gate.bytesInFlight, 0);
    await app.close();
  });
});
