// The process as operators run it: a bad variable exits non-zero naming it; with no certificate it
// serves a throw-away one on 127.0.0.1; SIGTERM drains and exits 0 well within 10 s.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const MAIN = join(import.meta.dirname, '..', 'app', 'main.ts');
const INPUT = join(import.meta.dirname, 'testdata', 'golden', 'minimal-pod', 'input.json');

function get(port: number, ca: string, path: string, body?: string, agent?: https.Agent): Promise<{ status: number; body: string; connection?: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, ca, method: body ? 'POST' : 'GET', headers: body ? { 'content-type': 'application/json' } : {}, ...(agent ? { agent } : {}) },
      (res) => {
        let data = '';
        res.on('data', (d) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data, connection: res.headers.connection }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function start(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return { child, out: () => stdout, err: () => stderr };
}

async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('app/main.ts', () => {
  it('exits 2 and names the variable on a bad value', async () => {
    const { child, err } = start({ PANDO_DEFAULT_MODE: 'paranoid' });
    const [code] = await once(child, 'exit');
    assert.equal(code, 2);
    assert.match(err(), /PANDO_CONFIG_INVALID: invalid configuration: PANDO_DEFAULT_MODE: "paranoid" is not one of/);
  });

  it('serves a throw-away certificate, prints a curl example, drains on SIGTERM and exits within 10 s', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const { child, out } = start({ PANDO_HOST: '127.0.0.1', PANDO_PORT: String(port), PANDO_METRICS_PORT: String(port + 1) });
    try {
      await waitFor(() => out().includes('curl --cacert'), 15_000);
      assert.match(out(), new RegExp(`https://127\\.0\\.0\\.1:${port}/mutate`));
      const metrics = await fetch(`http://127.0.0.1:${port + 1}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /pandocore_build_info\{version="\d+\.\d+\.\d+"/);
      const caFile = /--cacert (\S+)/.exec(out())![1]!;
      const ca = readFileSync(caFile, 'utf8');
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      assert.equal((await get(port, ca, '/healthz', undefined, agent)).connection, 'keep-alive', 'before shutdown: keep-alive');
      const stopped = Date.now();
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      // Draining: unready, yet a review that still arrives is answered, and told to close its
      // connection (on the connection kept alive from before, too).
      assert.equal((await get(port, ca, '/readyz')).status, 503);
      const review = await get(port, ca, '/mutate', readFileSync(INPUT, 'utf8'), agent);
      agent.destroy();
      assert.equal(review.status, 200);
      assert.equal(review.connection, 'close', 'draining: connection: close');
      assert.equal(JSON.parse(review.body).response.auditAnnotations.reason, 'injected');
      const exited = once(child, 'exit');
      const [code] = await exited;
      assert.equal(code, 0);
      assert.ok(Date.now() - stopped < 10_000);
      assert.match(out(), /"msg":"stopped"/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('exits 0 soon after the drain delay although clients hold keep-alive and request-less connections', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const { child, out } = start({ PANDO_HOST: '127.0.0.1', PANDO_PORT: String(port), PANDO_METRICS_PORT: String(port + 1), PANDO_SHUTDOWN_DELAY_MS: '500' });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
    const sockets: tls.TLSSocket[] = [];
    const raw: net.Socket[] = [];
    try {
      await waitFor(() => out().includes('curl --cacert'), 15_000);
      const ca = readFileSync(/--cacert (\S+)/.exec(out())![1]!, 'utf8');
      // As the API server does: a pooled keep-alive connection that answered a review...
      const first = await new Promise<number>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port, path: '/healthz', ca, agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); }).on('error', reject);
      });
      assert.equal(first, 200);
      // ...and connections that completed TLS but never sent a request...
      for (let i = 0; i < 2; i++) {
        const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
        socket.on('error', () => undefined);
        await once(socket, 'secureConnect');
        sockets.push(socket);
      }
      // ...and TCP connections that never start TLS (a probe, a stuck client).
      for (let i = 0; i < 2; i++) {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.on('error', () => undefined);
        await once(socket, 'connect');
        raw.push(socket);
      }
      const rawClosed = raw.map((s) => once(s, 'close'));
      const metricsSocket = await fetch(`http://127.0.0.1:${port + 1}/metrics`, { keepalive: true });
      await metricsSocket.text();
      const stopped = Date.now();
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0, 'exit code');
      assert.ok(Date.now() - stopped < 3_000, `exited after ${Date.now() - stopped} ms (drain delay 500 ms)`);
      await Promise.all(rawClosed);
    } finally {
      agent.destroy();
      for (const s of sockets) s.destroy();
      for (const s of raw) s.destroy();
      child.kill('SIGKILL');
    }
  });
});
