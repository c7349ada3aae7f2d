// node bench/micro.ts: the webhook's own cost per review, in process, without TLS or sockets: the
// pure core (review + answer encoding) and the whole fastify route (server.inject, which adds
// light-my-request's own cost). The best of several rounds, so that other work on a shared machine
// weighs least; this is what the commits of the hot-path changes quote as before/after.

import { Registry } from 'prom-client';
import { pino } from 'pino';
import { allowed, patched } from '../app/admission/codec.ts';
import { createMetrics } from '../app/server/metrics.ts';
import { review } from '../app/inject/review.ts';
import { buildServer } from '../app/server/server.ts';
import { benchConfig, generateLoads } from './reviews.ts';

const ROUNDS = 7;

function best(iterations: number, fn: () => unknown): number {
  let bestMicros = Number.POSITIVE_INFINITY;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    bestMicros = Math.min(bestMicros, Number(process.hrtime.bigint() - start) / 1e3 / iterations);
  }
  return bestMicros;
}

async function bestAsync(iterations: number, fn: () => Promise<unknown>): Promise<number> {
  let bestMicros = Number.POSITIVE_INFINITY;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) await fn();
    bestMicros = Math.min(bestMicros, Number(process.hrtime.bigint() - start) / 1e3 / iterations);
  }
  return bestMicros;
}

const config = benchConfig();
const { loads, plan } = generateLoads(config);
// As in production: info-level JSON lines, here to /dev/null.
const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
const app = buildServer(config, { metrics: createMetrics(new Registry(), { version: 'bench', sidecarVersion: config.sidecar.version }), logger });
await app.ready();

process.stdout.write('load                    JSON.parse   core+encode   fastify route (inject)  µs per review, best of 7\n');
for (const load of loads) {
  const text = load.body.toString('utf8');
  const iterations = load.size === 'large' ? 40 : 4000;
  const request = (JSON.parse(text) as { request: Parameters<typeof review>[0] }).request;
  const parse = best(iterations, () => JSON.parse(text));
  const core = best(iterations, () => {
    const outcome = review(request, plan);
    return outcome.patch.length > 0 ? patched(request.uid, outcome.patch, outcome.warnings, { reason: outcome.reason }) : allowed(request.uid, outcome.warnings, { reason: outcome.reason });
  });
  const route = await bestAsync(iterations / 4, () =>
    app.inject({ method: 'POST', url: '/mutate', headers: { 'content-type': 'application/json' }, payload: load.body }),
  );
  process.stdout.write(`${load.id.padEnd(22)} ${parse.toFixed(1).padStart(10)} ${core.toFixed(1).padStart(13)} ${route.toFixed(1).padStart(24)}\n`);
}
await app.close();
