// Issue 22 item 5 on the real node (test/cluster/node.ts): what happens to running pods when their
// sidecar dies, and the watchdog's heal with pods that really run. The kubelet starts every pod and
// reports its status; nothing here writes a pod's status (test/e2e/watchdog.e2e.ts proves the
// watchdog without a node, writing readiness through the status subresource).
//   - OOM: the stand-in of version 0.3.2-oom allocates 256 MiB once ready, twice the chart's
//     sidecar memory limit (128Mi): the kernel kills the sidecar (OOMKilled, 137), the kubelet
//     restarts it, the app container keeps running, never restarted, and the pod stays Running.
//   - Heal: the webhook down (failurePolicy Ignore), a labelled Deployment runs without the sidecar;
//     the webhook comes up with watchdog.heal=restart: new pods Running 2/2 with the sidecar, the
//     old ones gone, the unlabelled control Deployment never restarted.
// Each case runs an unlabelled control first, and asserts on what `kubectl get pods` shows. Skipped,
// with the reason, without a node (not root, no containerd, PANDO_NODE=0).
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { AppsV1Api, CoreV1Api, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { ENV, LABEL_PROTECT, SIDECAR_NAME } from '../../app/contract.ts';
import { RESTARTED_AT_ANNOTATION } from '../../app/controllers/heal.ts';
import type { Cluster } from '../cluster/harness.ts';
import { NODE_IMAGES, STANDIN_VERSIONS } from '../cluster/node.ts';
import { deployProduct, prepare, setupProtectedNamespace, tearDown, type ChartValues, type Deployed } from './product.ts';
import { kubectlOn, nodeDeployment, nodeMissing, onTheNode, skipWithoutNode } from './node-support.ts';
import { createNamespace, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-node-heal';
const [REPOSITORY, GOOD_TAG] = NODE_IMAGES.sidecar.split(':') as [string, string];
const OOM = STANDIN_VERSIONS.oom;
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
let webhook: WebhookProcess | undefined;
let noNode: string | undefined;
const namespaces: string[] = [];
const timings: string[] = [];

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);
const apps = () => cluster.kubeConfig.makeApiClient(AppsV1Api);
const kubectl = (...args: string[]): string => kubectlOn(cluster, ...args);

function podSpec() {
  return { ...onTheNode, terminationGracePeriodSeconds: 5, containers: [{ name: 'app', image: NODE_IMAGES.pause }] };
}

function pod(name: string, labelled: boolean): V1Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: name, ...(labelled ? { [LABEL_PROTECT]: 'true' } : {}) } }, spec: podSpec() };
}

const deployment = (name: string, labelled: boolean): V1Deployment => nodeDeployment(name, { labelled, replicas: 2 });

/** One pod as `kubectl get pods` shows it (READY, STATUS, RESTARTS), with its sidecar's and app's statuses. */
interface PodView {
  name: string;
  ready: string;
  status: string;
  restarts: string;
  terminating: boolean;
  phase: string;
  /** The pod's Ready condition (what puts it in a Service's endpoints). */
  podReady: string;
  sidecar?: any;
  app?: any;
}

/**
 * The pods of `app` as `kubectl get pods` shows them, from one response: kubectl asks the API server
 * for a Table (its READY, STATUS and RESTARTS cells come from the server's printer) and prints its
 * cells; includeObject=Object returns each row's pod with it, so the cells and the statuses read
 * here are the same moment.
 */
async function podViews(namespace: string, app: string): Promise<PodView[]> {
  const url = new URL(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(`app=${app}`)}&includeObject=Object`, cluster.kubeConfig.getCurrentCluster()!.server);
  const options: RequestOptions = { headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' }, timeout: 30_000 };
  await cluster.kubeConfig.applyToHTTPSOptions(options);
  const table = await new Promise<any>((res, rej) => {
    const req = httpsRequest(url, options, (r) => {
      let text = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (text += c));
      r.on('end', () => (r.statusCode === 200 ? res(JSON.parse(text)) : rej(new Error(`GET ${url.pathname} as Table: ${r.statusCode} ${text}`))));
    });
    req.on('error', rej);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
  const column = (name: string) => (table.columnDefinitions as any[]).findIndex((c) => c.name === name);
  const [ready, status, restarts] = [column('Ready'), column('Status'), column('Restarts')];
  return (table.rows as any[]).map((row) => {
    const p = row.object;
    return {
      name: p.metadata.name,
      ready: String(row.cells[ready]),
      status: String(row.cells[status]),
      restarts: String(row.cells[restarts]),
      terminating: p.metadata.deletionTimestamp !== undefined,
      phase: p.status?.phase,
      podReady: (p.status?.conditions ?? []).find((c: any) => c.type === 'Ready')?.status ?? '-',
      sidecar: [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])].find((s: any) => s.name === SIDECAR_NAME),
      app: (p.status?.containerStatuses ?? []).find((s: any) => s.name === 'app'),
    };
  });
}

const show = (p: PodView) => `${p.name} ${p.ready} ${p.status} ${p.restarts}${p.terminating ? ' (terminating)' : ''}`;

const skip = (t: TestContext): boolean => skipWithoutNode(t, noNode);

async function restartWebhook(env: Record<string, string>): Promise<void> {
  await webhook?.stop();
  webhook = await startWebhook(tls, env, port);
}

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: REPOSITORY, tag: OOM } }));
  noNode = await nodeMissing(cluster);
  if (noNode) return;
  // The chart's defaults: the sidecar's memory limit (128Mi) and failurePolicy Ignore are what this file relies on.
  deployed = await deployProduct(cluster, values);
  const resources = JSON.parse(deployed.env[ENV.sidecarResources] ?? 'null');
  assert.equal(resources?.limits?.memory, '128Mi', `the chart's sidecar memory limit: ${deployed.env[ENV.sidecarResources]}`);
  const hooks = deployed.objects.filter((o) => o.kind === 'MutatingWebhookConfiguration').flatMap((o) => o.webhooks);
  assert.ok(hooks.length > 0 && hooks.every((h: any) => h.failurePolicy === 'Ignore'), `failurePolicy Ignore: ${JSON.stringify(hooks.map((h: any) => h.failurePolicy))}`);
});

after(async () => {
  if (timings.length > 0) console.log(`# timings: ${timings.join('; ')}`);
  await tearDown({ cluster, tls, webhook, deployed, namespaces });
});

test(`OOM: the sidecar (stand-in ${OOM}, 256 MiB over the chart's 128Mi limit) is OOMKilled and restarted by the kubelet; the app keeps running, restartCount 0, the pod Running`, async (t) => {
  if (skip(t)) return;
  const ns = await createNamespace(cluster, 'e2e-nh-oom');
  namespaces.push(ns);
  await setupProtectedNamespace(cluster, ns, LICENSE);
  await restartWebhook(deployed!.env);

  let t0 = Date.now();
  await core().createNamespacedPod({ namespace: ns, body: pod('control', false) });
  const control = await waitUntil('pod control Running 1/1', 60_000, async () => {
    const p = (await podViews(ns, 'control'))[0];
    return p?.ready === '1/1' && p.status === 'Running' ? p : undefined;
  }, 250);
  console.log(`# control Running in ${Date.now() - t0} ms: ${show(control)}`);
  assert.equal(control.sidecar, undefined, 'unlabelled: no sidecar');
  assert.equal(control.restarts, '0');

  t0 = Date.now();
  await core().createNamespacedPod({ namespace: ns, body: pod('greedy', true) });
  const stored = await core().readNamespacedPod({ name: 'greedy', namespace: ns });
  const sidecarSpec = stored.spec?.initContainers?.find((c) => c.name === SIDECAR_NAME);
  assert.ok(sidecarSpec?.image?.endsWith(`sidecar-standin:${OOM}`), `injected with the ${OOM} stand-in: ${sidecarSpec?.image}`);
  assert.equal(sidecarSpec?.resources?.limits?.memory, '128Mi', 'the chart\'s sidecar memory limit');
  // Watched every 250 ms until the kubelet has restarted the sidecar twice and it runs again (the
  // stand-in allocates 2 s after it is ready; the first restart comes at once, the second after the
  // kubelet's 10 s back-off): each change of what `kubectl get pods` shows, the pod's Ready
  // condition, and at every look the app container (same ID, restartCount 0).
  const timeline: string[] = [];
  const after1stKill = new Set<string>();
  let app: { id: string; startedAt: string } | undefined;
  let appChanged = '';
  let notRunning = '';
  const killed = await waitUntil('the sidecar OOMKilled, restarted twice by the kubelet, running again', 60_000, async () => {
    const p = (await podViews(ns, 'greedy'))[0];
    if (!p) return undefined;
    const look = `${p.ready} ${p.status} RESTARTS ${p.restarts.split(' ')[0]} Ready=${p.podReady}`;
    if (timeline.at(-1)?.replace(/ @\d+ ms$/, '') !== look) timeline.push(`${look} @${Date.now() - t0} ms`);
    if (p.app?.state?.running) {
      app ??= { id: p.app.containerID, startedAt: p.app.state.running.startedAt };
      if (p.app.containerID !== app.id || p.app.restartCount !== 0) appChanged ||= `${show(p)} app ${JSON.stringify(p.app)}`;
      if (p.phase !== 'Running') notRunning ||= `${show(p)} phase ${p.phase}`;
    } else if (app) appChanged ||= `the app stopped: ${show(p)} app ${JSON.stringify(p.app)}`;
    if (p.sidecar?.lastState?.terminated?.reason === 'OOMKilled') after1stKill.add(`${p.ready} ${p.status}`);
    const again = p.sidecar?.restartCount >= 2 && p.sidecar.lastState?.terminated?.reason === 'OOMKilled' && p.sidecar.state?.running && p.ready === '2/2' && p.status === 'Running';
    return again ? p : undefined;
  }, 250);
  timings.push(`sidecar OOMKilled, restarted twice by the kubelet and running again ${Date.now() - t0} ms after the pod's creation`);
  console.log(`# ${timings.at(-1)}: ${show(killed)}; sidecar state ${JSON.stringify(killed.sidecar.state)}, last ${JSON.stringify({ ...killed.sidecar.lastState.terminated, message: undefined, containerID: undefined })}; app restartCount ${killed.app?.restartCount} started ${killed.app?.state?.running?.startedAt}`);
  console.log(`# kubectl get pods greedy, each change: ${timeline.join(' -> ')}`);
  assert.equal(killed.sidecar.lastState.terminated.exitCode, 137, 'killed by SIGKILL (128 + 9)');
  assert.equal(appChanged, '', 'the app container is never restarted or replaced');
  assert.equal(notRunning, '', 'the pod stays in phase Running');
  assert.ok(app && killed.app?.state?.running?.startedAt === app.startedAt, `the app runs, the same container since ${app?.startedAt}: ${JSON.stringify(killed.app)}`);
  // kubectl's STATUS (pkg/printers/internalversion/printers.go, printPod) shows the native sidecar's
  // state while it is not started: Init:OOMKilled once killed (the kubelet leaves it terminated
  // through most of the back-off), Init:CrashLoopBackOff for a moment before the restart, Running
  // again once it runs; READY drops to 1/2 and the pod is not Ready (the kubelet counts restartable
  // init containers in ContainersReady: pkg/kubelet/status/generate.go).
  const shown = [...after1stKill];
  assert.ok(shown.every((v) => /^[12]\/2 (Running|Init:OOMKilled|Init:CrashLoopBackOff)$/.test(v)), `after the first kill kubectl shows only those: ${shown.join(', ')}`);
  assert.ok(timeline.some((l) => l.startsWith('1/2 Init:OOMKilled') && l.includes('Ready=False')), 'kubectl shows the kill, and the pod is not Ready while its sidecar is down');
  assert.ok(shown.includes('2/2 Running'), `the sidecar runs again between kills: ${shown.join(', ')}`);
  const logs = kubectl('logs', '-n', ns, 'greedy', '-c', SIDECAR_NAME, '--previous');
  assert.match(logs, new RegExp(`version=${OOM.replaceAll('.', '\\.')} allocating and touching 256 MiB`), `the killed sidecar's log: ${logs}`);
  assert.doesNotMatch(logs, /holding 256 MiB/, 'it never held the 256 MiB');
  assert.deepEqual((await podViews(ns, 'control')).map((p) => [p.name, p.ready, p.status, p.restarts]), [['control', '1/1', 'Running', '0']], 'the control still runs, untouched');
});

test('heal on the node: webhook down, a labelled Deployment runs 1/1 without the sidecar; the webhook up with watchdog.heal=restart rolls it to pods Running 2/2, the old ones gone; the unlabelled control is never restarted', async (t) => {
  if (skip(t)) return;
  const ns = await createNamespace(cluster, 'e2e-nh-heal');
  namespaces.push(ns);
  await setupProtectedNamespace(cluster, ns, LICENSE);
  // The webhook down: nothing listens on the configured URL, failurePolicy Ignore stores the pods as they are.
  await webhook?.stop();
  webhook = undefined;

  let t0 = Date.now();
  await apps().createNamespacedDeployment({ namespace: ns, body: deployment('control', false) });
  await waitUntil('Deployment control READY 2/2', 90_000, async () => kubectl('get', 'deployment', 'control', '-n', ns, '--no-headers').trim().split(/\s+/)[1] === '2/2', 250);
  const controlPods = await podViews(ns, 'control');
  console.log(`# control READY 2/2 in ${Date.now() - t0} ms: ${controlPods.map(show).join('; ')}`);
  assert.deepEqual(controlPods.map((p) => [p.ready, p.status, p.restarts, p.sidecar]), [['1/1', 'Running', '0', undefined], ['1/1', 'Running', '0', undefined]]);

  t0 = Date.now();
  await apps().createNamespacedDeployment({ namespace: ns, body: deployment('web', true) });
  await waitUntil('Deployment web READY 2/2', 90_000, async () => kubectl('get', 'deployment', 'web', '-n', ns, '--no-headers').trim().split(/\s+/)[1] === '2/2', 250);
  const unprotected = await podViews(ns, 'web');
  console.log(`# labelled Deployment web READY 2/2 without the webhook in ${Date.now() - t0} ms: ${unprotected.map(show).join('; ')}`);
  assert.deepEqual(unprotected.map((p) => [p.ready, p.status, p.restarts, p.sidecar]), [['1/1', 'Running', '0', undefined], ['1/1', 'Running', '0', undefined]], 'labelled, but created while the webhook was down: no sidecar');

  // The operator's fix: the chart with the good sidecar and watchdog.heal=restart, then the webhook up.
  deployed = await deployProduct(cluster, { ...values, image: { repository: REPOSITORY, tag: GOOD_TAG }, extra: { watchdog: { heal: 'restart' } } });
  assert.equal(deployed.env[ENV.watchdogHeal], 'restart');
  const calledAt = Date.now();
  webhook = await startWebhook(tls, deployed.env, port);
  const upAt = Date.now();
  const oldNames = new Set(unprotected.map((p) => p.name));
  const healed = await waitUntil('Deployment web: 2 new pods Running 2/2 with the sidecar, the old ones gone', 120_000, async () => {
    const views = await podViews(ns, 'web');
    const done = views.length === 2 && views.every((p) => !oldNames.has(p.name) && !p.terminating && p.phase === 'Running' && p.ready === '2/2' && p.status === 'Running' && p.sidecar?.ready === true);
    return done ? views : undefined;
  }, 250);
  const healMs = Date.now() - upAt;
  timings.push(`heal: webhook ready ${upAt - calledAt} ms after its start; from ready to both new pods Running 2/2 and the old ones gone ${healMs} ms`);
  console.log(`# ${timings.at(-1)}: ${healed.map(show).join('; ')}`);
  for (const p of healed) {
    assert.equal(p.restarts, '0', `${p.name}: never restarted`);
    assert.ok(p.sidecar.image.endsWith(NODE_IMAGES.sidecar), `${p.name}: the chart's sidecar image: ${p.sidecar.image}`);
    assert.equal(p.sidecar.restartCount, 0);
  }
  const web = await apps().readNamespacedDeployment({ name: 'web', namespace: ns });
  assert.ok(web.spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION], 'restarted as kubectl rollout restart does');
  assert.equal(await webhook.metric('pandocore_watchdog_restarts_total', { kind: 'Deployment' }), 1, 'one restart');

  const control = await apps().readNamespacedDeployment({ name: 'control', namespace: ns });
  assert.equal(control.spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION], undefined, 'the control Deployment was never restarted');
  assert.deepEqual((await podViews(ns, 'control')).map((p) => [p.name, p.ready, p.status, p.restarts]), controlPods.map((p) => [p.name, '1/1', 'Running', '0']), 'the same control pods, untouched');
});
