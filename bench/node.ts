// npm run bench -- --node [--quick] (issue 22 item 6): what users feel on a real node. The e2e control
// plane with its node (test/cluster/harness.ts starts it as root: kubelet, containerd, runc and the
// node's scheduler; test/cluster/node.ts), our webhook (build/app/main.js, with the namespace check on
// as the chart's default) registered as bench/cluster.ts registers it, and the sidecar stand-in
// (test/sidecar-standin) as sidecar.image. Labelled and unlabelled pods, interleaved, one at a time,
// each deleted (and gone) before the next: the time from the create request to the pod's Ready
// condition, timed on this client's monotonic clock (the POST is sent / the watch event that first
// shows Ready=True arrives), because the API server's timestamps (creationTimestamp, the condition's
// lastTransitionTime) have a resolution of one second. What injection adds (the webhook call and the
// sidecar's start before the app) is labelled minus unlabelled, at p50 and p99.
//
// Not root, or PANDO_NODE=0: no node; it says so in one line and exits 0. Asserts that every
// labelled pod is injected, no unlabelled one is, and every pod gets Ready within a minute; nothing
// about timings (the target, at most 1 s added at p50, is reported, not asserted).

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ENV } from '../app/contract.ts';
import { startCluster, type Cluster } from '../test/cluster/harness.ts';
import { NODE_IMAGES } from '../test/cluster/node.ts';
import { nodeMissing, onTheNode } from '../test/e2e/node-support.ts';
import { setupProtectedNamespace } from '../test/e2e/product.ts';
import { CONFIG, NAMESPACE, WEBHOOK_HOST, client, injected, percentile, register, type Client } from './cluster.ts';
import { RESULTS_DIR, loadAverage, log, prepareFiles, start, stop } from './harness.ts';
import { addHostsEntry } from './hosts.ts';
import { NODE_HEADING, writeSection } from './results-file.ts';
import { generateLoads } from './reviews.ts';

const LABEL = { 'pandocore.xyz/protect': 'true' };
const LICENSE = 'bench-node-license';
/** Each pod must be Ready, and then gone, within this. */
const POD_TIMEOUT_MS = 60_000;
/** The target of issue 22: injection adds at most this at p50, with the stand-in. */
const TARGET_P50_MS = 1000;

export interface PodSample {
  labelled: boolean;
  injected: boolean;
  /** The create request's round trip (admission included), client clock. */
  createMs: number;
  /** Create request sent -> first watch event with PodScheduled=True, client clock. */
  scheduledMs: number;
  /** Create request sent -> first watch event with Ready=True, client clock. */
  readyMs: number;
  /** The same from the API server's timestamps: Ready's lastTransitionTime - creationTimestamp (1 s resolution). */
  apiReadyS: number;
}

export interface Group {
  count: number;
  createP50Ms: number;
  readyP50Ms: number;
  readyP99Ms: number;
  scheduledP50Ms: number;
  apiReadyP50S: number;
  apiReadyP99S: number;
}

export interface NodeResult {
  date: string;
  quick: boolean;
  warmup: number;
  labelled: Group;
  unlabelled: Group;
  loadAverage: { before: number; after: number };
  samples: PodSample[];
}

interface Seen {
  scheduledAt?: number;
  readyAt?: number;
  apiReadyS?: number;
  gone?: boolean;
}

/**
 * One watch on the namespace's pods: for each pod, when (on this client's clock) an event first
 * showed it scheduled, Ready, and deleted.
 */
function watchPods(cluster: Cluster, api: Client, resourceVersion: string) {
  const seen = new Map<string, Seen>();
  const waiters = new Set<() => void>();
  const url = new URL(cluster.server);
  let buffer = '';
  let ended: string | undefined;
  const req = request(
    { host: url.hostname, port: url.port, path: `/api/v1/namespaces/${NAMESPACE}/pods?watch=true&resourceVersion=${resourceVersion}`, method: 'GET', agent: false, ca: api.agent.options.ca, cert: api.agent.options.cert, key: api.agent.options.key, headers: { accept: 'application/json' } },
    (res) => {
      res.on('data', (chunk: Buffer) => {
        const at = performance.now();
        buffer += chunk.toString('utf8');
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.trim()) onEvent(JSON.parse(line) as { type: string; object: any }, at);
        }
        for (const wake of waiters) wake();
      });
      res.on('end', () => {
        ended = 'the watch ended';
        for (const wake of waiters) wake();
      });
    },
  );
  req.on('error', (err) => {
    ended = `the watch failed: ${err.message}`;
    for (const wake of waiters) wake();
  });
  req.end();

  function onEvent(event: { type: string; object: any }, at: number): void {
    const name = event.object?.metadata?.name as string | undefined;
    if (!name) return;
    const s = seen.get(name) ?? {};
    seen.set(name, s);
    if (event.type === 'DELETED') {
      s.gone = true;
      return;
    }
    const conditions = (event.object.status?.conditions ?? []) as Array<{ type: string; status: string; lastTransitionTime?: string }>;
    if (s.scheduledAt === undefined && conditions.some((c) => c.type === 'PodScheduled' && c.status === 'True')) s.scheduledAt = at;
    const ready = conditions.find((c) => c.type === 'Ready' && c.status === 'True');
    if (s.readyAt === undefined && ready) {
      s.readyAt = at;
      s.apiReadyS = (Date.parse(ready.lastTransitionTime!) - Date.parse(event.object.metadata.creationTimestamp)) / 1000;
    }
  }

  /** Resolves once `done(seen)` holds for the pod; rejects after POD_TIMEOUT_MS or when the watch ends. */
  function until(name: string, what: string, done: (s: Seen) => boolean): Promise<Seen> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const s = seen.get(name) ?? {};
        if (done(s)) finish(() => resolve(s));
        else if (ended) finish(() => reject(new Error(`bench: ${ended} while waiting for pod ${name} ${what}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`bench: pod ${name} not ${what} within ${POD_TIMEOUT_MS / 1000} s`))), POD_TIMEOUT_MS);
      const finish = (then: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        then();
      };
      waiters.add(check);
      check();
    });
  }

  return { until, close: () => req.destroy() };
}

function pod(labelled: boolean, i: number) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: labelled ? 'labelled-' : 'unlabelled-', labels: { app: 'bench-node', ...(labelled ? LABEL : {}) }, annotations: { 'bench.pandocore.xyz/n': String(i) } },
    spec: { ...onTheNode, terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image: NODE_IMAGES.pause }] },
  };
}

function group(samples: PodSample[]): Group {
  const of = (f: (s: PodSample) => number, p: number) => percentile(samples.map(f), p);
  return {
    count: samples.length,
    createP50Ms: of((s) => s.createMs, 50),
    readyP50Ms: of((s) => s.readyMs, 50),
    readyP99Ms: of((s) => s.readyMs, 99),
    scheduledP50Ms: of((s) => s.scheduledMs, 50),
    apiReadyP50S: of((s) => s.apiReadyS, 50),
    apiReadyP99S: of((s) => s.apiReadyS, 99),
  };
}

/** Creates one pod, waits for Ready, deletes it and waits until it is gone. */
async function onePod(api: Client, watch: ReturnType<typeof watchPods>, labelled: boolean, i: number): Promise<PodSample> {
  const sent = performance.now();
  const created = await api.send('POST', `/api/v1/namespaces/${NAMESPACE}/pods`, pod(labelled, i));
  if (created.status !== 201) throw new Error(`bench: creating pod ${i}: HTTP ${created.status} ${JSON.stringify(created.body).slice(0, 300)}`);
  const name = created.body.metadata.name as string;
  const seen = await watch.until(name, 'Ready', (s) => s.readyAt !== undefined);
  const deleted = await api.send('DELETE', `/api/v1/namespaces/${NAMESPACE}/pods/${name}?gracePeriodSeconds=0`);
  if (deleted.status !== 200 && deleted.status !== 202) throw new Error(`bench: deleting pod ${name}: HTTP ${deleted.status}`);
  await watch.until(name, 'gone', (s) => s.gone === true);
  return { labelled, injected: injected(created.body), createMs: created.ms, scheduledMs: seen.scheduledAt! - sent, readyMs: seen.readyAt! - sent, apiReadyS: seen.apiReadyS! };
}

export async function runNode(cluster: Cluster, perGroup: number, warmup: number): Promise<NodeResult> {
  const files = await prepareFiles([WEBHOOK_HOST]);
  const api = client(cluster);
  const before = loadAverage();
  let webhook: Awaited<ReturnType<typeof start>> | undefined;
  let watch: ReturnType<typeof watchPods> | undefined;
  try {
    await api.send('DELETE', `/api/v1/namespaces/${NAMESPACE}`);
    for (let i = 0; i < 120 && (await api.send('GET', `/api/v1/namespaces/${NAMESPACE}`)).status !== 404; i++) await new Promise((r) => setTimeout(r, 500));
    const ns = await api.send('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    if (ns.status !== 201) throw new Error(`bench: creating namespace ${NAMESPACE}: HTTP ${ns.status}`);
    // What `pando setup-namespace` makes: the sidecar's ServiceAccount and the license Secret it reads.
    await setupProtectedNamespace(cluster, NAMESPACE, LICENSE);
    // Pods need the namespace's default ServiceAccount (the controller-manager makes it) and the
    // kube-root-ca.crt ConfigMap their token volume mounts.
    for (let i = 0; i < 100; i++) {
      const [sa, cm] = await Promise.all([api.send('GET', `/api/v1/namespaces/${NAMESPACE}/serviceaccounts/default`), api.send('GET', `/api/v1/namespaces/${NAMESPACE}/configmaps/kube-root-ca.crt`)]);
      if (sa.status === 200 && cm.status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    webhook = await start('webhook', files, generateLoads().loads[0]!, false, {
      env: { [ENV.sidecarImage]: NODE_IMAGES.sidecar, [ENV.namespaceCheck]: 'true', KUBECONFIG: cluster.kubeconfigPath },
    });
    await register(api, files, webhook.target.port, (answer) => injected(answer.body));
    const list = await api.send('GET', `/api/v1/namespaces/${NAMESPACE}/pods`);
    watch = watchPods(cluster, api, list.body.metadata.resourceVersion as string);

    // Not counted: the first pods of each kind pay for first-time work (image snapshots, caches).
    for (let i = 0; i < warmup; i++) {
      await onePod(api, watch, true, -1);
      await onePod(api, watch, false, -1);
    }
    const samples: PodSample[] = [];
    for (let pair = 0; pair < perGroup; pair++) {
      // Interleaved, and which goes first alternates, so that drift and order weigh on both alike.
      for (const labelled of pair % 2 === 0 ? [true, false] : [false, true]) {
        const s = await onePod(api, watch, labelled, samples.length);
        samples.push(s);
        if (labelled !== s.injected) throw new Error(`bench: a ${labelled ? 'labelled pod was not' : 'unlabelled pod was'} injected`);
      }
      const last = samples.slice(-2);
      log(`node pair ${pair + 1}/${perGroup}: ${last.map((s) => `${s.labelled ? 'labelled' : 'unlabelled'} Ready in ${s.readyMs.toFixed(0)} ms (create ${s.createMs.toFixed(1)} ms)`).join(', ')}`);
    }
    return {
      date: new Date().toISOString(),
      quick: false,
      warmup,
      labelled: group(samples.filter((s) => s.labelled)),
      unlabelled: group(samples.filter((s) => !s.labelled)),
      loadAverage: { before, after: loadAverage() },
      samples,
    };
  } finally {
    watch?.close();
    await api.send('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${CONFIG}`);
    if (webhook) await stop(webhook);
    await api.send('DELETE', `/api/v1/namespaces/${NAMESPACE}`);
    api.agent.destroy();
    rmSync(files.dir, { recursive: true, force: true });
  }
}

const ms = (v: number) => (Number.isNaN(v) ? '–' : v.toFixed(0));

export function renderNode(r: NodeResult): string {
  const added50 = r.labelled.readyP50Ms - r.unlabelled.readyP50Ms;
  const added99 = r.labelled.readyP99Ms - r.unlabelled.readyP99Ms;
  // Pairs as measured (labelled and unlabelled of the same pair), each labelled minus its unlabelled.
  const pairs: number[] = [];
  for (let i = 0; i + 1 < r.samples.length; i += 2) {
    const [a, b] = [r.samples[i]!, r.samples[i + 1]!];
    pairs.push((a.labelled ? a.readyMs : b.readyMs) - (a.labelled ? b.readyMs : a.readyMs));
  }
  const row = (name: string, g: Group) =>
    `| ${name} | ${g.count} | ${ms(g.readyP50Ms)} / ${ms(g.readyP99Ms)} | ${ms(g.scheduledP50Ms)} | ${g.createP50Ms.toFixed(1)} | ${g.apiReadyP50S} / ${g.apiReadyP99S} |`;
  return [
    `${NODE_HEADING} (create to Ready)`,
    '',
    `Generated by \`npm run bench -- --node${r.quick ? ' --quick' : ''}\` on ${r.date.slice(0, 16).replace('T', ' ')} UTC.`,
    '',
    `The e2e control plane with its node (kubelet, containerd 1.6, runc, the node's kube-scheduler; test/cluster/node.ts), our webhook (build/app/main.js, namespace check on, registered by URL under a hosts name, as \`--cluster\` does) and the sidecar stand-in (test/sidecar-standin, \`${NODE_IMAGES.sidecar}\`, imported into containerd) as the native sidecar. ` +
      `${r.labelled.count} labelled and ${r.unlabelled.count} unlabelled pods (one \`pause\` container each), interleaved (which of a pair goes first alternates), one at a time: each is created, becomes Ready, is deleted with grace 0 and is gone before the next; ${r.warmup} of each first, not counted. ` +
      'Ready: the time from sending the create request to the arrival of the first watch event that shows the Ready condition True, on this client\'s monotonic clock (the API server\'s creationTimestamp and lastTransitionTime have a resolution of one second: their difference is the last column, for comparison). ' +
      `With ${r.labelled.count} samples p99 is the slowest one (nearest rank). Load average before/after: ${r.loadAverage.before} / ${r.loadAverage.after}.`,
    '',
    '| pods | count | create to Ready p50 / p99 (ms) | to scheduled p50 (ms) | create request p50 (ms, admission included) | Ready per the API server\'s timestamps p50 / p99 (s) |',
    '| --- | ---: | --- | ---: | ---: | --- |',
    row('labelled (webhook + sidecar stand-in)', r.labelled),
    row('unlabelled', r.unlabelled),
    '',
    `What injection adds (labelled - unlabelled): **p50 ${ms(added50)} ms**, p99 ${ms(added99)} ms (the median of the ${pairs.length} pairs' own differences: ${ms(percentile(pairs, 50))} ms); of which the webhook call in the create request ${(r.labelled.createP50Ms - r.unlabelled.createP50Ms).toFixed(1)} ms at p50. ` +
      `Target (issue 22): at most ${TARGET_P50_MS} ms added at p50 with the stand-in: ${added50 <= TARGET_P50_MS ? 'met' : 'NOT met'}.`,
    '',
  ].join('\n');
}

/** --node: create to Ready on the e2e node, labelled against unlabelled (bench/node.ts). */
export async function nodeMain(quick: boolean): Promise<void> {
  const why = process.env.PANDO_NODE === '0' ? 'PANDO_NODE=0' : process.getuid?.() !== 0 ? 'not root (the kubelet and containerd need root)' : undefined;
  if (why) {
    log(`bench --node: skipped, no node: ${why}`);
    return;
  }
  const hosts = addHostsEntry(WEBHOOK_HOST);
  const cluster = await startCluster(log);
  try {
    const missing = await nodeMissing(cluster);
    if (missing) throw new Error(`bench: no node: ${missing}`);
    const result = { ...(await runNode(cluster, quick ? 5 : 30, quick ? 1 : 2)), quick };
    const markdown = renderNode(result);
    mkdirSync(RESULTS_DIR, { recursive: true });
    const name = `${result.date.replace(/[:.]/g, '-')}-node${quick ? '-quick' : ''}`;
    writeFileSync(join(RESULTS_DIR, `${name}.md`), markdown);
    writeFileSync(join(RESULTS_DIR, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
    if (!quick) writeSection(NODE_HEADING, markdown);
    process.stdout.write(`\n${markdown}\n`);
    log(`done: bench/results/${name}.{md,json}${quick ? '' : ' and its section of bench/RESULTS.md'}`);
  } finally {
    hosts.remove();
    await cluster.stop();
  }
}
