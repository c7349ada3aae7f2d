// node bench/micro.ts: the webhook's own cost per review, in process, without TLS or sockets: the
// pure core (review + answer encoding) and the whole fastify route (server.inject, which adds
// light-my-request's own cost). The best of several rounds, so that other work on a shared machine
// weighs least; this is what the commits of the hot-path changes quote as before/after.

import { Registry } from 'prom-client';
import { pino } from 'pino';
import { allowed, patched } from '../app/admission/codec.ts';
import { createMetrics } from '../app/server/metrics.ts';
import { decideWith } from '../app/inject/decide.ts';
import { review, type Outcome } from '../app/inject/review.ts';
import { createReadinessCache } from '../app/kube/namespaces.ts';
import { buildServer, reviewAdmission } from '../app/server/server.ts';
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

// One decision per review (issue 26 item 2), side by side in this run: a typical CREATE in a
// namespace that is checked (its facts cached, as after the first pod), through the path the server
// takes now (decide once, finish the pending decision with the lookup) and through the call
// sequence it took before (decide to learn whether to look up, then review() deciding again with
// the facts). CPU time of this process (user + system) per review, answer encoding included; the
// two take turns, best of 7 rounds each.
{
  const load = loads.find((l) => l.id === 'typical-create')!;
  const request = (JSON.parse(load.body.toString('utf8')) as { request: Parameters<typeof review>[0] }).request;
  const readiness = createReadinessCache({ fetch: async () => ({ serviceAccount: true, licenseSecret: true }) });
  const encode = (outcome: Outcome) =>
    outcome.patch.length > 0 ? patched(request.uid, outcome.patch, outcome.warnings, { reason: outcome.reason }) : allowed(request.uid, outcome.warnings, { reason: outcome.reason });
  const paths: Record<string, () => Promise<unknown>> = {
    'decided twice (before)': async () => {
      if (decideWith(request, plan).action !== 'inject') return encode(review(request, plan));
      const lookup = await readiness.get(request.namespace!);
      if (!lookup.ok) throw new Error('bench: the cached lookup failed');
      return encode(review(request, plan, { namespace: lookup.facts }));
    },
    'decided once (now)': async () => encode(await reviewAdmission(request, plan, readiness)),
  };
  for (const path of Object.values(paths)) if (JSON.stringify(await path()) !== JSON.stringify(await paths['decided once (now)']!())) throw new Error('bench: the two paths answer differently');
  const iterations = 4000;
  const cpu: Record<string, number> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, path] of round % 2 === 0 ? Object.entries(paths) : Object.entries(paths).reverse()) {
      const start = process.cpuUsage();
      for (let i = 0; i < iterations; i++) await path();
      const used = process.cpuUsage(start);
      cpu[name] = Math.min(cpu[name] ?? Number.POSITIVE_INFINITY, (used.user + used.system) / iterations);
    }
  }
  process.stdout.write(`\n${load.id} in a checked namespace (facts cached), core + lookup + encode, µs CPU per review, best of ${ROUNDS}:\n`);
  for (const [name, micros] of Object.entries(cpu)) process.stdout.write(`  ${name.padEnd(24)} ${micros.toFixed(1).padStart(7)}\n`);
}
