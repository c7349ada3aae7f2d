// Issue 22 item 8 on the real node (test/cluster/node.ts): injected pods whose sidecar the kubelet
// cannot start are seen. The kubelet starts (or fails to start) each pod's sidecar and reports its
// status; nothing here writes a pod's status.
//   - an unlabelled control Deployment runs (READY 1/1);
//   - the chart's sidecar image one that does not exist: its registry is a closed port on 127.0.0.1
//     (the node has no registry and imports its images; a name like pando.test/... would make
//     containerd ask the host's DNS resolver, which is on a private address and never dialled);
//   - then the stand-in's crash version (its sidecar exits 1 at every start);
// the watchdog (heal=restart) counts both as sidecar-failing with the kubelet's reason (gauge on the
// webhook's /metrics), records SidecarFailing Events on each pod and its Deployment, never restarts
// them (even with an unprotected pod in the same Deployment), and `pando doctor` exits 1 naming them;
//   - the license Secret gone with namespaceCheck off (the check on skips such pods): the kubelet's
//     CreateContainerConfigError, counted and reported; `pando setup-namespace`, the fix doctor
//     prints, makes the same pod run (no restart).
// Skipped, with the reason, without a node (not root, no containerd, PANDO_NODE=0).
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { ENV, EVENT_SIDECAR_FAILING, SIDECAR_NAME } from '../../app/contract.ts';
import { RESTARTED_AT_ANNOTATION } from '../../app/controllers/heal.ts';
import type { Cluster } from '../cluster/harness.ts';
import { freePort } from '../cluster/free-port.ts';
import { NODE_IMAGES, STANDIN_VERSIONS } from '../cluster/node.ts';
import { deployProduct, prepare, setupProtectedNamespace, tearDown, type ChartValues, type Deployed } from './product.ts';
import { kubectlOn, nodeDeployment, nodeMissing, podRows, skipWithoutNode } from './node-support.ts';
import { createNamespace, runPando, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-sidecar-failing';
const STANDIN = NODE_IMAGES.sidecar.split(':')[0]!;
const CRASH = STANDIN_VERSIONS.crash;
const MISSING_TAG = 'does-not-exist';
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
let webhook: WebhookProcess | undefined;
let noNode: string | undefined;
let ns = '';
/** A port nothing listens on: the registry of the image that does not exist. */
let closedPort = 0;
const namespaces: string[] = [];
const timings: string[] = [];
/** Deployment -> the uid of its first pod, to show nothing was replaced. */
const firstPods = new Map<string, string>();

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);
const apps = () => cluster.kubeConfig.makeApiClient(AppsV1Api);
const kubectl = (...args: string[]): string => kubectlOn(cluster, ...args);

const deployment = (name: string, labelled: boolean, replicas = 1): V1Deployment => nodeDeployment(name, { labelled, replicas });

const skip = (t: TestContext): boolean => skipWithoutNode(t, noNode);

/** `kubectl get pods` columns of a Deployment's pods: NAME READY STATUS RESTARTS. */
function table(app: string, namespace = ns): string[][] {
  return podRows(cluster, namespace, '-l', `app=${app}`).map((r) => [r.name, r.ready, r.status, r.restarts]);
}

async function podsOf(app: string, namespace = ns): Promise<V1Pod[]> {
  return (await core().listNamespacedPod({ namespace, labelSelector: `app=${app}` })).items.filter((p) => !p.metadata?.deletionTimestamp);
}

const sidecarOf = (p: V1Pod) => [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])].find((c) => c.name === SIDECAR_NAME);

/** helm upgrade --install with the sidecar image `repository:tag` and heal=restart; the local webhook (re)started with the chart's env. */
async function install(repository: string, tag: string, extra: Record<string, unknown> = {}): Promise<void> {
  await webhook?.stop();
  webhook = undefined;
  deployed = await deployProduct(cluster, { ...values, image: { repository, tag }, extra: { watchdog: { heal: 'restart' }, ...extra } });
  assert.equal(deployed.env[ENV.watchdogHeal], 'restart');
  webhook = await startWebhook(tls, deployed.env, port);
}

async function failingEvents(namespace = ns): Promise<string[]> {
  const list = await core().listNamespacedEvent({ namespace, fieldSelector: `reason=${EVENT_SIDECAR_FAILING}` });
  return list.items.map((e) => `${e.involvedObject.kind}/${e.involvedObject.name}: ${e.message}`);
}

before(async () => {
  closedPort = await freePort();
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: `127.0.0.1:${closedPort}/${STANDIN}`, tag: MISSING_TAG } }));
  noNode = await nodeMissing(cluster);
  if (noNode) return;
  ns = await createNamespace(cluster, 'e2e-sidecar-failing');
  namespaces.push(ns);
  await setupProtectedNamespace(cluster, ns, LICENSE);
});

after(async () => {
  if (timings.length > 0) console.log(`# timings: ${timings.join('; ')}`);
  await tearDown({ cluster, tls, webhook, deployed, namespaces });
});

test('control: an unlabelled Deployment runs on the node (READY 1/1, no sidecar)', async (t) => {
  if (skip(t)) return;
  const t0 = Date.now();
  await apps().createNamespacedDeployment({ namespace: ns, body: deployment('control', false) });
  await waitUntil('Deployment control READY 1/1', 90_000, async () => kubectl('get', 'deployment', 'control', '-n', ns, '--no-headers').trim().split(/\s+/)[1] === '1/1', 500);
  const rows = table('control');
  console.log(`# control READY 1/1 in ${Date.now() - t0} ms: ${rows.map((r) => r.join(' ')).join('; ')}`);
  assert.deepEqual(rows.map((r) => r.slice(1)), [['1/1', 'Running', '0']]);
  assert.equal(sidecarOf((await podsOf('control'))[0]!), undefined);
});

test(`a sidecar image that does not exist (127.0.0.1:<closed port>/${STANDIN}:${MISSING_TAG}): sidecar-failing with the kubelet's reason, gauge, Events on pod and Deployment`, async (t) => {
  if (skip(t)) return;
  await install(`127.0.0.1:${closedPort}/${STANDIN}`, MISSING_TAG);
  const t0 = Date.now();
  await apps().createNamespacedDeployment({ namespace: ns, body: deployment('pull', true) });
  // What the kubelet writes, as `kubectl get pods` and the pod's status show it.
  const pod = await waitUntil("the pull pod's sidecar waiting in an image pull failure", 90_000, async () => {
    const [p] = await podsOf('pull');
    const reason = p && sidecarOf(p)?.state?.waiting?.reason;
    return reason === 'ErrImagePull' || reason === 'ImagePullBackOff' ? p : undefined;
  }, 250);
  const status = sidecarOf(pod)!;
  console.log(`# pull pod ${pod.metadata!.name} after ${Date.now() - t0} ms: ${table('pull').map((r) => r.join(' ')).join('; ')}; sidecar ${JSON.stringify({ image: status.image, restartCount: status.restartCount, state: status.state })}`);
  assert.ok(status.image.endsWith(`${STANDIN}:${MISSING_TAG}`), status.image);
  assert.equal(pod.metadata?.annotations?.['pandocore.xyz/status'], 'injected');
  firstPods.set('pull', pod.metadata!.uid!);

  const reasons = await waitUntil('the gauge pandocore_sidecar_failing_pods counts the pull pod', 60_000, async () => {
    const pulled = await webhook!.metric('pandocore_sidecar_failing_pods', { namespace: ns, reason: 'ErrImagePull' });
    const backOff = await webhook!.metric('pandocore_sidecar_failing_pods', { namespace: ns, reason: 'ImagePullBackOff' });
    return pulled + backOff === 1 ? { pulled, backOff } : undefined;
  }, 250);
  timings.push(`image pull failure counted ${Date.now() - t0} ms after the Deployment was created`);
  console.log(`# ${timings.at(-1)}: ${JSON.stringify(reasons)}`);
  assert.equal(await webhook!.metric('pandocore_pods', { state: 'sidecar-failing' }), 1);

  const events = await waitUntil('SidecarFailing Events on the pod and the Deployment', 30_000, async () => {
    const found = await failingEvents();
    return found.some((e) => e.startsWith(`Pod/${pod.metadata!.name}:`)) && found.some((e) => e.startsWith('Deployment/pull:')) ? found : undefined;
  });
  for (const e of events) console.log(`#   Event ${e}`);
  const onPod = events.find((e) => e.startsWith(`Pod/${pod.metadata!.name}:`))!;
  assert.match(onPod, /the PandoCore sidecar cannot start: (ErrImagePull|ImagePullBackOff) \(kubelet: .*\); fix: the sidecar image cannot be pulled.*the watchdog does not restart it/);

  // The kubelet backs off between pulls: ImagePullBackOff, counted under its own reason, one more Event on the pod.
  const backOff = await waitUntil('the sidecar in ImagePullBackOff', 60_000, async () => {
    const [p] = await podsOf('pull');
    const w = p && sidecarOf(p)?.state?.waiting;
    return w?.reason === 'ImagePullBackOff' ? w : undefined;
  }, 250);
  console.log(`# ${Date.now() - t0} ms after the create: ${table('pull').map((r) => r.join(' ')).join('; ')}; sidecar waiting ${JSON.stringify(backOff)}`);
  const both = await waitUntil('one SidecarFailing Event on the pod per reason', 30_000, async () => {
    const mine = (await failingEvents()).filter((e) => e.startsWith(`Pod/${pod.metadata!.name}:`));
    return mine.length === 2 ? mine : undefined;
  }, 250);
  assert.ok(both.some((e) => /cannot start: ErrImagePull/.test(e)) && both.some((e) => /cannot start: ImagePullBackOff \(kubelet: Back-off pulling image/.test(e)), both.join('\n'));
});

test(`the stand-in told to crash (${STANDIN}:${CRASH}): sidecar-failing CrashLoopBackOff; with an unprotected pod in the same Deployment nothing is restarted; pando doctor exits 1 naming both`, async (t) => {
  if (skip(t)) return;
  await install(STANDIN, CRASH);
  let t0 = Date.now();
  await apps().createNamespacedDeployment({ namespace: ns, body: deployment('crash', true) });
  const crashing = await waitUntil("the crash pod's sidecar down after a restart", 90_000, async () => {
    const [p] = await podsOf('crash');
    const s = p && sidecarOf(p);
    return s && (s.restartCount ?? 0) > 0 && !s.state?.running ? p : undefined;
  }, 250);
  const status = sidecarOf(crashing)!;
  console.log(`# crash pod ${crashing.metadata!.name} after ${Date.now() - t0} ms: ${table('crash').map((r) => r.join(' ')).join('; ')}; sidecar ${JSON.stringify({ image: status.image, restartCount: status.restartCount, state: status.state, lastState: status.lastState })}`);
  assert.equal(status.lastState?.terminated?.exitCode, 1, 'the stand-in exited 1');
  firstPods.set('crash', crashing.metadata!.uid!);
  await waitUntil('the gauge counts the crash pod as CrashLoopBackOff', 60_000, async () => (await webhook!.metric('pandocore_sidecar_failing_pods', { namespace: ns, reason: 'CrashLoopBackOff' })) === 1, 250);
  timings.push(`crash loop counted ${Date.now() - t0} ms after the Deployment was created`);
  // The pull pod carries the older sidecar version now, and is still sidecar-failing (not stale, so never rolled).
  assert.equal(await webhook!.metric('pandocore_pods', { state: 'sidecar-failing' }), 2);
  const events = await waitUntil('SidecarFailing Events on the crash pod and Deployment', 30_000, async () => {
    const found = await failingEvents();
    return found.some((e) => e.startsWith(`Pod/${crashing.metadata!.name}: the PandoCore sidecar cannot start: CrashLoopBackOff`)) && found.some((e) => e.startsWith('Deployment/crash:')) ? found : undefined;
  });
  for (const e of events.filter((x) => x.includes('crash'))) console.log(`#   Event ${e}`);
  const pullEvents = events.filter((e) => e.startsWith('Pod/pull-'));
  assert.equal(pullEvents.length, 2, `the pull pod, through more pulls and back-offs: still one Event per reason: ${pullEvents.join('\n')}`);

  // An unprotected pod in the crash Deployment (created while the webhook is down) would make
  // heal=restart restart it: not while its other pod's sidecar cannot start.
  await webhook!.stop();
  webhook = undefined;
  kubectl('scale', 'deployment', 'crash', '-n', ns, '--replicas=2');
  const bare = await waitUntil('a second crash pod without the sidecar', 30_000, async () => (await podsOf('crash')).find((p) => p.metadata!.uid !== firstPods.get('crash')), 250);
  assert.equal(bare.metadata?.annotations?.['pandocore.xyz/status'], undefined, 'created while the webhook was down: no sidecar');
  t0 = Date.now();
  webhook = await startWebhook(tls, deployed!.env, port);
  await waitUntil('the watchdog counts the unprotected pod', 30_000, async () => (await webhook!.metric('pandocore_pods', { state: 'unprotected' })) === 1, 250);
  await waitUntil('the watchdog says it does not restart Deployment crash', 30_000, async () => /not restarting a workload whose sidecar cannot start/.test(webhook!.output()), 250);
  timings.push(`no-restart decision logged ${Date.now() - t0} ms after the webhook started`);

  // pando doctor, as a user runs it.
  const r = await runPando(cluster.kubeconfigPath, ['doctor', '-n', ns, '-o', 'json', '--no-probe']);
  assert.equal(r.code, 1, `doctor exits 1: ${r.stderr}`);
  const check = (JSON.parse(r.stdout).checks as Array<{ id: string; status: string; message: string; fixes: string[] }>).find((c) => c.id === 'sidecar-failing')!;
  console.log(`# pando doctor: ${check.status}: ${check.message}\n#   fixes: ${check.fixes.join(' | ')}`);
  assert.equal(check.status, 'fail');
  const pullPod = (await podsOf('pull'))[0]!.metadata!.name!;
  assert.match(check.message, /^2 injected pod\(s\) in .* whose PandoCore sidecar cannot start/);
  assert.match(check.message, new RegExp(`(ErrImagePull|ImagePullBackOff): ${ns}/${pullPod}`));
  assert.match(check.message, new RegExp(`CrashLoopBackOff: ${ns}/${crashing.metadata!.name}`));
  assert.ok(check.fixes.some((f) => /^(ErrImagePull|ImagePullBackOff): the sidecar image cannot be pulled/.test(f)), check.fixes.join('\n'));
  assert.ok(check.fixes.some((f) => f.startsWith(`CrashLoopBackOff: the sidecar keeps exiting: kubectl logs ${crashing.metadata!.name} -n ${ns} -c ${SIDECAR_NAME} --previous`)), check.fixes.join('\n'));

  // Nothing restarted by the watchdog: no restart stamp, no restart counted, the same first pods.
  for (const name of ['pull', 'crash']) {
    const d = await apps().readNamespacedDeployment({ name, namespace: ns });
    assert.equal(d.spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION], undefined, `${name}: not restarted`);
    assert.ok((await podsOf(name)).some((p) => p.metadata!.uid === firstPods.get(name)), `${name}: its first pod is still there`);
  }
  assert.equal(await webhook.metric('pandocore_watchdog_restarts_total'), 0);
  assert.deepEqual(table('control').map((r) => r.slice(1)), [['1/1', 'Running', '0']], 'the control still runs');
});

test(`the license Secret gone with namespaceCheck=false: CreateContainerConfigError, counted and reported; pando setup-namespace (doctor's fix) makes the same pod run`, async (t) => {
  if (skip(t)) return;
  const good = STANDIN_VERSIONS.good[0];
  await install(STANDIN, good, { namespaceCheck: false });
  assert.equal(deployed!.env[ENV.namespaceCheck], 'false');
  const bare = await createNamespace(cluster, 'e2e-sidecar-nosecret');
  namespaces.push(bare);
  await setupProtectedNamespace(cluster, bare, LICENSE);
  await core().deleteNamespacedSecret({ name: 'pando-license', namespace: bare });
  const t0 = Date.now();
  await apps().createNamespacedDeployment({ namespace: bare, body: deployment('nosecret', true) });
  const pod = await waitUntil("the sidecar waiting in CreateContainerConfigError", 60_000, async () => {
    const [p] = await podsOf('nosecret', bare);
    return p && sidecarOf(p)?.state?.waiting?.reason === 'CreateContainerConfigError' ? p : undefined;
  }, 250);
  const status = sidecarOf(pod)!;
  console.log(`# nosecret pod ${pod.metadata!.name} after ${Date.now() - t0} ms: ${table('nosecret', bare).map((r) => r.join(' ')).join('; ')}; sidecar ${JSON.stringify({ image: status.image, restartCount: status.restartCount, state: status.state })}`);
  assert.equal(pod.metadata?.annotations?.['pandocore.xyz/status'], 'injected', 'injected: the namespace check is off');
  await waitUntil('the gauge counts CreateContainerConfigError', 30_000, async () => (await webhook!.metric('pandocore_sidecar_failing_pods', { namespace: bare, reason: 'CreateContainerConfigError' })) === 1, 250);
  const events = await waitUntil('SidecarFailing Events on the pod and the Deployment', 30_000, async () => {
    const found = await failingEvents(bare);
    return found.length >= 2 ? found : undefined;
  });
  for (const e of events) console.log(`#   Event ${e}`);
  assert.ok(events.some((e) => e.startsWith(`Pod/${pod.metadata!.name}: the PandoCore sidecar cannot start: CreateContainerConfigError (kubelet: secret "pando-license" not found); fix: `) && e.includes(`pando setup-namespace ${bare}`)), events.join('\n'));
  const r = await runPando(cluster.kubeconfigPath, ['doctor', '-n', bare, '-o', 'json', '--no-probe']);
  assert.equal(r.code, 1);
  const checks = JSON.parse(r.stdout).checks as Array<{ id: string; status: string; message: string; fixes: string[] }>;
  const check = checks.find((c) => c.id === 'sidecar-failing')!;
  console.log(`# pando doctor: ${check.status}: ${check.message}\n#   fixes: ${check.fixes.join(' | ')}`);
  assert.match(check.message, new RegExp(`CreateContainerConfigError: ${bare}/${pod.metadata!.name}`));
  assert.ok(check.fixes.some((f) => f.includes(`pando setup-namespace ${bare}`)), check.fixes.join('\n'));

  // The fix doctor prints: the kubelet retries and the same pod runs.
  const setup = await runPando(cluster.kubeconfigPath, ['setup-namespace', bare]);
  assert.equal(setup.code, 0, setup.stderr);
  const t1 = Date.now();
  await waitUntil('the same pod Running 2/2', 90_000, async () => {
    const rows = table('nosecret', bare);
    return rows.length === 1 && rows[0]![0] === pod.metadata!.name && rows[0]![1] === '2/2' && rows[0]![2] === 'Running';
  }, 500);
  await waitUntil('no longer counted', 30_000, async () => (await webhook!.metric('pandocore_sidecar_failing_pods', { namespace: bare })) === 0, 250);
  timings.push(`after pando setup-namespace the same pod Running 2/2 and uncounted in ${Date.now() - t1} ms`);
  console.log(`# ${timings.at(-1)}: ${table('nosecret', bare).map((x) => x.join(' ')).join('; ')}`);
});
