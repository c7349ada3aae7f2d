// Issue 23 item 1: clients that hold a request open without sending its body must not hold up
// anyone else. Before the fix, two connections that sent only headers with a 7 MiB Content-Length
// took the whole review budget until they closed, so every honest review waited past the API
// server's timeout (and with failurePolicy Ignore, every labelled pod went without its sidecar).
//
// Against the server as it ships (`npm run -s build`, build/app/main.js), over TLS: 20 hostile
// connections at once, each reopened as soon as the server closes it (headers with a large
// Content-Length and no body, chunked bodies that stop, bodies that trickle one byte every 100 ms),
// and meanwhile honest AdmissionReviews on keep-alive connections, as the API server sends them.
// Every honest review must be answered with a patch, the slowest well under the API server's
// timeout; every hostile connection must be answered 408 and closed. The bound asserted (1 s) is
// about correctness (the defect made reviews wait 5 s and more) and holds on a loaded machine; the
// quiet figure is printed as a diagnostic.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createCa, issueServingCert } from '../../app/tls/certs.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const MAIN = join(ROOT, 'build', 'app', 'main.js');
const INPUT = readFileSync(join(ROOT, 'test', 'testdata', 'golden', 'minimal-pod', 'input.json'), 'utf8');
/** The API server's default webhook timeout the defect made every review exceed. */
const API_SERVER_TIMEOUT_MS = 5_000;
const BOUND_MS = 1_000;
const ATTACK_MS = 3_500;
const HOSTILE = 20;
const MIB7 = 7 * 1024 * 1024;

type Kind = 'headers-7MiB' | 'headers-2MB' | 'chunked-silent' | 'trickle-length' | 'trickle-chunked';
const KINDS: Kind[] = ['headers-7MiB', 'headers-2MB', 'chunked-silent', 'trickle-length', 'trickle-chunked'];

function headersFor(kind: Kind, port: number): string {
  const length = kind === 'headers-2MB' ? 2_000_000 : MIB7;
  const framing = kind === 'chunked-silent' || kind === 'trickle-chunked' ? 'transfer-encoding: chunked' : `content-length: ${length}`;
  return `POST /mutate HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\n${framing}\r\n\r\n`;
}

interface HostileRecord { kind: Kind; status?: number; code?: string; openMs: number }

const hostileSockets = new Set<tls.TLSSocket>();

/**
 * One hostile slot: a connection of its kind, opened again whenever the server closes it until the
 * attack stops; resolves when its last connection is closed (by the server).
 */
function hostileSlot(port: number, ca: string, kind: Kind, records: HostileRecord[], stopped: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const open = () => {
      if (stopped()) return resolve();
      const opened = Date.now();
      const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
      hostileSockets.add(socket);
      let answer = '';
      let trickle: NodeJS.Timeout | undefined;
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (answer += d));
      socket.on('error', () => undefined);
      socket.once('secureConnect', () => {
        socket.write(headersFor(kind, port));
        if (kind === 'chunked-silent') socket.write('1\r\n{\r\n');
        if (kind === 'trickle-length') trickle = setInterval(() => socket.write('{'), 100);
        if (kind === 'trickle-chunked') trickle = setInterval(() => socket.write('1\r\n{\r\n'), 100);
      });
      socket.once('close', () => {
        clearInterval(trickle);
        hostileSockets.delete(socket);
        const status = /^HTTP\/1\.1 (\d+)/.exec(answer)?.[1];
        const code = /"code":"([A-Z_]+)"/.exec(answer)?.[1];
        records.push({ kind, status: status ? Number(status) : undefined, code, openMs: Date.now() - opened });
        open();
      });
    };
    open();
  });
}

function review(port: number, ca: string, agent: https.Agent, uid: string): Promise<{ ms: number; status: number; patched: boolean; uid?: string }> {
  const body = INPUT.replace(/"uid":\s*"[^"]*"/, `"uid": "${uid}"`);
  const started = performance.now();
  return new Promise((resolve) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca, agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (data += d));
        res.on('end', () => {
          const answer = JSON.parse(data) as { response?: { uid?: string; patch?: string } };
          resolve({ ms: performance.now() - started, status: res.statusCode ?? 0, patched: typeof answer.response?.patch === 'string', uid: answer.response?.uid });
        });
      },
    );
    // As the API server does: a review not answered in time (from the call) is a failed call.
    const timeout = setTimeout(() => req.destroy(new Error('timeout')), API_SERVER_TIMEOUT_MS);
    req.on('close', () => clearTimeout(timeout));
    req.on('error', () => resolve({ ms: performance.now() - started, status: 0, patched: false }));
    req.end(body);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('slow and stalled clients against the built server, over TLS (issue 23 item 1)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pando-slow-'));
  let child: ChildProcess | undefined;
  let stdout = '';
  let ca = '';
  const port = 20000 + Math.floor(Math.random() * 20000);

  before(async () => {
    const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(build.status, 0, `npm run -s build failed: ${build.stdout}${build.stderr}`);
    const now = new Date();
    const authority = await createCa('slow-clients test CA', now, 1);
    const leaf = await issueServingCert(authority, ['127.0.0.1', 'localhost'], now, 1);
    ca = authority.certPem;
    writeFileSync(join(dir, 'tls.crt'), leaf.certPem);
    writeFileSync(join(dir, 'tls.key'), leaf.keyPem);
    child = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        PANDO_HOST: '127.0.0.1',
        PANDO_PORT: String(port),
        PANDO_METRICS_PORT: String(port + 1),
        PANDO_TLS_CERT_FILE: join(dir, 'tls.crt'),
        PANDO_TLS_KEY_FILE: join(dir, 'tls.key'),
        PANDO_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stdout += d));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ready = await fetch(`http://127.0.0.1:${port + 1}/healthz`).then((r) => r.ok, () => false);
      if (ready) break;
      if (Date.now() > deadline || child.exitCode !== null) assert.fail(`the built server did not start: ${stdout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    for (const socket of hostileSockets) socket.destroy();
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('20 stalled and trickling connections at once: every honest review is patched within 1 s; every hostile one gets 408 and is closed', async () => {
    // As the API server's client: keep-alive, a connection per call in flight.
    const agent = new https.Agent({ keepAlive: true });
    // A warm connection first, as the API server keeps them.
    const warm = await review(port, ca, agent, 'warm');
    assert.equal(warm.status, 200);

    let stopped = false;
    const records: HostileRecord[] = [];
    const slots = Array.from({ length: HOSTILE }, (_, i) => hostileSlot(port, ca, KINDS[i % KINDS.length]!, records, () => stopped));
    // Let every hostile connection send its headers and take whatever it can.
    await new Promise((r) => setTimeout(r, 300));

    const answers: Array<Promise<Awaited<ReturnType<typeof review>>>> = [];
    const attackEnds = Date.now() + ATTACK_MS;
    for (let i = 0; Date.now() < attackEnds; i++) {
      answers.push(review(port, ca, agent, `honest-${i}`));
      await new Promise((r) => setTimeout(r, 100));
    }
    const results = await Promise.all(answers);
    // No new hostile connections; the server must close the open ones by itself (the body deadline
    // is 2 s; this waits up to 15 s, so a loaded machine's late timers do not fail the test).
    stopped = true;
    const allClosed = await Promise.race([Promise.all(slots).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 15_000))]);
    const leftOpen = hostileSockets.size;
    for (const socket of hostileSockets) socket.destroy();
    agent.destroy();

    const latencies = results.map((r) => r.ms).sort((a, b) => a - b);
    const worst = latencies.at(-1)!;
    const byKind = new Map<string, number>();
    for (const r of records) byKind.set(`${r.kind} ${r.status ?? 'none'} ${r.code ?? ''}`.trim(), (byKind.get(`${r.kind} ${r.status ?? 'none'} ${r.code ?? ''}`.trim()) ?? 0) + 1);
    const summary = `${results.length} honest reviews beside ${HOSTILE} hostile connections: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, worst ${worst.toFixed(1)} ms; ` +
      `${results.filter((r) => r.status === 200 && r.patched).length} patched; hostile connections closed by the server: ${[...byKind].map(([k, n]) => `${k} ×${n}`).join(', ') || 'none'}`;
    console.log(`# ${summary}`);

    assert.ok(results.length >= 10, summary);
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 200, `honest review ${i} answered ${r.status || 'nothing'} after ${r.ms.toFixed(0)} ms (${summary})`);
      assert.ok(r.patched && r.uid === `honest-${i}`, `honest review ${i} carries its patch`);
    }
    assert.ok(worst < BOUND_MS, `the slowest honest review took ${worst.toFixed(0)} ms (bound ${BOUND_MS} ms): ${summary}`);

    // Every hostile connection was answered 408 with its code and closed by the server: silent ones
    // for stalling, trickling ones when the body deadline passed.
    assert.ok(allClosed, `${leftOpen} hostile connections still open 15 s after the attack stopped: ${summary}`);
    for (const kind of KINDS) {
      const closed = records.filter((r) => r.kind === kind);
      assert.ok(closed.length > 0, `the server closed no ${kind} connection: ${summary}`);
      for (const r of closed) {
        assert.equal(r.status, 408, `${kind}: ${summary}`);
        assert.match(r.code ?? '', /^PANDO_BODY_(STALLED|TIMEOUT)$/, `${kind}: ${summary}`);
      }
    }
    assert.ok(records.some((r) => r.code === 'PANDO_BODY_STALLED'));
    assert.ok(records.some((r) => r.code === 'PANDO_BODY_TIMEOUT'));

    const metrics = await (await fetch(`http://127.0.0.1:${port + 1}/metrics`)).text();
    const counted = (reason: string) => Number(new RegExp(`^pandocore_review_bodies_refused_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
    assert.ok(counted('stalled') > 0 && counted('timeout') > 0, `refused bodies counted by reason: ${metrics.split('\n').filter((l) => l.includes('refused')).join('; ')}`);
  });
});
