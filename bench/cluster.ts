// npm run bench -- --cluster (issue 17 item 1): the admission overhead as users feel it, measured at
// the API server of the e2e control plane (test/cluster/harness.ts; build it first with
// `bash test/cluster/build.sh`). For each webhook (ours, the Go peers) registered by URL on
// 127.0.0.1: server-side dry-run pod CREATEs at a fixed rate, labelled (the webhook is called) and
// unlabelled (objectSelector: it is not) interleaved, so the difference is the webhook's share;
// then a burst of real CREATEs at once, each checked for the sidecar. Each webhook is warmed up first. Client-side p50/p99 and the
// API server's own apiserver_admission_webhook_admission_duration_seconds (sum/count over the run).

import { Agent, request } from 'node:https';
import { performance } from 'node:perf_hooks';
import { startCluster, type Cluster } from '../test/cluster/harness.ts';
import { SIDECAR_NAME, SIDECAR_SERVICE_ACCOUNT } from '../app/contract.ts';
import { canPin, start, stop, type Files, type ServerId } from './run.ts';
import { generateLoads } from './reviews.ts';
import { CLUSTER_HEADING } from './results-file.ts';

const NAMESPACE = 'pando-bench';
const CONFIG = 'pando-bench';
const WEBHOOK = 'bench.pandocore.xyz';
const LABEL = { 'pandocore.xyz/protect': 'true' };

export interface RateResult {
  rate: number;
  sent: number;
  labelled: { p50Ms: number; p99Ms: number; injected: number; failed: number };
  unlabelled: { p50Ms: number; p99Ms: number; failed: number };
  /** The API server's own mean webhook call time during the run (its histogram's sum / count). */
  apiserverMeanMs: number;
}

export interface ClusterResult {
  server: ServerId;
  rates: RateResult[];
  burst: { pods: number; injected: number; failed: number; seconds: number; apiserverMeanMs: number };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** A keep-alive client with the admin credentials: a client does not reconnect per pod either. */
function client(cluster: Cluster) {
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

type Client = ReturnType<typeof client>;

function pod(labelled: boolean, i: number) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'bench-', labels: { app: 'bench', ...(labelled ? LABEL : {}) }, annotations: { 'bench.pandocore.xyz/n': String(i) } },
    spec: { containers: [{ name: 'app', image: 'registry.example.com/app:1.0', resources: { requests: { cpu: '10m', memory: '16Mi' } } }] },
  };
}

const injected = (body: any) => Array.isArray(body?.spec?.initContainers) && body.spec.initContainers.some((c: { name?: string }) => c.name === SIDECAR_NAME);

/** The API server's webhook histogram for our configuration: [sum seconds, count]. */
async function webhookHistogram(api: Client): Promise<[number, number]> {
  const text = String((await api.send('GET', '/metrics')).body);
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (!line.includes(`name="${WEBHOOK}"`) || !line.includes('type="admit"')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('apiserver_admission_webhook_admission_duration_seconds_sum')) sum += value;
    if (line.startsWith('apiserver_admission_webhook_admission_duration_seconds_count')) count += value;
  }
  return [sum, count];
}

async function meanSince(api: Client, before: [number, number]): Promise<number> {
  const [sum, count] = await webhookHistogram(api);
  return count > before[1] ? ((sum - before[0]) / (count - before[1])) * 1000 : Number.NaN;
}

async function register(api: Client, files: Files, port: number): Promise<void> {
  await api.send('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${CONFIG}`);
  const created = await api.send('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: CONFIG },
    webhooks: [
      {
        name: WEBHOOK,
        admissionReviewVersions: ['v1'],
        clientConfig: { url: `https://127.0.0.1:${port}/mutate`, caBundle: Buffer.from(files.ca).toString('base64') },
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
    if (injected(answer.body)) return;
    last = `HTTP ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`bench: the webhook configuration did not take effect within 20 s (last: ${last})`);
}

/** Labelled and unlabelled dry-run creates, alternating, evenly spaced at `rate` per second. */
async function paced(api: Client, rate: number, seconds: number): Promise<RateResult> {
  const total = Math.max(2, Math.round(rate * seconds));
  const labelled: number[] = [];
  const unlabelled: number[] = [];
  let injectedCount = 0;
  let failedLabelled = 0;
  let failedUnlabelled = 0;
  const before = await webhookHistogram(api);
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
  return {
    rate,
    sent: total,
    labelled: { p50Ms: percentile(labelled, 50), p99Ms: percentile(labelled, 99), injected: injectedCount, failed: failedLabelled },
    unlabelled: { p50Ms: percentile(unlabelled, 50), p99Ms: percentile(unlabelled, 99), failed: failedUnlabelled },
    apiserverMeanMs: await meanSince(api, before),
  };
}

async function burst(api: Client, pods: number): Promise<ClusterResult['burst']> {
  const before = await webhookHistogram(api);
  const began = performance.now();
  const answers = await Promise.all(Array.from({ length: pods }, (_, i) => api.send('POST', `/api/v1/namespaces/${NAMESPACE}/pods`, pod(true, i))));
  const seconds = (performance.now() - began) / 1000;
  const result = {
    pods,
    injected: answers.filter((a) => a.status === 201 && injected(a.body)).length,
    failed: answers.filter((a) => a.status !== 201).length,
    seconds,
    apiserverMeanMs: await meanSince(api, before),
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
    for (const server of servers.filter((s) => s !== 'ceiling')) {
      const started = await start(server, files, probe, canPin());
      try {
        await register(api, files, started.target.port);
        // Warm-up, not counted: the first reviews of a process pay for compiling its code.
        await paced(api, 100, quick ? 0.5 : 3);
        const rates: RateResult[] = [];
        for (const rate of [20, 100]) {
          rates.push(await paced(api, rate, quick ? 1 : 10));
          const r = rates.at(-1)!;
          log(`cluster ${server} ${rate}/s: labelled p50 ${r.labelled.p50Ms.toFixed(2)} p99 ${r.labelled.p99Ms.toFixed(2)} ms, unlabelled p50 ${r.unlabelled.p50Ms.toFixed(2)} p99 ${r.unlabelled.p99Ms.toFixed(2)} ms, API server mean ${r.apiserverMeanMs.toFixed(2)} ms`);
        }
        const b = await burst(api, quick ? 50 : 500);
        log(`cluster ${server} burst: ${b.injected}/${b.pods} injected, ${b.failed} failed, ${b.seconds.toFixed(1)} s`);
        results.push({ server, rates, burst: b });
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

const ms = (v: number) => (Number.isNaN(v) ? '–' : v.toFixed(2));

export function renderCluster(results: ClusterResult[], loadAverage: { before: number; after: number }): string {
  const out = [
    `${CLUSTER_HEADING} (e2e control plane)`,
    '',
    `Generated by \`npm run bench -- --cluster\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC.`,
    '',
    'Server-side dry-run pod CREATEs at a fixed rate, labelled (the webhook is called) and unlabelled (objectSelector: it is not) alternating, ' +
      'over a keep-alive client; the webhook by URL on 127.0.0.1, pinned to core 0; API server, etcd and client share the machine. ' +
      `Overhead = labelled - unlabelled. API server mean: its apiserver_admission_webhook_admission_duration_seconds sum/count over the run. Load average before/after: ${loadAverage.before} / ${loadAverage.after}.`,
    '',
    '| webhook | rate | labelled p50 / p99 (ms) | unlabelled p50 / p99 (ms) | overhead p50 / p99 (ms) | API server mean webhook call (ms) | injected |',
    '| --- | ---: | --- | --- | --- | ---: | ---: |',
  ];
  for (const r of results) {
    for (const x of r.rates) {
      out.push(
        `| ${r.server} | ${x.rate}/s | ${ms(x.labelled.p50Ms)} / ${ms(x.labelled.p99Ms)} | ${ms(x.unlabelled.p50Ms)} / ${ms(x.unlabelled.p99Ms)} | ` +
          `${ms(x.labelled.p50Ms - x.unlabelled.p50Ms)} / ${ms(x.labelled.p99Ms - x.unlabelled.p99Ms)} | ${ms(x.apiserverMeanMs)} | ${x.labelled.injected}/${Math.ceil(x.sent / 2)}${x.labelled.failed + x.unlabelled.failed ? ` (${x.labelled.failed + x.unlabelled.failed} failed)` : ''} |`,
      );
    }
  }
  out.push('', '| webhook | burst of real CREATEs at once | injected | failed | seconds | API server mean webhook call (ms) |', '| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) out.push(`| ${r.server} | ${r.burst.pods} | ${r.burst.injected} | ${r.burst.failed} | ${r.burst.seconds.toFixed(1)} | ${ms(r.burst.apiserverMeanMs)} |`);
  out.push('');
  return out.join('\n');
}
