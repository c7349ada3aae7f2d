// The review gate (issue 17 item 5): review bodies are read and parsed within a byte budget, first
// come first served; bytes are freed when the answer is sent or the client goes away. Since issue 23
// item 1 a request is charged for the bytes it sent, never for the length it declares.

import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { createReviewGate, type ReviewGate } from '../../app/server/review-gate.ts';
import { labelledPod, podReview, testServer } from '../helpers/server.ts';

describe('review gate', () => {
  it('charges chunks as they arrive, in the order requests came, while they fit; the rest when bytes are freed', () => {
    const gate = createReviewGate(10);
    const started: string[] = [];
    const a = gate.open();
    const b = gate.open();
    const c = gate.open();
    a.charge(6, () => started.push('a'));
    b.charge(6, () => started.push('b'));
    c.charge(1, () => started.push('c'));
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

  it('a request that has sent nothing holds nothing: a declared length is never charged (issue 23 item 1)', () => {
    const gate = createReviewGate(8);
    const silent = [gate.open(), gate.open()];
    const honest = gate.open();
    let started = false;
    honest.charge(8, () => (started = true));
    assert.ok(started, 'the honest body goes in at once beside two silent requests');
    for (const account of silent) account.leave();
    honest.leave();
  });

  it('two bodies half read never wait for each other: the oldest holder may go beyond the capacity', () => {
    const gate = createReviewGate(8);
    const first = gate.open();
    const second = gate.open();
    const log: string[] = [];
    first.charge(4, () => log.push('first 4'));
    second.charge(4, () => log.push('second 4'));
    second.charge(4, () => log.push('second 8'));
    first.charge(4, () => log.push('first 8'));
    assert.deepEqual(log, ['first 4', 'second 4', 'first 8'], 'the oldest goes on; the younger waits');
    assert.equal(gate.bytesInFlight, 12);
    first.leave();
    assert.deepEqual(log, ['first 4', 'second 4', 'first 8', 'second 8']);
    second.leave();
    assert.equal(gate.bytesInFlight, 0);
  });

  it('one that leaves while waiting is skipped', () => {
    const gate = createReviewGate(4);
    const started: string[] = [];
    const big = gate.open();
    const gone = gate.open();
    const next = gate.open();
    big.charge(100, () => started.push('big'));
    gone.charge(1, () => started.push('gone'));
    next.charge(1, () => started.push('next'));
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
  let opened = 0;
  const recording: ReviewGate & { peak: () => number; entered: () => number } = {
    open() {
      opened++;
      const account = gate.open();
      return {
        charge(bytes, go) {
          account.charge(bytes, () => {
            peak = Math.max(peak, gate.bytesInFlight);
            go();
          });
        },
        leave: () => account.leave(),
        get waiting() {
          return account.waiting;
        },
      };
    },
    get waiting() {
      return gate.waiting;
    },
    get bytesInFlight() {
      return gate.bytesInFlight;
    },
    peak: () => peak,
    entered: () => opened,
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
  it('bodies of 1 MiB through a 1 MiB gate: at most the budget and one body at once, answered in arrival order, all bytes freed', async () => {
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
    // Charged as they arrive, two bodies may overlap: the budget plus, for the oldest, its own body.
    assert.ok(gate.peak() <= 2 * 1024 * 1024, `at most the budget and one body in flight (peak ${gate.peak()} bytes)`);
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
    // Holds the whole budget (1 byte): 10 bytes sent, the rest never.
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

/** Sends `head` (and then `trickle` every 50 ms), returns what the server answered before closing. */
function rawExchange(port: number, head: string, trickle?: string): Promise<{ answer: string; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    let timer: NodeJS.Timeout | undefined;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (answer += d));
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      socket.write(head);
      if (trickle) timer = setInterval(() => socket.write(trickle), 50);
    });
    socket.once('close', () => {
      clearInterval(timer);
      resolve({ answer, ms: Date.now() - started });
    });
  });
}

describe('body deadlines (issue 23 item 1)', () => {
  it('a body that never comes is answered 408 PANDO_BODY_STALLED (on any path), one that trickles 408 PANDO_BODY_TIMEOUT; all closed and counted', async () => {
    const { app, metrics } = testServer({ PANDO_BODY_TIMEOUT_MS: '600', PANDO_BODY_STALL_MS: '150' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const head = (framing: string, path = '/mutate') => `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${framing}\r\n\r\n`;
    const [silent, elsewhere, chunked, trickle] = await Promise.all([
      rawExchange(port, head('content-length: 7340032')),
      // Another path reads its body before answering 404: the same rules.
      rawExchange(port, head('content-length: 7340032', '/elsewhere')),
      rawExchange(port, `${head('transfer-encoding: chunked')}1\r\n{\r\n`),
      rawExchange(port, head('content-length: 7340032'), '{'),
    ]);
    for (const [name, exchange, code] of [['silent', silent, 'PANDO_BODY_STALLED'], ['elsewhere', elsewhere, 'PANDO_BODY_STALLED'], ['chunked', chunked, 'PANDO_BODY_STALLED'], ['trickle', trickle, 'PANDO_BODY_TIMEOUT']] as const) {
      assert.match(exchange.answer, /^HTTP\/1\.1 408 /, name);
      assert.match(exchange.answer, /connection: close/i, name);
      assert.match(exchange.answer, new RegExp(`"code":"${code}"`), name);
    }
    assert.ok(silent.ms >= 150 && trickle.ms >= 600, `closed after the stall (${silent.ms} ms) and the deadline (${trickle.ms} ms)`);
    const refused = await metrics.bodiesRefused.get();
    const count = (reason: string) => refused.values.find((v) => v.labels.reason === reason)?.value;
    assert.equal(count('stalled'), 3);
    assert.equal(count('timeout'), 1);
    // An honest review on the same server is still answered.
    const answer = await post(port, JSON.stringify(podReview(labelledPod())));
    assert.equal(answer.status, 200);
    await app.close();
  });
});
