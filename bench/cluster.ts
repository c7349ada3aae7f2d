// npm run bench -- --cluster (issue 17 item 1): the admission overhead as users feel it, measured at
// the API server of the e2e control plane (test/cluster/harness.ts; build it first with
// `bash test/cluster/build.sh`). For each webhook (ours, the Go peers, the ceilings) registered by
// URL under a host name that resolves to 127.0.0.1 (bench/hosts.ts), so that the API server offers
// it only HTTP/1.1, as it does to every Service webhook; each server reports the protocol of every
// connection it accepted, and the run fails unless all are http/1.1. Server-side dry-run pod CREATEs at a fixed rate, labelled (the webhook is called) and
// unlabelled (objectSelector: it is not) interleaved, so the difference is the webhook's share;
// then a burst of real CREATEs at once, each checked for the sidecar. Each webhook is warmed up first. Client-side p50/p99 and the
// API server's own apiserver_admission_webhook_admission_duration_seconds (sum/count over the run).

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startCluster, type Cluster } from '../test/cluster/harness.ts';
import { SIDECAR_NAME, SIDECAR_SERVICE_ACCOUNT } from '../app/contract.ts';
import { ROOT, RESULTS_DIR, canPin, loadAverage, log, prepareFiles, start, stop, writeGoConfig, type Files, type ServerId } from './harness.ts';
import { generateLoads } from './reviews.ts';
import { review } from '../app/inject/review.ts';
import type { AdmissionReview, Pod } from '../app/admission/types.ts';
import { CLUSTER_HEADING, writeSection } from './results-file.ts';
import { addHostsEntry } from './hosts.ts';

export const NAMESPACE = 'pando-bench';
export const CONFIG = 'pando-bench';
const WEBHOOK = 'bench.pandocore.xyz';
const LABEL = { 'pandocore.xyz/protect': 'true' };
/** Not `localhost` nor an IP literal: the API server's isLocalHost() is false for it (bench/hosts.ts). */
export const WEBHOOK_HOST = 'webhook.pando-bench.test';
const ALPN_PRELOAD = join(ROOT, 'bench', 'alpn-report.mjs');

export interface RateResult {
  rate: number;
  sent: number;
  labelled: { p50Ms: number; p99Ms: number; injected: number; failed: number };
  unlabelled: { p50Ms: number; p99Ms: number; failed: number };
  /** The API server's own mean webhook call time during the run (its histogram's sum / count). */
  apiserverMeanMs: number;
  /** Of which the HTTP exchange, as the API server's rest client times it (mean, ms). */
  restMeanMs: number;
  sockets: Sockets;
}

/** TCP connections from the API server to the webhook's port during a run, seen on the server side. */
export interface Sockets {
  /** Most established at one time (sampled every 20 ms). */
  max: number;
  /** Distinct client ports seen: a lower bound of the connections opened. */
  distinct: number;
}

/** The rows: our webhook, the Go peers, and the bare ceiling server in two forms. */
export type ClusterRow = ServerId | 'ceiling-patch';

export interface ClusterResult {
  server: ClusterRow;
  /** Whether the server answers with a patch (the ceiling's first form does not). */
  patches: boolean;
  /** The ALPN protocol of each connection the server accepted from the API server, as the server saw it: count by protocol. */
  alpn: Record<string, number>;
  rates: RateResult[];
  burst: { pods: number; injected: number; failed: number; seconds: number; apiserverMeanMs: number; restMeanMs: number; sockets: Sockets; serverCpuMs: number };
}

/** CPU time (user + system) of a process so far, ms, from /proc/PID/stat (clock ticks of 10 ms). */
function cpuMs(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/** Established connections to `port` on 127.0.0.1 (server side), by client port, from /proc/net/tcp. */
function clientPorts(port: number): string[] {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const found: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const [, local, remote, state] = line.trim().split(/\s+/);
      if (state === '01' && local?.endsWith(hex)) found.push(remote!);
    }
  }
  return found;
}

function watchSockets(port: number): () => Sockets {
  let max = 0;
  const seen = new Set<string>();
  const sample = () => {
    const now = clientPorts(port);
    max = Math.max(max, now.length);
    for (const p of now) seen.add(p);
  };
  sample();
  const timer = setInterval(sample, 20);
  return () => {
    clearInterval(timer);
    sample();
    return { max, distinct: seen.size };
  };
}

/** The protocols a server reported (bench/alpn-report.mjs, the Go peers' ALPN_REPORT_FILE), counted. */
function alpnReport(file: string): Record<string, number> {
  const counts: Record<string, number> = {};
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  for (const line of text.split('\n')) if (line !== '') counts[line] = (counts[line] ?? 0) + 1;
  return counts;
}

const alpnText = (counts: Record<string, number>) =>
  Object.entries(counts)
    .map(([protocol, n]) => `${protocol} ×${n}`)
    .join(', ') || 'no connection';

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** A keep-alive client with the admin credentials: a client does not reconnect per pod either. */
export function client(cluster: Cluster) {
  const user = cluster.kubeConfig.getCurrentUser();
  const decode = (v: string | undefined) => (v ? Buffer.from(v, 'base64').toString('utf8') : undefined);
  const agent = new Agent({ keepAlive: true, maxSockets: 64, ca: cluster.caPem, cert: decode(user?.certData), key: decode(user?.keyData) });
  const url = new URL(cluster.server);
  return {
    agent,
    send(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; ms: number }> {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const began = performance.now();
      return new Promise((resolve) => {
        const req = request(
          { host: url.hostname, port: url.port, path, method, agent, timeout: 30_000, headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let parsed: unknown = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                // not JSON (metrics)
              }
              resolve({ status: res.statusCode ?? 0, body: parsed, ms: performance.now() - began });
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', () => resolve({ status: 0, body: undefined, ms: performance.now() - began }));
        req.end(payload);
      });
    },
  };
}

export type Client = ReturnType<typeof client>;

function pod(labelled: boolean, i: number) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'bench-', labels: { app: 'bench', ...(labelled ? LABEL : {}) }, annotations: { 'bench.pandocore.xyz/n': String(i) } },
    spec: { containers: [{ name: 'app', image: 'registry.example.com/app:1.0', resources: { requests: { cpu: '10m', memory: '16Mi' } } }] },
  };
}

export const injected = (body: any) => Array.isArray(body?.spec?.initContainers) && body.spec.initContainers.some((c: { name?: string }) => c.name === SIDECAR_NAME);

/** Sum (seconds) and count of two API server histograms (each series summed), read from its /metrics. */
interface Histograms {
  /** apiserver_admission_webhook_admission_duration_seconds of our configuration: the whole call. */
  webhook: [number, number];
  /** rest_client_request_duration_seconds for the webhook's host:port: the HTTP exchange inside it. */
  rest: [number, number];
}

/**
 * The whole call is timed around callAttrMutatingHook (staging/src/k8s.io/apiserver/pkg/admission/
 * plugin/webhook/mutating/dispatcher.go, v1.37.2): building and encoding the review, the HTTP
 * exchange, decoding and checking the answer, applying the patch. The rest client's latency
 * (staging/src/k8s.io/client-go/rest/request.go, Request.request) times only the exchange: dial and
 * TLS handshake when a new connection is needed, sending, waiting, reading the answer.
 */
async function histograms(api: Client, port: number): Promise<Histograms> {
  const text = String((await api.send('GET', '/metrics')).body);
  const out: Histograms = { webhook: [0, 0], rest: [0, 0] };
  const host = `host="${WEBHOOK_HOST}:${port}"`;
  for (const line of text.split('\n')) {
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.includes(`name="${WEBHOOK}"`) && line.includes('type="admit"')) {
      if (line.startsWith('apiserver_admission_webhook_admission_duration_seconds_sum')) out.webhook[0] += value;
      if (line.startsWith('apiserver_admission_webhook_admission_duration_seconds_count')) out.webhook[1] += value;
    } else if (line.includes(host) && line.includes('verb="POST"')) {
      if (line.startsWith('rest_client_request_duration_seconds_sum')) out.rest[0] += value;
      if (line.startsWith('rest_client_request_duration_seconds_count')) out.rest[1] += value;
    }
  }
  return out;
}

async function meansSince(api: Client, port: number, before: Histograms): Promise<{ apiserverMeanMs: number; restMeanMs: number }> {
  const now = await histograms(api, port);
  const mean = (a: [number, number], b: [number, number]) => (a[1] > b[1] ? ((a[0] - b[0]) / (a[1] - b[1])) * 1000 : Number.NaN);
  return { apiserverMeanMs: mean(now.webhook, before.webhook), restMeanMs: mean(now.rest, before.rest) };
}

export async function register(api: Client, files: Files, port: number, tookEffect: (answer: { body: any }) => boolean): Promise<void> {
  await api.send('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${CONFIG}`);
  const created = await api.send('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: CONFIG },
    webhooks: [
      {
        name: WEBHOOK,
        admissionReviewVersions: ['v1'],
        clientConfig: { url: `https://${WEBHOOK_HOST}:${port}/mutate`, caBundle: Buffer.from(files.ca).toString('base64') },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NAMESPACE } },
        objectSelector: { matchLabels: LABEL },
        failurePolicy: 'Ignore',
        sideEffects: 'None',
        reinvocationPolicy: 'IfNeeded',
        timeoutSeconds: 5,
      },
    ],
  });
  if (created.status !== 201) throw new Error(`bench: registering the webhook: HTTP ${created.status} ${JSON.stringify(created.body).slice(0, 200)}`);
  // The configuration takes effect once the API server's informer has it.
  const deadline = performance.now() + 20_000;
  let last = '';
  while (performance.now() < deadline) {
    const answer = await api.send('POST', `/api/v1/namespaces/${NAMESPACE}/pods?dryRun=All`, pod(true, 0));
    if (tookEffect(answer)) return;
    last = `HTTP ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`bench: the webhook configuration did not take effect within 20 s (last: ${last})`);
}

/** Labelled and unlabelled dry-run creates, alternating, evenly spaced at `rate` per second. */
async function paced(api: Client, rate: number, seconds: number, port: number): Promise<RateResult> {
  const total = Math.max(2, Math.round(rate * seconds));
  const labelled: number[] = [];
  const unlabelled: number[] = [];
  let injectedCount = 0;
  let failedLabelled = 0;
  let failedUnlabelled = 0;
  const before = await histograms(api, port);
  const sockets = watchSockets(port);
  const began = performance.now();
  const pending: Array<Promise<void>> = [];
  for (let i = 0; i < total; i++) {
    const due = began + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const isLabelled = i % 2 === 0;
    pending.push(
      api.send('POST', `/api/v1/namespaces/${NAMESPACE}/pods?dryRun=All`, pod(isLabelled, i)).then((answer) => {
        // From the due time, so a late send counts against the run (as the webhook benchmark's paced client).
        const ms = answer.ms + Math.max(0, -wait);
        if (answer.status !== 201) {
          if (isLabelled) failedLabelled++;
          else failedUnlabelled++;
          return;
        }
        if (isLabelled) {
          labelled.push(ms);
          if (injected(answer.body)) injectedCount++;
        } else {
          unlabelled.push(ms);
        }
      }),
    );
  }
  await Promise.all(pending);
  const socketsSeen = sockets();
  return {
    rate,
    sent: total,
    labelled: { p50Ms: percentile(labelled, 50), p99Ms: percentile(labelled, 99), injected: injectedCount, failed: failedLabelled },
    unlabelled: { p50Ms: percentile(unlabelled, 50), p99Ms: percentile(unlabelled, 99), failed: failedUnlabelled },
    ...(await meansSince(api, port, before)),
    sockets: socketsSeen,
  };
}

async function burst(api: Client, pods: number, port: number, pid: number | undefined): Promise<ClusterResult['burst']> {
  const before = await histograms(api, port);
  const cpuBefore = cpuMs(pid);
  const sockets = watchSockets(port);
  const began = performance.now();
  const answers = await Promise.all(Array.from({ length: pods }, (_, i) => api.send('POST', `/api/v1/namespaces/${NAMESPACE}/pods`, pod(true, i))));
  const seconds = (performance.now() - began) / 1000;
  const socketsSeen = sockets();
  const serverCpuMs = cpuMs(pid) - cpuBefore;
  const result = {
    pods,
    injected: answers.filter((a) => a.status === 201 && injected(a.body)).length,
    failed: answers.filter((a) => a.status !== 201).length,
    seconds,
    ...(await meansSince(api, port, before)),
    sockets: socketsSeen,
    serverCpuMs,
  };
  await api.send('DELETE', `/api/v1/namespaces/${NAMESPACE}/pods?gracePeriodSeconds=0`);
  return result;
}

export async function runCluster(files: Files, servers: readonly ServerId[], quick: boolean, log: (line: string) => void): Promise<ClusterResult[]> {
  const cluster = await startCluster(log);
  const api = client(cluster);
  const probe = generateLoads().loads[0]!;
  const results: ClusterResult[] = [];
  try {
    await api.send('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    // The injected pod runs as the sidecar's ServiceAccount (`pando setup-namespace` makes it).
    await api.send('POST', `/api/v1/namespaces/${NAMESPACE}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SIDECAR_SERVICE_ACCOUNT } });
    // Pods need the namespace's default ServiceAccount, which the controller-manager creates.
    for (let i = 0; i < 100 && (await api.send('GET', `/api/v1/namespaces/${NAMESPACE}/serviceaccounts/default`)).status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // The ceiling first: its first form records a real review of the API server, from which our
    // injection computes the fixed patch of the second and third forms (the patch our webhook sends).
    const recorded = join(files.dir, 'recorded-review.json');
    const patchFile = join(files.dir, 'ceiling-patch.json');
    const rows: ClusterRow[] = [...(servers.includes('ceiling') ? (['ceiling', 'ceiling-patch'] as const) : []), ...servers.filter((s) => s !== 'ceiling')];
    for (const row of rows) {
      const server: ServerId = row === 'ceiling-patch' ? 'ceiling' : row;
      const patches = row !== 'ceiling';
      if (row === 'ceiling-patch') writePatch(recorded, patchFile);
      const alpnFile = join(files.dir, `alpn-${row}.txt`);
      const env: Record<string, string> = {
        ALPN_REPORT_FILE: alpnFile,
        ...(server === 'webhook' || server === 'ceiling' ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${ALPN_PRELOAD}`.trim() } : {}),
        ...(server === 'ceiling' ? { CEILING_ECHO_UID: '1', ...(patches ? { CEILING_PATCH_FILE: patchFile } : { CEILING_RECORD_FILE: recorded }) } : {}),
      };
      if (row === 'ceiling') rmSync(recorded, { force: true });
      const started = await start(server, files, probe, canPin(), { env });
      const port = started.target.port;
      // The harness's own probe connections are not the API server's.
      rmSync(alpnFile, { force: true });
      try {
        // In effect once a labelled dry-run reaches this server: injected, or (no patch) recorded.
        await register(api, files, port, (answer) => (patches ? injected(answer.body) : existsSync(recorded)));
        // Warm-up, not counted: the first reviews of a process pay for compiling its code.
        await paced(api, 100, quick ? 0.5 : 3, port);
        const rates: RateResult[] = [];
        for (const rate of [20, 100]) {
          rates.push(await paced(api, rate, quick ? 1 : 10, port));
          const r = rates.at(-1)!;
          log(`cluster ${row} ${rate}/s: labelled p50 ${r.labelled.p50Ms.toFixed(2)} p99 ${r.labelled.p99Ms.toFixed(2)} ms, unlabelled p50 ${r.unlabelled.p50Ms.toFixed(2)} p99 ${r.unlabelled.p99Ms.toFixed(2)} ms, API server mean ${r.apiserverMeanMs.toFixed(2)} ms (HTTP ${r.restMeanMs.toFixed(2)}), sockets max ${r.sockets.max} distinct ${r.sockets.distinct}`);
        }
        const b = await burst(api, quick ? 50 : 500, port, started.child.pid);
        const alpn = alpnReport(alpnFile);
        log(`cluster ${row} burst: ${b.injected}/${b.pods} injected, ${b.failed} failed, ${b.seconds.toFixed(1)} s, API server mean ${b.apiserverMeanMs.toFixed(2)} ms (HTTP ${b.restMeanMs.toFixed(2)}), ALPN ${alpnText(alpn)}, sockets max ${b.sockets.max} distinct ${b.sockets.distinct}, server CPU ${b.serverCpuMs} ms`);
        results.push({ server: row, patches, alpn, rates, burst: b });
      } finally {
        await api.send('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${CONFIG}`);
        await stop(started);
      }
    }
  } finally {
    await api.send('DELETE', `/api/v1/namespaces/${NAMESPACE}`);
    api.agent.destroy();
    await cluster.stop();
  }
  return results;
}

/** The patch our injection computes for the review the API server sent the ceiling: the ceiling's fixed answer. */
function writePatch(recorded: string, patchFile: string): void {
  if (!existsSync(recorded)) throw new Error('bench: the ceiling recorded no review of the API server');
  const sent = JSON.parse(readFileSync(recorded, 'utf8')) as AdmissionReview;
  const outcome = review(sent.request!, generateLoads().plan);
  if (outcome.patch.length === 0) throw new Error(`bench: the recorded review was not injected (${outcome.reason})`);
  // The token volume's name is per pod: the ceiling puts each pod's own in place of the placeholder.
  const volume = (sent.request!.object as Pod | undefined)?.spec?.volumes?.find((v) => v.name.startsWith('kube-api-access-'))?.name;
  const text = JSON.stringify(outcome.patch);
  writeFileSync(patchFile, volume ? text.replaceAll(volume, '__KUBE_API_ACCESS__') : text);
}

const ms = (v: number) => (Number.isNaN(v) ? '–' : v.toFixed(2));

const ROW_NAMES: Record<ClusterRow, string> = {
  ceiling: 'ceiling, allowed, no patch',
  'ceiling-patch': 'ceiling, fixed patch',
  webhook: 'webhook',
  'go-peer': 'go-peer',
  'go-typed': 'go-typed',
};

const sockets = (s: Sockets) => `${s.max} / ${s.distinct}`;

export function renderCluster(results: ClusterResult[], loadAverage: { before: number; after: number }): string {
  const out = [
    `${CLUSTER_HEADING} (e2e control plane)`,
    '',
    `Generated by \`npm run bench -- --cluster\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC.`,
    '',
    'Server-side dry-run pod CREATEs at a fixed rate, labelled (the webhook is called) and unlabelled (objectSelector: it is not) alternating, ' +
      `over a keep-alive client; each webhook by URL under ${WEBHOOK_HOST} (a hosts entry for 127.0.0.1: not localhost nor a loopback IP, so the API server offers only HTTP/1.1 in ALPN, as to a Service webhook), pinned to core 0; API server, etcd and client share the machine. ` +
      'The ceiling rows are bench/ceiling.mjs (a bare Node HTTPS server, no parsing) as the webhook: allowed with no patch (the API server\'s own call path: encode, TLS, HTTP, decode), ' +
      'and with the fixed patch our injection computes for this pod (adds the patch apply). ' +
      `Overhead = labelled - unlabelled. API server mean: its apiserver_admission_webhook_admission_duration_seconds sum/count over the run (the whole call: encode, HTTP, decode, patch apply); HTTP exchange: its rest_client_request_duration_seconds for the webhook's host:port (connect and TLS when needed, send, wait, read). Load average before/after: ${loadAverage.before} / ${loadAverage.after}.`,
    '',
    '| webhook | rate | labelled p50 / p99 (ms) | unlabelled p50 / p99 (ms) | overhead p50 / p99 (ms) | API server mean webhook call (ms) | of which HTTP exchange (ms) | injected |',
    '| --- | ---: | --- | --- | --- | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    for (const x of r.rates) {
      out.push(
        `| ${ROW_NAMES[r.server]} | ${x.rate}/s | ${ms(x.labelled.p50Ms)} / ${ms(x.labelled.p99Ms)} | ${ms(x.unlabelled.p50Ms)} / ${ms(x.unlabelled.p99Ms)} | ` +
          `${ms(x.labelled.p50Ms - x.unlabelled.p50Ms)} / ${ms(x.labelled.p99Ms - x.unlabelled.p99Ms)} | ${ms(x.apiserverMeanMs)} | ${ms(x.restMeanMs)} | ${r.patches ? `${x.labelled.injected}/${Math.ceil(x.sent / 2)}` : 'no patch'}${x.labelled.failed + x.unlabelled.failed ? ` (${x.labelled.failed + x.unlabelled.failed} failed)` : ''} |`,
      );
    }
  }
  out.push(
    '',
    'Transport: the ALPN protocol of every connection each server accepted from the API server, as the server reported it (the run fails unless all are http/1.1), and the TCP connections from the API server counted on the server side ' +
      '(/proc/net/tcp every 20 ms: most at one time / distinct client ports seen, a lower bound of the connections opened).',
    '',
    '| webhook | ALPN | connections at 100/s | burst of real CREATEs at once | injected | failed | seconds | API server mean webhook call (ms) | of which HTTP exchange (ms) | connections in the burst | server CPU in the burst (ms) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const r of results) {
    const at100 = r.rates.find((x) => x.rate === 100);
    out.push(
      `| ${ROW_NAMES[r.server]} | ${alpnText(r.alpn)} | ${at100 ? sockets(at100.sockets) : '–'} | ${r.burst.pods} | ${r.patches ? r.burst.injected : 'no patch'} | ${r.burst.failed} | ${r.burst.seconds.toFixed(1)} | ${ms(r.burst.apiserverMeanMs)} | ${ms(r.burst.restMeanMs)} | ${sockets(r.burst.sockets)} | ${Number.isNaN(r.burst.serverCpuMs) ? '–' : r.burst.serverCpuMs} |`,
    );
  }
  out.push('');
  return out.join('\n');
}

/** --cluster: the admission overhead at the e2e control plane's API server (bench/cluster.ts). */
export async function clusterMain(servers: readonly ServerId[], plan: ReturnType<typeof generateLoads>['plan'], quick: boolean) {
  const files = await prepareFiles([WEBHOOK_HOST]);
  writeGoConfig(files, plan);
  const hosts = addHostsEntry(WEBHOOK_HOST);
  try {
    const before = loadAverage();
    const results = await runCluster(files, servers, quick, log);
    const markdown = `${renderCluster(results, { before, after: loadAverage() })}`;
    mkdirSync(RESULTS_DIR, { recursive: true });
    const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-cluster${quick ? '-quick' : ''}`;
    writeFileSync(join(RESULTS_DIR, `${name}.md`), markdown);
    writeFileSync(join(RESULTS_DIR, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
    const complete = !quick && ['webhook', 'go-peer', 'go-typed'].every((s) => servers.includes(s as ServerId));
    if (complete) writeSection(CLUSTER_HEADING, markdown);
    process.stdout.write(`\n${markdown}\n`);
    log(`done: bench/results/${name}.{md,json}${complete ? ' and its section of bench/RESULTS.md' : ''}`);
    // Correctness, not timings: every labelled pod gets the sidecar, every create succeeds.
    const missed = results.flatMap((r) => [
      ...r.rates.filter((x) => (r.patches && x.labelled.injected < Math.ceil(x.sent / 2)) || x.labelled.failed + x.unlabelled.failed > 0).map((x) => `${r.server} at ${x.rate}/s`),
      ...((r.patches && r.burst.injected < r.burst.pods) || r.burst.failed > 0 ? [`${r.server} burst`] : []),
    ]);
    if (missed.length > 0) throw new Error(`bench: pods not injected or not created: ${missed.join(', ')}`);
    // The production protocol, or the figures say nothing about a cluster.
    const otherProtocol = results.filter((r) => Object.keys(r.alpn).length === 0 || Object.keys(r.alpn).some((p) => p !== 'http/1.1'));
    if (otherProtocol.length > 0) throw new Error(`bench: the API server did not speak http/1.1 to ${otherProtocol.map((r) => `${r.server} (${alpnText(r.alpn)})`).join(', ')}`);
  } finally {
    hosts.remove();
    rmSync(files.dir, { recursive: true, force: true });
  }
}
