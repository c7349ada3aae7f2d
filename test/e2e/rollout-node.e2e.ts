// Issue 24 on the real node (test/cluster/node.ts): the sidecar rollout with pods that really run.
// The kubelet starts each pod's stand-in sidecar (test/sidecar-standin, one image per version,
// build-node.sh) and reports its status; nothing here writes a pod's status. 6 Deployments (1
// replica each, naming the node's scheduler and tolerating its taint) in 2 namespaces, one labelled
// pandocore.xyz/rollout-canary=true; the chart with rollout.enabled, maxConcurrent 2, soakSeconds 5.
//   - a good version (helm upgrade of sidecar.image's tag): the canary namespace first, then the
//     other; every pod ends Running 2/2 with the new sidecar image, as `kubectl get pods` shows it;
//   - a bad version (its image makes the stand-in exit 1 at every start): the canary's new pod's
//     sidecar really crash-loops on the kubelet, the rollout pauses, the old pod keeps serving, and
//     no other Deployment is restarted (same pods, same image);
//   - a fixed version and `pando rollout resume`: it finishes, every pod Running 2/2 on it.
// Skipped, with the reason, without a node (not root, no containerd, PANDO_NODE=0).
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, type V1Deployment } from '@kubernetes/client-node';
import { ANNOTATION_ROLLOUT_TARGET, ENV, LABEL_ROLLOUT_CANARY, ROLLOUT_CONFIGMAP, SIDECAR_NAME } from '../../app/contract.ts';
import { BIN_DIR, type Cluster } from '../cluster/harness.ts';
import { NODE_IMAGES, STANDIN_VERSIONS } from '../cluster/node.ts';
import { deployProduct, prepare, RELEASE_NAMESPACE, setupProtectedNamespace, tearDown, type ChartValues, type Deployed } from './product.ts';
import { kubectlOn, nodeDeployment, nodeMissing, skipWithoutNode } from './node-support.ts';
import { createNamespace, runPando, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-rollout-node';
const REPOSITORY = NODE_IMAGES.sidecar.split(':')[0]!;
const [FIRST, GOOD, FIXED] = STANDIN_VERSIONS.good;
const BAD = STANDIN_VERSIONS.crash;
const ROLLOUT = { enabled: true, maxConcurrent: 2, soakSeconds: 5, readyDeadlineSeconds: 120 };
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
let webhook: WebhookProcess | undefined;
let noNode: string | undefined;
const namespaces: string[] = [];
let canary = '';
let team = '';
/** namespace -> the labelled Deployments in it. */
const plan = new Map<string, string[]>();
const timings: string[] = [];

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);
const apps = () => cluster.kubeConfig.makeApiClient(AppsV1Api);

const kubectl = (...args: string[]): string => kubectlOn(cluster, ...args);


// The injected sidecar has no readiness or startup probe (by default): the kubelet counts it Ready the
// instant it runs, so a sidecar that crashes a moment later makes its pod Ready for an
// instant. Without minReadySeconds the Deployment counts that pod available and removes the
// old one (seen here: the canary's 0.2.0 pod gone, its only pod 1/2 Init:Error); with it, the
// old pod keeps serving while the new one crash-loops.
const deployment = (name: string, labelled: boolean): V1Deployment => nodeDeployment(name, { labelled, minReadySeconds: 5 });

/** One pod as `kubectl get pods` shows it: the table's READY and STATUS, and the sidecar's and app's statuses. */
interface PodView {
  name: string;
  ready: string;
  status: string;
  restarts: string;
  terminating: boolean;
  phase: string;
  sidecar?: { image: string; ready: boolean; restartCount: number; state: any; lastState: any };
  app?: { ready: boolean };
}

function podViews(namespace: string, app: string): PodView[] {
  const table = new Map(
    kubectl('get', 'pods', '-n', namespace, '-l', `app=${app}`, '--no-headers')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        const [name, ready, status, restarts] = l.trim().split(/\s+/) as [string, string, string, string];
        return [name, { ready, status, restarts }] as const;
      }),
  );
  const items = JSON.parse(kubectl('get', 'pods', '-n', namespace, '-l', `app=${app}`, '-o', 'json')).items as any[];
  return items.map((pod) => {
    const sidecar = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].find((s: any) => s.name === SIDECAR_NAME);
    const appStatus = (pod.status?.containerStatuses ?? []).find((s: any) => s.name === 'app');
    const row = table.get(pod.metadata.name) ?? { ready: '?', status: '?', restarts: '?' };
    return {
      name: pod.metadata.name,
      ...row,
      terminating: pod.metadata.deletionTimestamp !== undefined,
      phase: pod.status?.phase,
      ...(sidecar ? { sidecar: { image: sidecar.image, ready: sidecar.ready === true, restartCount: sidecar.restartCount ?? 0, state: sidecar.state, lastState: sidecar.lastState } } : {}),
      ...(appStatus ? { app: { ready: appStatus.ready === true } } : {}),
    };
  });
}

const showPod = (p: PodView) => `${p.name} ${p.ready} ${p.status} ${p.restarts} sidecar ${p.sidecar?.image ?? '-'}`;
const runsVersion = (p: PodView, version: string) =>
  !p.terminating && p.phase === 'Running' && p.ready === '2/2' && p.status === 'Running' && p.sidecar?.ready === true && p.app?.ready === true && p.sidecar.image.endsWith(`sidecar-standin:${version}`);

/** Every labelled Deployment's pods: exactly one each, Running 2/2 with the sidecar of `version`. */
function assertAllRun(version: string): Map<string, PodView> {
  const pods = new Map<string, PodView>();
  for (const [ns, names] of plan) {
    for (const name of names) {
      const views = podViews(ns, name);
      assert.equal(views.length, 1, `${ns}/${name}: one pod: ${views.map(showPod).join('; ')}`);
      const p = views[0]!;
      assert.ok(runsVersion(p, version), `${ns}/${name}: Running 2/2 with sidecar ${version}: ${showPod(p)} ${JSON.stringify(p.sidecar)}`);
      assert.equal(p.sidecar!.restartCount, 0, `${ns}/${name}: the sidecar never restarted`);
      pods.set(`${ns}/${name}`, p);
    }
  }
  return pods;
}

const skip = (t: TestContext): boolean => skipWithoutNode(t, noNode);

/** helm upgrade to sidecar tag `tag` with the rollout on, and the local webhook restarted with the chart's env (a pass every second). */
async function upgradeTo(tag: string): Promise<void> {
  await webhook?.stop();
  deployed = await deployProduct(cluster, { ...values, image: { repository: REPOSITORY, tag }, extra: { rollout: ROLLOUT } });
  webhook = await startWebhook(tls, { ...deployed.env, [ENV.rolloutIntervalSeconds]: '1' }, port);
}

async function status(): Promise<{ code: number; report: any }> {
  const r = await runPando(cluster.kubeconfigPath, ['rollout', 'status', '-o', 'json']);
  return { code: r.code, report: r.stdout ? JSON.parse(r.stdout) : { stderr: r.stderr } };
}

async function configMapData(): Promise<Record<string, string>> {
  return (await core().readNamespacedConfigMap({ name: ROLLOUT_CONFIGMAP, namespace: RELEASE_NAMESPACE })).data ?? {};
}

async function labelledDeployments(): Promise<Array<{ key: string; ns: string; d: V1Deployment }>> {
  const out = [];
  for (const [ns, names] of plan) {
    for (const d of (await apps().listNamespacedDeployment({ namespace: ns })).items) if (names.includes(d.metadata!.name!)) out.push({ key: `${ns}/${d.metadata!.name}`, ns, d });
  }
  return out;
}

const targetOf = (d: V1Deployment) => d.spec?.template.metadata?.annotations?.[ANNOTATION_ROLLOUT_TARGET];
/** `kubectl rollout status` would say done: the latest generation seen, its one replica updated and available, no old one left. */
const rolledOut = (d: V1Deployment) =>
  (d.status?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) && (d.status?.updatedReplicas ?? 0) === 1 && (d.status?.replicas ?? 0) === 1 && (d.status?.availableReplicas ?? 0) >= 1;

/**
 * Watches the Deployments until every one was restarted for `target` and `pando rollout status`
 * exits 0: the order of the restarts, when each was restarted and rolled out, and the most rolling
 * at once (in all, and in one namespace).
 */
async function observe(target: string, timeoutMs: number): Promise<{ order: string[]; restartedAt: Map<string, number>; rolledOutAt: Map<string, number>; maxBusy: number; sameNamespace: string[]; ms: number }> {
  const order: string[] = [];
  const restartedAt = new Map<string, number>();
  const rolledOutAt = new Map<string, number>();
  let maxBusy = 0;
  const sameNamespace: string[] = [];
  const t0 = Date.now();
  for (let i = 0; Date.now() - t0 < timeoutMs && i < 10_000; i++) {
    const list = await labelledDeployments();
    const now = Date.now();
    for (const { key, d } of list) {
      if (targetOf(d) !== target) continue;
      if (!restartedAt.has(key)) {
        order.push(key);
        restartedAt.set(key, now);
      }
      if (rolledOut(d) && !rolledOutAt.has(key)) rolledOutAt.set(key, now);
    }
    const busy = list.filter(({ d }) => targetOf(d) === target && !rolledOut(d));
    maxBusy = Math.max(maxBusy, busy.length);
    const perNs = new Map<string, number>();
    for (const { ns } of busy) perNs.set(ns, (perNs.get(ns) ?? 0) + 1);
    for (const [ns, n] of perNs) if (n > 1 && !sameNamespace.includes(ns)) sameNamespace.push(ns);
    if (order.length === list.length && (await status()).code === 0) return { order, restartedAt, rolledOutAt, maxBusy, sameNamespace, ms: Date.now() - t0 };
    await sleep(500);
  }
  const pods = [...plan].flatMap(([ns, names]) => names.flatMap((n) => podViews(ns, n).map((p) => `${ns}/${showPod(p)}`)));
  throw new Error(`timed out after ${timeoutMs} ms: the rollout to ${target} is not done: restarted ${order.join(', ') || 'none'}; status ${JSON.stringify((await status()).report)}; pods ${pods.join('; ')}`);
}

/** Every labelled Deployment READY 1/1 with its pods Running 2/2 on the sidecar `version`. */
async function waitAllRun(version: string, timeoutMs: number): Promise<void> {
  await waitUntil(`all 6 Deployments' pods Running 2/2 with sidecar ${version}`, timeoutMs, async () => {
    for (const [ns, names] of plan) {
      for (const name of names) {
        const views = podViews(ns, name);
        if (views.length !== 1 || !runsVersion(views[0]!, version)) return false;
      }
    }
    return true;
  }, 500);
}

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: REPOSITORY, tag: FIRST } }));
  noNode = await nodeMissing(cluster);
  if (noNode) return;
  canary = await createNamespace(cluster, 'e2e-rn-canary', { [LABEL_ROLLOUT_CANARY]: 'true' });
  team = await createNamespace(cluster, 'e2e-rn-team');
  namespaces.push(canary, team);
  for (const ns of namespaces) await setupProtectedNamespace(cluster, ns, LICENSE);
  plan.set(canary, ['c1', 'c2']);
  plan.set(team, ['t1', 't2', 't3', 't4']);
  await upgradeTo(FIRST);
});

after(async () => {
  if (timings.length > 0) console.log(`# timings: ${timings.join('; ')}`);
  await tearDown({ cluster, tls, webhook, deployed, namespaces });
});

let controlPod = '';

test(`control first, then 6 labelled Deployments in 2 namespaces run on the node: every pod Running 2/2 with sidecar ${FIRST}`, async (t) => {
  if (skip(t)) return;
  let t0 = Date.now();
  await apps().createNamespacedDeployment({ namespace: team, body: deployment('control', false) });
  await waitUntil('Deployment control READY 1/1', 90_000, async () => kubectl('get', 'deployment', 'control', '-n', team, '--no-headers').trim().split(/\s+/)[1] === '1/1', 500);
  const control = podViews(team, 'control');
  console.log(`# control READY 1/1 in ${Date.now() - t0} ms: ${control.map(showPod).join('; ')}`);
  assert.deepEqual(control.map((p) => [p.ready, p.status, p.restarts, p.sidecar]), [['1/1', 'Running', '0', undefined]], 'unlabelled: no sidecar, Running');
  controlPod = control[0]!.name;

  t0 = Date.now();
  for (const [ns, names] of plan) for (const name of names) await apps().createNamespacedDeployment({ namespace: ns, body: deployment(name, true) });
  await waitAllRun(FIRST, 120_000);
  const pods = assertAllRun(FIRST);
  timings.push(`6 Deployments Running 2/2 on ${FIRST} in ${Date.now() - t0} ms`);
  console.log(`# ${timings.at(-1)}: ${[...pods.values()].map(showPod).join('; ')}`);
  const s = await status();
  assert.equal(s.code, 0, `nothing to roll at the version the pods run: ${JSON.stringify(s.report)}`);
});

let goodPods = new Map<string, PodView>();

test(`a good version (${GOOD}): the canary namespace first, then the other, at most 2 at once; every pod Running 2/2 with sidecar ${GOOD}`, async (t) => {
  if (skip(t)) return;
  const t0 = Date.now();
  await upgradeTo(GOOD);
  const target = (await status()).report.target as string;
  assert.match(target, new RegExp(`^${GOOD.replaceAll('.', '\\.')}/[0-9a-f]{12}$`));
  const o = await observe(target, 150_000);
  const total = Date.now() - t0;
  timings.push(`good upgrade ${FIRST} -> ${GOOD}: 6 Deployments rolled and soaked in ${Math.round(total / 1000)} s (helm upgrade + webhook start ${Math.round((total - o.ms) / 1000)} s)`);
  console.log(`# ${timings.at(-1)}; order ${o.order.join(' ')}; at most ${o.maxBusy} rolling at once`);
  for (const k of o.order) console.log(`#   ${k}: restarted +${o.restartedAt.get(k)! - t0} ms, rolled out +${(o.rolledOutAt.get(k) ?? Number.NaN) - t0} ms`);
  assert.deepEqual(o.order.slice(0, 2).map((k) => k.split('/')[0]), [canary, canary], 'the canary namespace first');
  const canaryRolledOut = Math.max(...o.order.slice(0, 2).map((k) => o.rolledOutAt.get(k) ?? Number.POSITIVE_INFINITY));
  for (const k of o.order.slice(2)) assert.ok(o.restartedAt.get(k)! >= canaryRolledOut, `${k} restarted only after both canaries rolled out`);
  assert.ok(o.maxBusy <= 2, `at most maxConcurrent (2) rolling at once: ${o.maxBusy}`);
  assert.deepEqual(o.sameNamespace, [], 'never two at once in one namespace');
  goodPods = assertAllRun(GOOD);
  console.log(`# pods: ${[...goodPods.values()].map(showPod).join('; ')}`);
  assert.equal(podViews(team, 'control')[0]?.name, controlPod, 'the unlabelled control was never restarted');
  const s = await status();
  assert.equal(s.code, 0, 'pando rollout status: exit 0');
  assert.equal(s.report.counts.done, 6);
});

test(`a bad version (${BAD}): the canary's new sidecar crash-loops on the kubelet, the rollout pauses, the old pod keeps serving, nothing else is restarted; ${FIXED} and pando rollout resume finish it`, async (t) => {
  if (skip(t)) return;
  assert.equal(goodPods.size, 6, `the good upgrade ran first`);
  let t0 = Date.now();
  await upgradeTo(BAD);
  const bad = (await status()).report.target as string;
  const paused = await waitUntil('the rollout to pause', 120_000, async () => {
    const data = await configMapData();
    return data.paused === 'true' ? data : undefined;
  }, 500);
  const failure = JSON.parse(paused.failure!);
  const pausedMs = Date.now() - t0;
  timings.push(`bad upgrade ${GOOD} -> ${BAD}: paused ${Math.round(pausedMs / 1000)} s after the helm upgrade, on ${failure.workload} pod ${failure.pod}: ${failure.reason}`);
  console.log(`# ${timings.at(-1)}`);
  assert.equal(paused.target, bad);
  const [failedNs, , failedName] = failure.workload.split('/') as [string, string, string];
  assert.equal(failedNs, canary, 'the canary failed');
  assert.equal(failure.reason, 'CrashLoopBackOff', `the kubelet's reason: ${JSON.stringify(failure)}`);

  // What the kubelet really reports for that pod: the sidecar of the bad version, restarted, waiting in back-off (or just exited 1).
  // (It is Running for an instant at each restart: read it while it is down.)
  const crashing = await waitUntil(`pod ${failure.pod}'s sidecar down (CrashLoopBackOff or Error)`, 30_000, async () => {
    const p = podViews(canary, failedName).find((v) => v.name === failure.pod);
    return p?.sidecar?.state?.running ? undefined : p;
  }, 200);
  console.log(`# the canary's new pod: ${showPod(crashing)}; sidecar state ${JSON.stringify(crashing.sidecar?.state)}, last ${JSON.stringify(crashing.sidecar?.lastState)}`);
  assert.ok(crashing.sidecar?.image.endsWith(`sidecar-standin:${BAD}`), `the bad version's image: ${crashing.sidecar?.image}`);
  assert.ok(crashing.sidecar!.restartCount > 0, `the kubelet restarted the sidecar: restartCount ${crashing.sidecar!.restartCount}`);
  const reason = crashing.sidecar!.state?.waiting?.reason ?? crashing.sidecar!.state?.terminated?.reason;
  assert.ok(reason === 'CrashLoopBackOff' || reason === 'Error', `CrashLoopBackOff (or Error between restarts): ${reason}`);
  assert.equal(crashing.sidecar!.lastState?.terminated?.exitCode, 1, 'the sidecar exited 1');
  assert.equal(crashing.sidecar!.ready, false);
  // Why, as a user reads it: the exited container's log (the kubelet keeps the last one), else its termination message.
  const logs = spawnSync(join(BIN_DIR, 'kubectl'), ['logs', '-n', canary, failure.pod, '-c', SIDECAR_NAME], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 30_000 });
  const why = `${logs.stdout}${crashing.sidecar!.state?.terminated?.message ?? ''}`;
  assert.match(why, /version=0\.3\.0-crash is built to crash.*exiting 1/, `the sidecar's log says why: ${why} ${logs.stderr}`);

  // The leader records the Event after it has written the pause to the ConfigMap: wait for it.
  const events = await waitUntil('the RolloutPaused Event', 15_000, async () => {
    const items = (await core().listNamespacedEvent({ namespace: canary, fieldSelector: 'reason=RolloutPaused' })).items;
    return items.length > 0 ? items : undefined;
  });
  assert.equal(events.length, 1, 'one RolloutPaused Event');
  assert.match(events[0]!.message!, new RegExp(`pod ${failure.pod}: CrashLoopBackOff`));
  assert.equal(events[0]!.involvedObject.name, failedName);
  const s = await status();
  assert.equal(s.code, 1, `pando rollout status: exit 1 while paused: ${JSON.stringify(s.report)}`);
  assert.equal(s.report.paused.pod, failure.pod);
  assert.match(s.report.paused.fix, /pando rollout resume/);

  // Two more soak lengths: nothing else is restarted; the failed canary's old pod keeps serving.
  await sleep(10_000);
  const touched = (await labelledDeployments()).filter(({ d }) => targetOf(d) === bad).map(({ key }) => key);
  assert.deepEqual(touched, [`${canary}/${failedName}`], 'only the canary was restarted for the bad version');
  for (const [ns, names] of plan) {
    for (const name of names) {
      const key = `${ns}/${name}`;
      const before = goodPods.get(key)!;
      const views = podViews(ns, name);
      const old = views.find((p) => p.name === before.name);
      assert.ok(old && runsVersion(old, GOOD) && old.sidecar!.restartCount === 0, `${key}: its ${GOOD} pod ${before.name} still Running 2/2: ${views.map(showPod).join('; ')}`);
      if (key === `${canary}/${failedName}`) {
        assert.equal(views.length, 2, `${key}: the old pod and the crash-looping new one: ${views.map(showPod).join('; ')}`);
        const d = (await apps().readNamespacedDeployment({ name, namespace: ns })).status;
        assert.equal(d?.availableReplicas, 1, `${key}: still available (maxUnavailable 0): ${JSON.stringify(d)}`);
      } else {
        assert.equal(views.length, 1, `${key}: untouched: ${views.map(showPod).join('; ')}`);
      }
    }
  }
  assert.equal(podViews(team, 'control')[0]?.name, controlPod, 'the unlabelled control was never restarted');

  // The fix: a corrected version (helm upgrade), then resume.
  t0 = Date.now();
  await upgradeTo(FIXED);
  const fixed = (await status()).report.target as string;
  await sleep(3_000);
  assert.equal((await labelledDeployments()).filter(({ d }) => targetOf(d) === fixed).length, 0, 'a new version alone does not resume');
  const resumed = await runPando(cluster.kubeconfigPath, ['rollout', 'resume']);
  assert.equal(resumed.code, 0, resumed.stderr);
  const o = await observe(fixed, 150_000);
  const total = Date.now() - t0;
  timings.push(`fix ${BAD} -> ${FIXED} + pando rollout resume: 6 Deployments rolled and soaked in ${Math.round(total / 1000)} s`);
  console.log(`# ${timings.at(-1)}; order ${o.order.join(' ')}; at most ${o.maxBusy} rolling at once`);
  assert.deepEqual(o.order.slice(0, 2).map((k) => k.split('/')[0]), [canary, canary], 'canary first again');
  assert.ok(o.maxBusy <= 2, `at most maxConcurrent (2) rolling at once: ${o.maxBusy}`);
  assert.deepEqual(o.sameNamespace, []);
  const pods = assertAllRun(FIXED);
  console.log(`# pods: ${[...pods.values()].map(showPod).join('; ')}`);
  assert.equal((await configMapData()).failure, undefined, 'resume cleared the failure');
  const end = await status();
  assert.equal(end.code, 0, 'pando rollout status: exit 0');
  assert.equal(end.report.counts.done, 6);
  assert.equal(podViews(team, 'control')[0]?.name, controlPod, 'the unlabelled control was never restarted');
});
