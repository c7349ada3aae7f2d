// npm run fuzz [-- --count=N] [-- --seed=S] (issue 17 item 6): sends generated and byte-mutated
// AdmissionReviews to the webhook as built (build/app/main.js) over HTTPS keep-alive, and checks
// every answer: no 5xx, no dropped connection, the process alive; a body that is not JSON gets a
// 4xx; every 200 is a well-formed allowed review for the uid sent, and its patch applies strictly
// to the object sent (every 10th patched pod is sent again: no patch). Inputs are half fast-check
// arbitraries (pod-shaped reviews with wrong types, odd keys, our annotations, any kind and
// operation) and half byte mutations (flip, delete, duplicate, insert, truncate) of the golden
// inputs and of generated reviews. Heap and RSS are read after the first tenth and at the end,
// each after a full GC (through the webhook's inspector on 127.0.0.1). `npm run bench -- --quick` runs a short version.

import { readdirSync, readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { canPin, prepareFiles, rssMiB, start, stop, type Files, type Started } from './harness.ts';
import { generateLoads } from './reviews.ts';
import { FUZZ_AT_SCALE_HEADING, writeSection } from './results-file.ts';
import { post, type Target } from './load.ts';

const GOLDEN = join(import.meta.dirname, '..', 'test', 'testdata', 'golden');
const CONCURRENCY = 8;

export interface FuzzResult {
  count: number;
  seed: number;
  seconds: number;
  byStatus: Record<string, number>;
  /** 5xx, dropped connections, wrong answers: each with a short reason; must be empty. */
  failures: string[];
  patched: number;
  reReviewed: number;
  rssStartMiB: number;
  rssEndMiB: number;
  /** Heap in use after a full GC, after the first tenth and at the end. */
  heapStartMiB: number;
  heapEndMiB: number;
  survived: boolean;
  loadAverage: number;
}

// ---- inputs ----

const oddKey = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'pandocore.xyz/protect', 'pandocore.xyz/status', 'pandocore.xyz/version', 'pandocore.xyz/mode', 'a/b~c', ''),
);
const anyJson = fc.jsonValue({ maxDepth: 3 });
const scalar = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null));
// Mostly the right type, now and then anything: many fields are wrong at once often enough.
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 12, arbitrary: arb }, { weight: 1, arbitrary: anyJson });
const name = fc.oneof(fc.constantFrom('app', 'pando-sidecar', 'init', 'envoy'), fc.string({ maxLength: 10 }));

const container = maybe(
  fc.record(
    {
      name: maybe(name),
      image: maybe(fc.constantFrom('nginx:1.27', 'registry.pandocore.xyz/pandocore/sidecar:0.9.0', '')),
      restartPolicy: maybe(fc.constantFrom('Always', 'Never')),
      env: maybe(fc.array(fc.record({ name: maybe(fc.constantFrom('PANDO_MODE', 'X')), value: maybe(fc.constantFrom('monitor', 'enforce', 'y')) }), { maxLength: 3 })),
      resources: maybe(fc.record({ requests: fc.dictionary(fc.constantFrom('cpu', 'memory'), maybe(fc.constantFrom('10m', '1', '64Mi', 'x'))), limits: fc.dictionary(fc.constantFrom('cpu', 'memory'), maybe(fc.constantFrom('10m', '2', '1Gi', ''))) })),
      volumeMounts: maybe(fc.array(fc.record({ name: fc.string({ maxLength: 6 }), mountPath: fc.string({ maxLength: 6 }) }), { maxLength: 2 })),
    },
    { requiredKeys: [] },
  ),
);

const tokenVolume = fc.constant({ name: 'kube-api-access-abcde', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } });

const pod = fc.record(
  {
    apiVersion: fc.constant('v1'),
    kind: fc.constant('Pod'),
    metadata: maybe(
      fc.record(
        {
          name: maybe(fc.string({ maxLength: 10 })),
          generateName: maybe(fc.string({ maxLength: 10 })),
          namespace: maybe(fc.constantFrom('shop', 'kube-system', 'pando-system')),
          labels: maybe(fc.oneof({ weight: 3, arbitrary: fc.constant({ 'pandocore.xyz/protect': 'true' }) }, { weight: 1, arbitrary: fc.dictionary(oddKey, maybe(fc.constantFrom('true', 'false', 'yes')), { maxKeys: 4 }) })),
          annotations: maybe(fc.dictionary(oddKey, maybe(fc.oneof(fc.constantFrom('injected', '1.0.0', 'enforce', 'debug'), fc.string({ maxLength: 8 }))), { maxKeys: 5 })),
        },
        { requiredKeys: ['labels'] },
      ),
    ),
    spec: maybe(
      fc.record(
        {
          containers: maybe(fc.array(container, { minLength: 1, maxLength: 4 })),
          initContainers: maybe(fc.array(container, { maxLength: 4 })),
          serviceAccountName: maybe(fc.constantFrom('default', 'payments', 'pando-sidecar', '')),
          serviceAccount: maybe(fc.constantFrom('default', 'other')),
          volumes: maybe(fc.array(fc.oneof(tokenVolume, anyJson), { maxLength: 3 })),
          // Pod-level resources are rare (most would not fit the sidecar: pod-resources-too-small).
          resources: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: maybe(fc.record({ requests: fc.dictionary(fc.constantFrom('cpu', 'memory'), maybe(fc.constantFrom('100m', '1', '32Mi'))), limits: fc.dictionary(fc.constantFrom('cpu', 'memory'), maybe(fc.constantFrom('100m', '64Mi'))) })) }),
          nodeSelector: maybe(fc.dictionary(oddKey, fc.string({ maxLength: 4 }), { maxKeys: 3 })),
        },
        { requiredKeys: ['containers'] },
      ),
    ),
  },
  { requiredKeys: ['metadata', 'spec'] },
);

const podKind = { group: '', version: 'v1', kind: 'Pod' };
const review = fc.record({
  apiVersion: fc.oneof({ weight: 9, arbitrary: fc.constant('admission.k8s.io/v1') }, { weight: 1, arbitrary: scalar }),
  kind: fc.oneof({ weight: 9, arbitrary: fc.constant('AdmissionReview') }, { weight: 1, arbitrary: scalar }),
  request: maybe(
    fc.record(
      {
        uid: fc.oneof({ weight: 9, arbitrary: fc.uuid() }, { weight: 1, arbitrary: scalar }),
        kind: maybe(fc.oneof({ weight: 12, arbitrary: fc.constant(podKind) }, { weight: 1, arbitrary: fc.record({ group: fc.constantFrom('', 'apps'), version: fc.constant('v1'), kind: fc.constantFrom('Pod', 'Deployment') }) })),
        resource: maybe(fc.oneof({ weight: 8, arbitrary: fc.constant({ group: '', version: 'v1', resource: 'pods' }) }, { weight: 1, arbitrary: fc.constant({ group: 'apps', version: 'v1', resource: 'deployments' }) })),
        subResource: fc.oneof({ weight: 12, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('status', 'ephemeralcontainers') }),
        namespace: maybe(fc.constantFrom('shop', 'kube-system', 'pando-system', '')),
        operation: maybe(fc.constantFrom('CREATE', 'CREATE', 'CREATE', 'CREATE', 'CREATE', 'UPDATE', 'DELETE', 'CONNECT')),
        object: fc.oneof({ weight: 12, arbitrary: pod }, { weight: 1, arbitrary: anyJson }),
        dryRun: maybe(fc.boolean()),
      },
      { requiredKeys: ['uid', 'kind', 'resource', 'subResource', 'operation', 'object'] },
    ),
  ),
});

// Half the generated reviews are labelled pod CREATEs, so the patch checks get plenty to check.
const labelledCreate = fc.record({
  apiVersion: fc.constant('admission.k8s.io/v1'),
  kind: fc.constant('AdmissionReview'),
  request: fc.record({
    uid: fc.uuid(),
    kind: fc.constant(podKind),
    resource: fc.constant({ group: '', version: 'v1', resource: 'pods' }),
    namespace: fc.constant('shop'),
    operation: fc.constant('CREATE'),
    object: pod.map((p) => ({ ...p, metadata: { ...(typeof p.metadata === 'object' ? p.metadata : {}), labels: { 'pandocore.xyz/protect': 'true' } } })),
  }),
});
const anyReview = fc.oneof(review, labelledCreate);

/** A small seeded generator for the byte mutations (xorshift32). */
function random(seed: number) {
  let state = seed >>> 0 || 1;
  return (below: number) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % Math.max(1, below);
  };
}

function mutateBytes(source: Buffer, next: (below: number) => number): Buffer {
  let bytes = Buffer.from(source);
  for (let n = 1 + next(4); n > 0; n--) {
    const at = next(bytes.length);
    const span = 1 + next(16);
    switch (next(6)) {
      case 0: // flip a bit
        bytes[at] = bytes[at]! ^ (1 << next(8));
        break;
      case 1: // delete a span
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + span)]);
        break;
      case 2: // duplicate a span
        bytes = Buffer.concat([bytes.subarray(0, at + span), bytes.subarray(at, at + span), bytes.subarray(at + span)]);
        break;
      case 3: // insert JSON punctuation or an odd character
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(['{', '}', '[', ']', '"', ',', ':', '\\', 'null', '\u0000', '\u00ff', '"__proto__":{}', '1e999'][next(13)]!), bytes.subarray(at)]);
        break;
      case 4: // truncate
        bytes = bytes.subarray(0, at);
        break;
      default: // a digit or a letter in place
        bytes[at] = '0123456789tfnaz'.charCodeAt(next(15));
    }
  }
  return bytes;
}

/** `count` request bodies, half generated and half byte-mutated, the same for the same seed. */
export function* fuzzBodies(count: number, seed: number): Generator<Buffer> {
  const golden = readdirSync(GOLDEN).map((dir) => readFileSync(join(GOLDEN, dir, 'input.json')));
  const next = random(seed);
  const batch = 500;
  for (let made = 0; made < count; made += batch) {
    const generated = fc.sample(anyReview, { seed: seed + made, numRuns: Math.min(batch, count - made) });
    for (const value of generated) {
      const body = Buffer.from(JSON.stringify(value));
      if (next(2) === 0) yield body;
      else yield mutateBytes(next(3) === 0 ? golden[next(golden.length)]! : body, next);
    }
  }
}

// ---- sending and checking ----

/** One review; a connection that fails or times out is status 0. */
function send(target: Target, agent: Agent, body: Buffer): Promise<{ status: number; body: string }> {
  return post(target, body, agent).catch((err: Error) => ({ status: 0, body: err.message }));
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

type Review = { request?: { uid?: unknown; object?: unknown } };
type Answer = { status: number; body: string };
type Response = { apiVersion?: string; kind?: string; response?: { uid?: string; allowed?: boolean; patch?: string; patchType?: string; warnings?: string[] } };

/** Why the answer is wrong, or undefined. */
function judge(sent: Buffer, answer: Answer): { wrong?: string; patched?: { review: Review; pod: unknown } } {
  if (answer.status === 0) return { wrong: `connection failed: ${answer.body.slice(0, 80)}` };
  if (answer.status >= 500) return { wrong: `HTTP ${answer.status}: ${answer.body.slice(0, 80)}` };
  const sentReview = parse(sent.toString('utf8')) as Review | undefined;
  if (sentReview === undefined) return answer.status >= 400 ? {} : { wrong: `HTTP ${answer.status} for a body that is not JSON` };
  if (answer.status !== 200) return {};
  const got = parse(answer.body) as Response | undefined;
  const response = got?.response;
  if (!response || got.apiVersion !== 'admission.k8s.io/v1' || got.kind !== 'AdmissionReview') return { wrong: 'a 200 that is not an AdmissionReview' };
  if (response.uid !== sentReview.request?.uid) return { wrong: 'response.uid differs from the request' };
  if (response.allowed !== true) return { wrong: 'not allowed' };
  for (const w of response.warnings ?? []) if (w.length > 120 || !w.startsWith('pandocore:')) return { wrong: `warning ${JSON.stringify(w.slice(0, 40))}` };
  if (response.patch === undefined) return response.patchType === undefined ? {} : { wrong: 'patchType without a patch' };
  if (response.patchType !== 'JSONPatch') return { wrong: `patchType ${response.patchType}` };
  try {
    const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Operation[];
    const pod = fastJsonPatch.applyPatch(structuredClone(sentReview.request!.object), patch, true, false).newDocument;
    return { patched: { review: sentReview, pod } };
  } catch (err) {
    return { wrong: `patch does not apply strictly: ${(err as Error).message.slice(0, 80)}` };
  }
}

/**
 * A full garbage collection in the webhook through its inspector (started on 127.0.0.1 with a
 * random port), then its heap in use and RSS: memory that stays is held, not just not yet collected.
 */
async function collectAndMeasure(started: Started): Promise<{ heapMiB: number; rssMiB: number }> {
  const url = /ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.exec(started.stderr())?.[0];
  if (!url) throw new Error('bench: the webhook printed no inspector address');
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let id = 0;
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<{ result?: { result?: { value?: unknown } } }>((resolve) => {
      const mine = ++id;
      socket.addEventListener('message', function onMessage(event) {
        const message = JSON.parse(String(event.data)) as { id?: number };
        if (message.id !== mine) return;
        socket.removeEventListener('message', onMessage);
        resolve(message as never);
      });
      socket.send(JSON.stringify({ id: mine, method, params }));
    });
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.collectGarbage');
  const heap = await call('Runtime.evaluate', { expression: 'process.memoryUsage().heapUsed', returnByValue: true });
  socket.close();
  return { heapMiB: Number(heap.result?.result?.value) / 2 ** 20, rssMiB: rssMiB(started.child.pid!) };
}

export async function runFuzz(files: Files, count: number, seed: number, pinned = canPin()): Promise<FuzzResult> {
  const probe = generateLoads().loads[0]!;
  const started = await start('webhook', files, probe, pinned, { nodeFlags: ['--inspect=127.0.0.1:0'] });
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: files.ca });
  const byStatus: Record<string, number> = {};
  const failures: string[] = [];
  let patched = 0;
  let reReviewed = 0;
  let sent = 0;
  let start_: { heapMiB: number; rssMiB: number } | undefined;
  let measuring = false;
  const began = performance.now();
  const pause = () => new Promise((resolve) => setTimeout(resolve, 500));
  try {
    const bodies = fuzzBodies(count, seed);
    const worker = async () => {
      for (let item = bodies.next(); !item.done; item = bodies.next()) {
        const body = item.value;
        sent++;
        const answer = await send(started.target, agent, body);
        byStatus[answer.status] = (byStatus[answer.status] ?? 0) + 1;
        const verdict = judge(body, answer);
        if (verdict.wrong) failures.push(verdict.wrong);
        if (verdict.patched) {
          patched++;
          if (patched % 10 === 0) {
            // Reinvocation: the patched pod, reviewed again, needs nothing more.
            const again = Buffer.from(JSON.stringify({ ...verdict.patched.review, request: { ...verdict.patched.review.request, object: verdict.patched.pod } }));
            const second = await send(started.target, agent, again);
            reReviewed++;
            const response = (parse(second.body) as Response | undefined)?.response;
            if (second.status !== 200 || response?.patch !== undefined) failures.push(`second review: HTTP ${second.status}, ${response?.patch ? 'a patch again' : 'no answer'}`);
          }
        }
        if (sent >= Math.ceil(count / 10) && !measuring) {
          measuring = true;
          start_ = await collectAndMeasure(started);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await pause();
    const end = await collectAndMeasure(started);
    const survived = started.child.exitCode === null && started.child.signalCode === null;
    if (!survived) failures.push(`the webhook exited: ${started.stderr().slice(-200)}`);
    return {
      count: sent,
      seed,
      seconds: (performance.now() - began) / 1000,
      byStatus,
      failures,
      patched,
      reReviewed,
      rssStartMiB: start_?.rssMiB ?? Number.NaN,
      rssEndMiB: end.rssMiB,
      heapStartMiB: start_?.heapMiB ?? Number.NaN,
      heapEndMiB: end.heapMiB,
      survived,
      loadAverage: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
    };
  } finally {
    agent.destroy();
    await stop(started);
  }
}

export function renderFuzz(r: FuzzResult, heading = '## Fuzz'): string {
  const statuses = Object.entries(r.byStatus).sort().map(([status, n]) => `${status}: ${n.toLocaleString('en-US')}`).join(', ');
  const growth = (end: number, begin: number) => `${begin.toFixed(0)} / ${end.toFixed(0)} (${end >= begin ? '+' : ''}${((end / begin - 1) * 100).toFixed(1)} %)`;
  return [
    `${heading}: ${r.count.toLocaleString('en-US')} generated and byte-mutated reviews (seed ${r.seed})`,
    '',
    `Half fast-check arbitraries, half byte mutations of the golden inputs and of generated reviews, over HTTPS keep-alive (${CONCURRENCY} at once) to build/app/main.js; ` +
      `every answer checked, every 10th patched pod reviewed again. ${r.seconds.toFixed(1)} s at load average ${r.loadAverage}.`,
    '',
    '| answers by HTTP status | 5xx, dropped or wrong | patches applied strictly | reviewed again, no patch | crashed | after a full GC, first tenth / end: RSS (MiB) | heap in use (MiB) |',
    '| --- | ---: | ---: | ---: | --- | ---: | ---: |',
    `| ${statuses} | ${r.failures.length} | ${r.patched.toLocaleString('en-US')} | ${r.reReviewed.toLocaleString('en-US')} | ${r.survived ? 'no' : 'yes'} | ${growth(r.rssEndMiB, r.rssStartMiB)} | ${growth(r.heapEndMiB, r.heapStartMiB)} |`,
    '',
    ...(r.failures.length > 0 ? ['Failures (first 10):', '', ...r.failures.slice(0, 10).map((f) => `- ${f}`), ''] : []),
  ].join('\n');
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const count = Number(value('count') ?? 100_000);
  const seed = Number(value('seed') ?? 17);
  const files = await prepareFiles();
  const result = await runFuzz(files, count, seed);
  const markdown = renderFuzz(result, FUZZ_AT_SCALE_HEADING).replace(' reviews (seed', ` reviews by \`npm run fuzz\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC (seed`);
  // The full run (100,000 or more) is the one RESULTS.md records.
  if (count >= 100_000 && result.failures.length === 0) writeSection(FUZZ_AT_SCALE_HEADING, markdown);
  process.stdout.write(`${markdown}\n`);
  if (result.failures.length > 0) process.exitCode = 1;
}
