// The load side of the benchmark: autocannon for throughput (closed loop, 32 keep-alive connections),
// and a paced open-loop client for latency at a fixed rate. autocannon's own rate limit sends each
// second's quota as one burst and keeps latencies in whole milliseconds, which says nothing about a
// 2 ms target; the paced client sends at even intervals and measures from the time each review was
// due (so a slow answer that delays the next send is counted, as wrk2 does), in microseconds.

import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import autocannon from 'autocannon';

export interface Target {
  port: number;
  ca: string;
}

export interface ThroughputResult {
  reviewsPerSecond: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  seconds: number;
}

export async function throughput(target: Target, body: Buffer, connections: number, seconds: number): Promise<ThroughputResult> {
  const result = await autocannon({
    url: `https://127.0.0.1:${target.port}/mutate`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections,
    duration: seconds,
    timeout: 10,
    // autocannon checks its end time once per sample; the default 1 s makes a 0.4 s run last 1 s.
    sampleInt: 100,
  });
  const ok = result['2xx'];
  return {
    reviewsPerSecond: ok / result.duration,
    ok,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds: result.duration,
  };
}

export interface LatencyResult {
  rate: number;
  sent: number;
  ok: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

/** Sends `rate` reviews per second, evenly spaced, for `seconds`; latency from each review's due time. */
export async function pacedLatency(target: Target, body: Buffer, rate: number, seconds: number): Promise<LatencyResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 32, ca: target.ca });
  const total = Math.max(1, Math.round(rate * seconds));
  const intervalNs = BigInt(Math.round(1e9 / rate));
  const latencies: number[] = [];
  let failed = 0;
  let pending = 0;
  let sent = 0;
  // Open the connections first, so a TLS handshake is not counted as review latency.
  await Promise.all(Array.from({ length: 4 }, () => post(target, body, agent).catch(() => undefined)));
  const start = process.hrtime.bigint() + 1_000_000n;

  await new Promise<void>((resolve) => {
    const finish = () => {
      if (sent === total && pending === 0) resolve();
    };
    const send = (due: bigint) => {
      pending++;
      sent++;
      const req = request(
        { hostname: '127.0.0.1', port: target.port, path: '/mutate', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } },
        (res) => {
          res.on('data', () => {});
          res.on('end', () => {
            pending--;
            if (res.statusCode === 200) latencies.push(Number(process.hrtime.bigint() - due) / 1e6);
            else failed++;
            finish();
          });
        },
      );
      req.on('error', () => {
        pending--;
        failed++;
        finish();
      });
      req.end(body);
    };
    const tick = () => {
      const now = process.hrtime.bigint();
      while (sent < total && start + BigInt(sent) * intervalNs <= now) send(start + BigInt(sent) * intervalNs);
      if (sent === total) return finish();
      const waitNs = start + BigInt(sent) * intervalNs - now;
      // Timers are late by up to a millisecond: sleep until just before the due time, then spin.
      if (waitNs > 1_500_000n) setTimeout(tick, Number(waitNs / 1_000_000n) - 1);
      else setImmediate(tick);
    };
    tick();
  });
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    rate,
    sent,
    ok: latencies.length,
    failed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    p999Ms: percentile(latencies, 99.9),
    maxMs: latencies.at(-1) ?? Number.NaN,
  };
}

export interface Answer {
  status: number;
  body: string;
  protocol: string | null;
  cipher: string;
}

/** One review, answered in full. */
export function post(target: Target, body: Buffer, agent?: Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname: '127.0.0.1',
        port: target.port,
        path: '/mutate',
        method: 'POST',
        ...(agent ? { agent } : { ca: target.ca, agent: false }),
        headers: { 'content-type': 'application/json', 'content-length': body.length },
        timeout: 10_000,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            protocol: socket.getProtocol?.() ?? null,
            cipher: socket.getCipher?.()?.name ?? '',
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}
