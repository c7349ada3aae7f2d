// Issue 24 on the real API server, without a node: the sidecar rollout after helm upgrades of the
// sidecar version. 8 Deployments (1 replica each) in 3 namespaces, one labelled
// pandocore.xyz/rollout-canary=true. A good version rolls the canary namespace first, then waves,
// never more than rollout.maxConcurrent (2) at once nor two in one namespace, every workload done;
// a bad version (this file's stand-in kubelet puts its sidecar in CrashLoopBackOff) pauses after the
// canary with a RolloutPaused Event and touches nothing else; a fixed version and `pando rollout
// resume` finish it. The state ConfigMap survives each helm upgrade.
//
// As in watchdog.e2e.ts, this file plays the kubelet for its own namespaces: it writes each pod's
// status (phase, Ready, and the containers' statuses: the native sidecar under
// initContainerStatuses) through the status subresource, as a kubelet does; the ReplicaSet and
// Deployment controllers count pods from it and unscheduled replaced pods are deleted at once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_ROLLOUT_TARGET, ANNOTATION_VERSION, ENV, LABEL_PROTECT, LABEL_ROLLOUT_CANARY, ROLLOUT_CONFIGMAP, SIDECAR_NAME } from '../../app/contract.ts';
import type { Cluster } from '../cluster/harness.ts';
import { deployProduct, prepare, RELEASE_NAMESPACE, setupProtectedNamespace, tearDown, type ChartValues, type Deployed } from './product.ts';
import { createNamespace, isInjected, runPando, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-rollout';
const SIDECAR = 'registry.example.invalid/pandocore/sidecar';
/** The version whose sidecar the stand-in kubelet crash-loops. */
const BAD = '3.0.0';
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
let webhook: WebhookProcess | undefined;
const namespaces: string[] = [];
let kubelet: { stop(): Promise<void> } | undefined;
let canary = '';
let teamB = '';
let teamC = '';

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);
const apps = () => cluster.kubeConfig.makeApiClient(AppsV1Api);

function deployment(name: string): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name, [LABEL_PROTECT]: 'true' } }, spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }] } },
    },
  };
}

/** The kubelet's part: every pod Running; Ready with a Ready sidecar, or (version BAD) its sidecar in CrashLoopBackOff. */
function standInKubelet(watched: string[], limitMs = 420_000): { stop(): Promise<void> } {
  let stopped = false;
  const started = Date.now();
  const done = new Set<string>();
  const loop = (async () => {
    while (!stopped && Date.now() - started < limitMs) {
      for (const namespace of watched) {
        const pods = await core().listNamespacedPod({ namespace }).catch(() => ({ items: [] as V1Pod[] }));
        for (const pod of pods.items) {
          const uid = pod.metadata!.uid!;
          if (done.has(uid) || pod.metadata?.deletionTimestamp) continue;
          const now = new Date().toISOString();
          const bad = pod.metadata?.annotations?.[ANNOTATION_VERSION] === BAD;
          const sidecar = [...(pod.spec?.initContainers ?? [])].find((c) => c.name === SIDECAR_NAME);
          const status = {
            phase: 'Running',
            conditions: [
              { type: 'Ready', status: bad ? 'False' : 'True', lastTransitionTime: now },
              { type: 'ContainersReady', status: bad ? 'False' : 'True', lastTransitionTime: now },
            ],
            ...(sidecar
              ? {
                  initContainerStatuses: [{
                    name: SIDECAR_NAME, image: sidecar.image, imageID: '', ready: !bad, started: !bad, restartCount: bad ? 3 : 0,
                    state: bad ? { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' } } : { running: { startedAt: now } },
                  }],
                }
              : {}),
            containerStatuses: [{ name: 'app', image: 'registry.example.invalid/app:1', imageID: '', ready: !bad, started: true, restartCount: 0, state: { running: { startedAt: now } } }],
          };
          try {
            await cluster.request('PATCH', `/api/v1/namespaces/${namespace}/pods/${pod.metadata!.name}/status`, { status }, 'application/merge-patch+json');
            done.add(uid);
          } catch (err) {
            console.log(`# stand-in kubelet: ${pod.metadata!.name}: ${(err as Error).message}`);
          }
        }
      }
      await sleep(200);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

async function allDeployments(): Promise<Array<{ ns: string; d: V1Deployment }>> {
  const out = [];
  for (const ns of namespaces) for (const d of (await apps().listNamespacedDeployment({ namespace: ns })).items) out.push({ ns, d });
  return out;
}

const key = (ns: string, d: V1Deployment) => `${ns}/${d.metadata!.name}`;
const targetOf = (d: V1Deployment) => d.spec?.template.metadata?.annotations?.[ANNOTATION_ROLLOUT_TARGET];

/** Starts (or restarts) the local webhook with the chart's env after a helm upgrade, the rollout passing every second. */
async function upgradeTo(tag: string): Promise<void> {
  await webhook?.stop();
  deployed = await deployProduct(cluster, { ...values, image: { repository: SIDECAR, tag }, extra: { rollout: { enabled: true, maxConcurrent: 2, soakSeconds: 3, readyDeadlineSeconds: 120 } } });
  webhook = await startWebhook(tls, { ...deployed.env, [ENV.rolloutIntervalSeconds]: '1' }, port);
}

async function configMapData(): Promise<Record<string, string>> {
  return (await core().readNamespacedConfigMap({ name: ROLLOUT_CONFIGMAP, namespace: RELEASE_NAMESPACE })).data ?? {};
}

async function status(): Promise<{ code: number; report: any }> {
  const r = await runPando(cluster.kubeconfigPath, ['rollout', 'status', '-o', 'json']);
  return { code: r.code, report: r.stdout ? JSON.parse(r.stdout) : { stderr: r.stderr } };
}

/**
 * Watches the Deployments until every one names `target` and status says done: when each was
 * restarted for it, and at every poll how many restarted ones are not rolled out (new pod Ready)
 * yet, in all and per namespace.
 */
async function observe(target: string, timeoutMs: number): Promise<{ order: string[]; maxBusy: number; sameNamespace: string[] }> {
  const order: string[] = [];
  let maxBusy = 0;
  const sameNamespace: string[] = [];
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const list = await allDeployments();
    for (const { ns, d } of list) if (targetOf(d) === target && !order.includes(key(ns, d))) order.push(key(ns, d));
    const busy = list.filter(({ d }) => targetOf(d) === target && !((d.status?.updatedReplicas ?? 0) >= 1 && (d.status?.replicas ?? 0) === 1 && (d.status?.availableReplicas ?? 0) >= 1 && (d.status?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0)));
    maxBusy = Math.max(maxBusy, busy.length);
    const perNs = new Map<string, number>();
    for (const { ns } of busy) perNs.set(ns, (perNs.get(ns) ?? 0) + 1);
    for (const [ns, n] of perNs) if (n > 1) sameNamespace.push(ns);
    if (order.length === list.length) {
      const s = await status();
      if (s.code === 0) return { order, maxBusy, sameNamespace };
    }
    await sleep(300);
  }
  throw new Error(`rollout to ${target} not done in ${timeoutMs} ms: restarted ${order.join(', ')}; status ${JSON.stringify((await status()).report)}`);
}

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: SIDECAR, tag: '1.0.0' } }));
  canary = await createNamespace(cluster, 'e2e-rollout-canary', { [LABEL_ROLLOUT_CANARY]: 'true' });
  teamB = await createNamespace(cluster, 'e2e-rollout-b');
  teamC = await createNamespace(cluster, 'e2e-rollout-c');
  namespaces.push(canary, teamB, teamC);
  for (const ns of namespaces) await setupProtectedNamespace(cluster, ns, LICENSE);
  kubelet = standInKubelet(namespaces);
  await upgradeTo('1.0.0');
  const plan: Array<[string, string[]]> = [[canary, ['c1', 'c2']], [teamB, ['b1', 'b2', 'b3']], [teamC, ['d1', 'd2', 'd3']]];
  for (const [ns, names] of plan) for (const name of names) await apps().createNamespacedDeployment({ namespace: ns, body: deployment(name) });
  await waitUntil('8 injected pods of 1.0.0, Ready', 90_000, async () => {
    let n = 0;
    for (const ns of namespaces) {
      const pods = (await core().listNamespacedPod({ namespace: ns })).items;
      n += pods.filter((p) => isInjected(p) && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
    }
    return n === 8;
  });
  const s = await status();
  assert.equal(s.code, 0, `nothing to roll at the version the pods run: ${JSON.stringify(s.report)}`);
});

after(async () => {
  await kubelet?.stop();
  await tearDown({ cluster, tls, webhook, deployed, namespaces });
});

test('a good version: canary namespace first, then waves, at most 2 at once and one per namespace, every workload done', async () => {
  const t0 = Date.now();
  await upgradeTo('2.0.0');
  const target = (await status()).report.target as string;
  assert.match(target, /^2\.0\.0\/[0-9a-f]{12}$/);
  const { order, maxBusy, sameNamespace } = await observe(target, 120_000);
  console.log(`# rolled 8 Deployments to ${target} in ${Math.round((Date.now() - t0) / 1000)} s, order ${order.join(' ')}, at most ${maxBusy} rolling at once`);
  assert.deepEqual(order.slice(0, 2).map((k) => k.split('/')[0]), [canary, canary], 'the canary namespace first');
  assert.ok(maxBusy <= 2, `at most maxConcurrent (2) rolling at once: ${maxBusy}`);
  assert.deepEqual(sameNamespace, [], 'never two at once in one namespace');
  for (const ns of namespaces) {
    for (const pod of (await core().listNamespacedPod({ namespace: ns })).items) assert.equal(pod.metadata?.annotations?.[ANNOTATION_VERSION], '2.0.0', `${ns}/${pod.metadata?.name}`);
  }
  const data = await configMapData();
  assert.deepEqual([data.target, data.paused, data.failure], [target, 'false', undefined]);
  assert.equal(await webhook!.metric('pandocore_rollout_workloads', { state: 'done' }), 8);
  assert.equal(await webhook!.metric('pandocore_rollout_restarts_total'), 8, 'each Deployment restarted once');
});

test('a bad version: the canary crash-loops, the rollout pauses cluster-wide, nothing else is touched; a fix and pando rollout resume finish it', async () => {
  await upgradeTo(BAD);
  const bad = (await status()).report.target as string;
  const paused = await waitUntil('the rollout to pause', 90_000, async () => {
    const data = await configMapData();
    return data.paused === 'true' ? data : undefined;
  });
  const failure = JSON.parse(paused.failure!);
  console.log(`# paused on ${failure.workload} pod ${failure.pod}: ${failure.reason}`);
  assert.equal(paused.target, bad, 'the helm upgrade kept the ConfigMap the rollout writes, with the new target');
  assert.equal(failure.workload.split('/')[0], canary);
  assert.equal(failure.reason, 'CrashLoopBackOff');
  const events = (await core().listNamespacedEvent({ namespace: canary, fieldSelector: 'reason=RolloutPaused' })).items;
  assert.equal(events.length, 1);
  assert.match(events[0]!.message!, new RegExp(`pod ${failure.pod}: CrashLoopBackOff`));
  assert.equal(await webhook!.metric('pandocore_rollout_paused'), 1);
  await sleep(5_000);
  const touched = (await allDeployments()).filter(({ d }) => targetOf(d) === bad).map(({ ns, d }) => key(ns, d));
  assert.deepEqual(touched, [`${canary}/${failure.workload.split('/')[2]}`], 'only the canary was restarted');
  const s = await status();
  assert.equal(s.code, 1, 'pando rollout status: exit 1 while paused');
  assert.equal(s.report.paused.pod, failure.pod);
  assert.match(s.report.paused.fix, /pando rollout resume/);

  // The fix: a corrected version (helm upgrade), then resume.
  await upgradeTo('3.0.1');
  const fixed = (await status()).report.target as string;
  await sleep(3_000);
  assert.equal((await allDeployments()).filter(({ d }) => targetOf(d) === fixed).length, 0, 'a new version alone does not resume');
  const resumed = await runPando(cluster.kubeconfigPath, ['rollout', 'resume']);
  assert.equal(resumed.code, 0, resumed.stderr);
  const { order, maxBusy, sameNamespace } = await observe(fixed, 150_000);
  assert.deepEqual(order.slice(0, 2).map((k) => k.split('/')[0]), [canary, canary], 'canary first again');
  assert.ok(maxBusy <= 2);
  assert.deepEqual(sameNamespace, []);
  assert.equal((await configMapData()).failure, undefined, 'resume cleared the failure');
  for (const ns of namespaces) {
    for (const pod of (await core().listNamespacedPod({ namespace: ns })).items) assert.equal(pod.metadata?.annotations?.[ANNOTATION_VERSION], '3.0.1', `${ns}/${pod.metadata?.name}`);
  }
});
