// node bench/rollout-cluster.ts [--quick] [--workloads N] [--namespaces M]: the sidecar rollout at
// scale on the real API server (issue 24: "500 workloads in 50 namespaces, the rollout respects
// every limit and finishes; the planner's cost per pass stays under 50 ms"). It starts (or reuses)
// the e2e control plane (kube-apiserver + kube-controller-manager, test/cluster/harness.ts), installs
// the chart from dist/ with the rollout on (maxConcurrent 10, soak 2 s, a pass every second), runs
// the webhook from source, creates N one-replica Deployments in M namespaces (default 500 in 50;
// --quick 40 in 8), and plays the kubelet: each new pod is made Running and Ready, its sidecar
// Ready under initContainerStatuses, through the status subresource (no node here). Then a helm
// upgrade changes the sidecar tag and it watches the rollout to its end: time to finish, the most
// workloads in progress at once (the controller's gauge, and restarted-but-not-rolled-out from the
// Deployments), never two at once in one namespace, no Deployment restarted twice (its restartedAt
// stamps, its ReplicaSets, the restart counter), and the leader's planner cost per pass
// (the CPU histogram pandocore_rollout_pass_seconds). It fails (exit 1) on a broken limit or an unfinished rollout;
// it asserts nothing about timings. Every loop is bounded in count and time.
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_ROLLOUT_TARGET, ANNOTATION_STATUS, ANNOTATION_VERSION, ENV, LABEL_PROTECT, SIDECAR_NAME, STATUS_INJECTED } from '../app/contract.ts';
import { RESTARTED_AT_ANNOTATION } from '../app/controllers/heal.ts';
import type { Cluster } from '../test/cluster/harness.ts';
import { deployProduct, localChartSource, prepare, setupProtectedNamespace, undeployProduct, type ChartValues, type Deployed } from '../test/e2e/product.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from '../test/e2e/webhook-process.ts';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const flag = (name: string, fallback: number) => {
  const i = argv.indexOf(name);
  const n = i >= 0 ? Number(argv[i + 1]) : fallback;
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} wants a positive integer, got ${argv[i + 1]}`);
  return n;
};
const WORKLOADS = flag('--workloads', quick ? 40 : 500);
const NAMESPACES = flag('--namespaces', quick ? 8 : 50);
const MAX_CONCURRENT = 10;
const SOAK_SECONDS = 2;
const LICENSE = 'bench-license-rollout';
const SIDECAR = 'registry.example.invalid/pandocore/sidecar';
const BENCH_LABEL = 'pandocore.xyz/bench';
const SETUP_LIMIT_MS = quick ? 180_000 : 900_000;
const ROLLOUT_LIMIT_MS = quick ? 240_000 : 1_800_000;

let cluster = undefined as unknown as Cluster;
let tls: WebhookTls | undefined;
let webhook: WebhookProcess | undefined;
let deployed: Deployed | undefined;
const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `bench-rollout-${i}`);
const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);
const apps = () => cluster.kubeConfig.makeApiClient(AppsV1Api);
const log = (line: string) => console.log(`[rollout-cluster ${new Date().toISOString().slice(11, 19)}] ${line}`);

/** Runs `work` over `items`, `width` at a time. */
async function pool<T>(items: T[], width: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

function deployment(name: string): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels: { [BENCH_LABEL]: 'rollout' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name, [LABEL_PROTECT]: 'true' } }, spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }] } },
    },
  };
}

/** The kubelet's part: every Pending labelled pod of the bench namespaces made Running, Ready, its sidecar Ready. */
function standInKubelet(limitMs: number): { stop(): Promise<void>; marked(): number } {
  let stopped = false;
  let marked = 0;
  const ours = new Set(namespaces);
  const started = Date.now();
  const loop = (async () => {
    for (let round = 0; !stopped && Date.now() - started < limitMs && round < 100_000; round++) {
      const pending = await core().listPodForAllNamespaces({ labelSelector: `${LABEL_PROTECT}=true`, fieldSelector: 'status.phase=Pending' }).catch(() => ({ items: [] as V1Pod[] }));
      const todo = pending.items.filter((p) => ours.has(p.metadata!.namespace!) && !p.metadata?.deletionTimestamp);
      await pool(todo, 6, async (pod) => {
        const now = new Date().toISOString();
        const sidecar = (pod.spec?.initContainers ?? []).find((c) => c.name === SIDECAR_NAME);
        const status = {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }, { type: 'ContainersReady', status: 'True', lastTransitionTime: now }],
          ...(sidecar ? { initContainerStatuses: [{ name: SIDECAR_NAME, image: sidecar.image, imageID: '', ready: true, started: true, restartCount: 0, state: { running: { startedAt: now } } }] } : {}),
          containerStatuses: [{ name: 'app', image: 'registry.example.invalid/app:1', imageID: '', ready: true, started: true, restartCount: 0, state: { running: { startedAt: now } } }],
        };
        const r = await cluster.request('PATCH', `/api/v1/namespaces/${pod.metadata!.namespace}/pods/${pod.metadata!.name}/status`, { status }, 'application/merge-patch+json').catch(() => undefined);
        if (r && r.status < 300) marked++;
      });
      await sleep(todo.length > 0 ? 50 : 300);
    }
  })();
  return {
    marked: () => marked,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

async function benchDeployments(): Promise<V1Deployment[]> {
  const out: V1Deployment[] = [];
  let token: string | undefined;
  for (let page = 0; page < 100; page++) {
    const list = await apps().listDeploymentForAllNamespaces({ labelSelector: `${BENCH_LABEL}=rollout`, limit: 500, ...(token ? { _continue: token } : {}) });
    out.push(...list.items);
    token = list.metadata?._continue || undefined;
    if (!token) break;
  }
  return out;
}

const keyOf = (d: V1Deployment) => `${d.metadata!.namespace}/${d.metadata!.name}`;
const rolledOut = (d: V1Deployment) => (d.status?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) && (d.status?.updatedReplicas ?? 0) >= 1 && (d.status?.replicas ?? 0) === 1 && (d.status?.availableReplicas ?? 0) >= 1;

async function waitFor<T>(what: string, limitMs: number, everyMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
}

async function install(tag: string): Promise<void> {
  await webhook?.stop();
  webhook = undefined;
  const values: ChartValues = { ...baseValues!, image: { repository: SIDECAR, tag }, extra: { rollout: { enabled: true, maxConcurrent: MAX_CONCURRENT, soakSeconds: SOAK_SECONDS, readyDeadlineSeconds: 600 } } };
  deployed = await deployProduct(cluster, values, localChartSource());
  webhook = await startWebhook(tls!, { ...deployed.env, [ENV.rolloutIntervalSeconds]: '1' }, port);
}

let baseValues: ChartValues | undefined;
let port = 0;

async function main(): Promise<number> {
  const t0 = Date.now();
  ({ cluster, tls, port, values: baseValues } = await prepare({ licenseKey: LICENSE, image: { repository: SIDECAR, tag: '1.0.0' } }));
  log(`cluster at ${cluster.server}${cluster.started ? ' (started here)' : ' (reused)'}; ${WORKLOADS} Deployments in ${NAMESPACES} namespaces, maxConcurrent ${MAX_CONCURRENT}, soak ${SOAK_SECONDS} s`);
  await install('1.0.0');
  await pool(namespaces, 4, async (ns) => {
    await core().createNamespace({ body: { metadata: { name: ns } } });
    await waitFor(`ServiceAccount default in ${ns}`, 60_000, 200, async () => (await core().readNamespacedServiceAccount({ name: 'default', namespace: ns })) && true);
    await setupProtectedNamespace(cluster, ns, LICENSE);
  });
  const kubelet = standInKubelet(SETUP_LIMIT_MS + ROLLOUT_LIMIT_MS);
  try {
    const names = Array.from({ length: WORKLOADS }, (_, i) => ({ ns: namespaces[i % NAMESPACES]!, name: `app-${i}` }));
    await pool(names, 6, ({ ns, name }) => apps().createNamespacedDeployment({ namespace: ns, body: deployment(name) }));
    await waitFor(`${WORKLOADS} Deployments available`, SETUP_LIMIT_MS, 1000, async () => ((await benchDeployments()).filter(rolledOut).length === WORKLOADS ? true : undefined));
    const pods = (await core().listPodForAllNamespaces({ labelSelector: `${LABEL_PROTECT}=true` })).items.filter((p) => namespaces.includes(p.metadata!.namespace!));
    const injected = pods.filter((p) => p.metadata?.annotations?.[ANNOTATION_STATUS] === STATUS_INJECTED && p.metadata.annotations[ANNOTATION_VERSION] === '1.0.0').length;
    if (injected !== WORKLOADS) throw new Error(`${injected} of ${WORKLOADS} pods injected with 1.0.0 before the upgrade`);
    await waitFor('the rollout at 1.0.0 to find nothing to do', 60_000, 1000, async () => ((await webhook!.metric('pandocore_rollout_workloads', { state: 'done' })) === WORKLOADS ? true : undefined));
    const setsBefore = new Map<string, number>();
    for (const rs of (await apps().listReplicaSetForAllNamespaces({})).items) {
      if (!namespaces.includes(rs.metadata!.namespace!)) continue;
      const owner = rs.metadata?.ownerReferences?.find((r) => r.controller)?.name;
      if (owner) setsBefore.set(`${rs.metadata!.namespace}/${owner}`, (setsBefore.get(`${rs.metadata!.namespace}/${owner}`) ?? 0) + 1);
    }
    log(`setup: ${WORKLOADS} injected pods Ready in ${Math.round((Date.now() - t0) / 1000)} s; upgrading the sidecar to 2.0.0`);

    // The upgrade and the rollout it starts.
    const started = Date.now();
    await install('2.0.0');
    const stamps = new Map<string, Set<string>>();
    const busySince = new Map<string, number>();
    let target = '';
    let maxGauge = 0;
    let maxBusy = 0;
    const twoInNamespace: string[] = [];
    const loads: number[] = [];
    let finishedMs = 0;
    for (let poll = 0; poll < 100_000 && Date.now() - started < ROLLOUT_LIMIT_MS; poll++) {
      loads.push(loadavg()[0]!);
      const list = await benchDeployments();
      for (const d of list) {
        const t = d.spec?.template.metadata?.annotations?.[ANNOTATION_ROLLOUT_TARGET];
        if (!t || !t.startsWith('2.0.0/')) continue;
        target = t;
        const k = keyOf(d);
        const seen = stamps.get(k) ?? new Set<string>();
        seen.add(d.spec!.template.metadata!.annotations![RESTARTED_AT_ANNOTATION]!);
        stamps.set(k, seen);
        if (!rolledOut(d)) busySince.set(k, busySince.get(k) ?? Date.now());
        else busySince.delete(k);
      }
      maxBusy = Math.max(maxBusy, busySince.size);
      const perNamespace = new Map<string, number>();
      for (const k of busySince.keys()) perNamespace.set(k.split('/')[0]!, (perNamespace.get(k.split('/')[0]!) ?? 0) + 1);
      for (const [ns, n] of perNamespace) if (n > 1) twoInNamespace.push(`${ns} (${n})`);
      maxGauge = Math.max(maxGauge, await webhook!.metric('pandocore_rollout_workloads', { state: 'in-progress' }));
      const done = await webhook!.metric('pandocore_rollout_workloads', { state: 'done' });
      if (stamps.size === WORKLOADS && done === WORKLOADS && busySince.size === 0) {
        finishedMs = Date.now() - started;
        break;
      }
      if (poll % 20 === 0) log(`${stamps.size} of ${WORKLOADS} restarted, ${done} done, ${busySince.size} rolling, gauge in-progress max ${maxGauge}`);
      await sleep(500);
    }
    const restartsTotal = await webhook!.metric('pandocore_rollout_restarts_total');
    // The webhook process was started at the upgrade: its histogram holds the passes of this rollout.
    const sum = await webhook!.metric('pandocore_rollout_pass_seconds_sum');
    const allPasses = await webhook!.metric('pandocore_rollout_pass_seconds_count');
    const buckets: Array<[string, number]> = [];
    for (const le of ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '1', '+Inf']) buckets.push([le, await webhook!.metric('pandocore_rollout_pass_seconds_bucket', { le })]);
    const under50 = buckets.find(([le]) => le === '0.05')![1];
    const maxBound = buckets.find(([, n]) => n === allPasses)?.[0];
    const p50Bound = buckets.find(([, n]) => n >= allPasses / 2)?.[0];
    const setsAfter = new Map<string, number>();
    for (const rs of (await apps().listReplicaSetForAllNamespaces({})).items) {
      if (!namespaces.includes(rs.metadata!.namespace!)) continue;
      const owner = rs.metadata?.ownerReferences?.find((r) => r.controller)?.name;
      if (owner) setsAfter.set(`${rs.metadata!.namespace}/${owner}`, (setsAfter.get(`${rs.metadata!.namespace}/${owner}`) ?? 0) + 1);
    }
    const perPass = allPasses ? (sum / allPasses) * 1000 : 0;
    const twice = [...stamps].filter(([, s]) => s.size > 1).map(([k]) => k);
    const extraSets = [...setsAfter].filter(([k, n]) => n !== (setsBefore.get(k) ?? 0) + 1).map(([k, n]) => `${k} (${n})`);
    const figures = {
      workloads: WORKLOADS,
      namespaces: NAMESPACES,
      maxConcurrent: MAX_CONCURRENT,
      soakSeconds: SOAK_SECONDS,
      target,
      finishedSeconds: finishedMs ? +(finishedMs / 1000).toFixed(1) : null,
      restarted: stamps.size,
      restartsTotal,
      maxInProgressGauge: maxGauge,
      maxRollingObserved: maxBusy,
      twoAtOnceInANamespace: [...new Set(twoInNamespace)],
      restartedTwice: twice,
      replicaSetsNotOneMore: extraSets.slice(0, 10),
      plannerCpuPerPass: { passes: allPasses, meanMs: +perPass.toFixed(2), under50ms: under50, p50AtMostSeconds: p50Bound, maxAtMostSeconds: maxBound },
      loadavg1m: { max: +Math.max(...loads).toFixed(2), mean: +(loads.reduce((a, b) => a + b, 0) / Math.max(1, loads.length)).toFixed(2) },
      standInKubeletMarkedPods: kubelet.marked(),
      totalSeconds: Math.round((Date.now() - t0) / 1000),
    };
    console.log(JSON.stringify(figures, null, 2));
    const broken: string[] = [];
    if (!finishedMs) broken.push(`not finished within ${ROLLOUT_LIMIT_MS / 1000} s`);
    if (maxGauge > MAX_CONCURRENT) broken.push(`${maxGauge} in progress at once (gauge), limit ${MAX_CONCURRENT}`);
    if (maxBusy > MAX_CONCURRENT) broken.push(`${maxBusy} rolling at once, limit ${MAX_CONCURRENT}`);
    if (twoInNamespace.length > 0) broken.push(`two at once in a namespace: ${[...new Set(twoInNamespace)].slice(0, 5).join(', ')}`);
    if (twice.length > 0 || extraSets.length > 0 || (finishedMs && restartsTotal !== WORKLOADS)) broken.push(`restarted twice: ${twice.slice(0, 5).join(', ')} ${extraSets.slice(0, 5).join(', ')} (counter ${restartsTotal})`);
    if (broken.length > 0) {
      console.error(`rollout-cluster: ${broken.join('; ')}`);
      return 1;
    }
    log(`the rollout of ${WORKLOADS} workloads finished in ${(finishedMs / 1000).toFixed(1)} s, limits held; planner CPU per pass: ${under50} of ${allPasses} under 50 ms, mean ${figures.plannerCpuPerPass.meanMs} ms`);
    return 0;
  } finally {
    await kubelet.stop();
  }
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`rollout-cluster: ${(err as Error).stack ?? err}`);
  if (webhook) console.error(webhook.output().slice(-3000));
} finally {
  await webhook?.stop();
  if (cluster && !cluster.started) {
    for (const ns of namespaces) await core().deleteNamespace({ name: ns }).catch(() => undefined);
    await undeployProduct(cluster, deployed);
  }
  tls?.cleanup();
  await cluster?.stop();
}
process.exit(code);
