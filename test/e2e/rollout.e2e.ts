// Issue 24 on the real API server, without a node: the sidecar rollout after helm upgrades of the
// sidecar version. 8 Deployments (1 replica each) in 3 namespaces, one labelled
// pandocore.xyz/rollout-canary=true. A good version rolls the canary namespace first, then waves,
// never more than rollout.maxConcurrent (2) at once nor two in one namespace, every workload done;
// a bad version (this file's stand-in kubelet puts its sidecar in CrashLoopBackOff) pauses after the
// canary with a RolloutPaused Event and touches nothing else; a fixed version and `pando rollout
// resume` finish it. The state ConfigMap survives each helm upgrade. Two replicas (replica-a,
// replica-b behind a Service stand-in): replica-a is SIGKILLed after the canary and the first wave,
// replica-b takes the Lease when it expires and finishes, restarting nothing twice.
//
// As in watchdog.e2e.ts, this file plays the kubelet for its own namespaces: it writes each pod's
// status (phase, Ready, and the containers' statuses: the native sidecar under
// initContainerStatuses) through the status subresource, as a kubelet does; the ReplicaSet and
// Deployment controllers count pods from it and unscheduled replaced pods are deleted at once.
import { createConnection, createServer, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoordinationV1Api, CoreV1Api, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_ROLLOUT_TARGET, ANNOTATION_VERSION, ENV, EVENT_ROLLOUT_RESTART, EVENT_SIDECAR_MISSING, LABEL_PROTECT, LABEL_ROLLOUT_CANARY, LEASE_ROLLOUT, ROLLOUT_CONFIGMAP, SIDECAR_NAME } from '../../app/contract.ts';
import { RESTARTED_AT_ANNOTATION } from '../../app/controllers/heal.ts';
import type { Cluster } from '../cluster/harness.ts';
import { deployProduct, prepare, RELEASE_NAMESPACE, setupProtectedNamespace, tearDown, type ChartValues, type Deployed } from './product.ts';
import { createNamespace, isInjected, runPando, waitUntil } from './support.ts';
import { freePort, startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

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
const replicas: WebhookProcess[] = [];
let service: Server | undefined;
const open = new Set<import('node:net').Socket>();

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
  for (const replica of replicas.splice(0)) await replica.stop();
  for (const socket of open) socket.destroy();
  await new Promise<void>((res) => (service ? service.close(() => res()) : res()));
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
  // The gauge follows at the leader's next pass (every second here); pando rollout status reads the cluster itself.
  await waitUntil('the done gauge at 8', 5_000, async () => (await webhook!.metric('pandocore_rollout_workloads', { state: 'done' })) === 8);
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
  // The leader records the Event after it has written the pause to the ConfigMap: wait for it.
  const events = await waitUntil('the RolloutPaused Event', 15_000, async () => {
    const items = (await core().listNamespacedEvent({ namespace: canary, fieldSelector: 'reason=RolloutPaused' })).items;
    return items.length > 0 ? items : undefined;
  });
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

/**
 * The Service in front of the replicas, for admission: the API server calls 127.0.0.1:`port`, this
 * forwards each TCP connection (TLS stays end to end) to the first replica that accepts it.
 */
function serviceStandIn(listenPort: number, backends: () => number[]): Promise<Server> {
  const server = createServer((client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    client.on('error', () => undefined);
    const tryNext = (ports: number[]) => {
      const [first, ...rest] = ports;
      if (first === undefined) return void client.destroy();
      const upstream = createConnection({ host: '127.0.0.1', port: first });
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        client.pipe(upstream).pipe(client);
        client.once('close', () => upstream.destroy());
        upstream.once('close', () => client.destroy());
      });
      upstream.on('error', () => {
        if (!connected) tryNext(rest);
      });
    };
    tryNext(backends());
  });
  return new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(listenPort, '127.0.0.1', () => res(server));
  });
}

async function leaseHolder(): Promise<string | undefined> {
  return (await cluster.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE_ROLLOUT, namespace: RELEASE_NAMESPACE })).spec?.holderIdentity;
}

test('two replicas: the leader is SIGKILLed after the first wave; the other takes the Lease when it expires and finishes, nothing restarted twice', async () => {
  await webhook?.stop();
  webhook = undefined;
  deployed = await deployProduct(cluster, { ...values, image: { repository: SIDECAR, tag: '4.0.0' }, extra: { rollout: { enabled: true, maxConcurrent: 2, soakSeconds: 3, readyDeadlineSeconds: 120 } } });
  const env = { ...deployed.env, [ENV.rolloutIntervalSeconds]: '1' };
  const setsBefore = new Map<string, number>();
  for (const { ns, d } of await allDeployments()) setsBefore.set(key(ns, d), (await apps().listNamespacedReplicaSet({ namespace: ns, labelSelector: `app=${d.metadata!.name}` })).items.length);
  const a = await startWebhook(tls, { ...env, [ENV.podName]: 'replica-a' });
  replicas.push(a);
  service = await serviceStandIn(port, () => replicas.map((r) => r.port));
  await waitUntil('replica-a to lead the rollout', 20_000, async () => (await leaseHolder()) === 'replica-a');
  const b = await startWebhook(tls, { ...env, [ENV.podName]: 'replica-b' }, await freePort());
  replicas.push(b);
  const target = (await status()).report.target as string;
  assert.match(target, /^4\.0\.0\/[0-9a-f]{12}$/);

  // Every restartedAt each Deployment shows, polled every 200 ms from before the first restart to the end.
  const stamps = new Map<string, Set<string>>();
  let watching = true;
  const watcher = (async () => {
    for (let i = 0; watching && i < 3000; i++) {
      for (const { ns, d } of await allDeployments().catch(() => [])) {
        if (targetOf(d) !== target) continue;
        const seen = stamps.get(key(ns, d)) ?? new Set<string>();
        seen.add(d.spec!.template.metadata!.annotations![RESTARTED_AT_ANNOTATION]!);
        stamps.set(key(ns, d), seen);
      }
      await sleep(200);
    }
  })();

  // Ended in finally: a failure above must not leave the poll running until its count runs out.
  let observed: Awaited<ReturnType<typeof observe>>;
  let byA = 0;
  /** What replica-a had restarted when it was killed. */
  let restartedByA = new Set<string>();
  let tookOver = 0;
  let killedAt = 0;
  /** Pods admitted without the sidecar while replica-a was killed under their review. */
  const admittedInKill: Array<{ ns: string; name: string }> = [];
  try {
    const restartedFor = async () => (await allDeployments()).filter(({ d }) => targetOf(d) === target).length;
    // The canary namespace's two, then the first wave after it (one).
    await waitUntil('the canary and the first wave restarted', 90_000, async () => (await restartedFor()) >= 3, 200);
    killedAt = Date.now();
    await a.kill();
    replicas.splice(replicas.indexOf(a), 1);
    restartedByA = new Set((await allDeployments()).filter(({ d }) => targetOf(d) === target).map(({ ns, d }) => key(ns, d)));
    byA = restartedByA.size;
    assert.ok(byA >= 3 && byA < 8, `killed mid-rollout: ${byA} of 8 restarted`);
    assert.equal(await leaseHolder(), 'replica-a', 'a SIGKILL releases nothing: the Lease still names replica-a');
    await waitUntil('replica-b to take the Lease', 40_000, async () => (await leaseHolder()) === 'replica-b', 200);
    tookOver = Date.now() - killedAt;
    observed = await observe(target, 150_000);
  } finally {
    watching = false;
    await watcher;
  }
  const { order, maxBusy, sameNamespace } = observed;
  console.log(`# replica-a SIGKILLed after ${byA} of 8 restarts; replica-b took the Lease ${tookOver} ms later (Lease 15 s) and finished; order ${order.join(' ')}, at most ${maxBusy} at once`);
  assert.ok(tookOver <= 25_000, `the Lease (15 s) expired and the stand-by's next round took it: ${tookOver} ms`);
  assert.ok(maxBusy <= 2, `at most maxConcurrent (2) rolling at once: ${maxBusy}`);
  assert.deepEqual(sameNamespace, [], 'never two at once in one namespace');
  assert.equal(await b.metric('pandocore_rollout_restarts_total'), 8 - byA, 'replica-b restarted only what replica-a had not');
  for (const { ns, d } of await allDeployments()) {
    const k = key(ns, d);
    assert.equal(targetOf(d), target, k);
    assert.equal(stamps.get(k)?.size, 1, `${k}: one restartedAt for ${target}: ${[...(stamps.get(k) ?? [])].join(', ')}`);
    const sets = (await apps().listNamespacedReplicaSet({ namespace: ns, labelSelector: `app=${d.metadata!.name}` })).items.length;
    assert.equal(sets, setsBefore.get(k)! + 1, `${k}: one new ReplicaSet for ${target}`);
    const events = (await core().listNamespacedEvent({ namespace: ns, fieldSelector: `reason=${EVENT_ROLLOUT_RESTART},involvedObject.name=${d.metadata!.name}` })).items;
    const recorded = events.filter((e) => e.message?.includes(target)).length;
    // An Event is written after the restart: a SIGKILL between the two loses it (Events are best
    // effort; seen once in CI, b1 restarted by replica-a just before the kill had none). The restart
    // itself is proven above, once, by the restartedAt and the ReplicaSet.
    if (restartedByA.has(k)) assert.ok(recorded <= 1, `${k}: at most one ${EVENT_ROLLOUT_RESTART} Event for ${target} (restarted by the killed replica): ${recorded}`);
    else assert.equal(recorded, 1, `${k}: one ${EVENT_ROLLOUT_RESTART} Event for ${target}`);
    for (const pod of (await core().listNamespacedPod({ namespace: ns, labelSelector: `app=${d.metadata!.name}` })).items) {
      const version = pod.metadata?.annotations?.[ANNOTATION_VERSION];
      // The stand-in Service sends every review to replica-a while it lives: a pod of a Deployment it
      // had just restarted can be under review when it is SIGKILLed. The API server's call then
      // fails and failurePolicy Ignore admits the pod without the sidecar (seen in a CI run: b1).
      // That is the watchdog's case, asserted below; anything else must carry 4.0.0.
      const created = Date.parse(String(pod.metadata?.creationTimestamp));
      if (version === undefined && restartedByA.has(k) && Math.abs(created - killedAt) <= 3_000) admittedInKill.push({ ns, name: pod.metadata!.name! });
      else assert.equal(version, '4.0.0', `${ns}/${pod.metadata?.name}`);
    }
  }
  // Never silently: replica-b's watchdog (once it holds its Lease) records SidecarMissing on each.
  for (const { ns, name } of admittedInKill) {
    await waitUntil(`a SidecarMissing Event on ${ns}/${name}`, 45_000, async () => (await core().listNamespacedEvent({ namespace: ns, fieldSelector: `reason=${EVENT_SIDECAR_MISSING},involvedObject.name=${name}` })).items.length > 0, 500);
  }
  if (admittedInKill.length > 0) console.log(`# admitted without the sidecar while replica-a died under its review (failurePolicy Ignore), each reported SidecarMissing by the watchdog: ${admittedInKill.map(({ ns, name }) => `${ns}/${name}`).join(', ')}`);
  await waitUntil('replica-b\'s done gauge at 8', 5_000, async () => (await b.metric('pandocore_rollout_workloads', { state: 'done' })) === 8);
});
