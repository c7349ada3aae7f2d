// Issue 22: the opt-in sidecar.startupProbe, on the e2e node (kubelet v1.37.2, containerd, runc;
// test/cluster/node.ts) with the sidecar stand-in (test/sidecar-standin). Without a startup probe
// the kubelet counts a native sidecar as started once its process runs and starts the app then
// (kuberuntime_container.go, computeInitContainerActions); with one it waits for the probe's first
// success. Controls first, without the value: the slow stand-in (ready 3 s after it starts) and
// the app starting before it is ready; the crashing stand-in and the app starting anyway. Then the
// same with the probe: the app starts only once the sidecar is ready, and never beside a sidecar
// that crashes. Each chart change is a `helm upgrade` whose rendered env the local webhook is
// restarted with (as node-cases.e2e.ts does). Skipped, with the reason, without a node.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ANNOTATION_STATUS, ENV, LABEL_PROTECT, SIDECAR_NAME } from '../../app/contract.ts';
import { BIN_DIR, type Cluster } from '../cluster/harness.ts';
import { NODE_IMAGES, STANDIN_VERSIONS } from '../cluster/node.ts';
import { deployProduct, prepare, tearDown, type ChartValues, type Deployed } from './product.ts';
import { kubectlOn, nodeMissing, onTheNode } from './node-support.ts';
import { createNamespace, runPando, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-node-startup-probe';
const REPOSITORY = NODE_IMAGES.sidecar.split(':')[0]!;
/** What the README suggests for the stand-in: its own `probe` checks the ready file, every second, for 30 s. */
const PROBE = { exec: { command: ['/pando-sidecar', 'probe'] }, periodSeconds: 1, failureThreshold: 30 };
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
let webhook: WebhookProcess | undefined;
/** Why there is no node (undefined: there is one). */
let noNode: string | undefined;
const namespaces: string[] = [];
/** Plain namespace, and one with Pod Security restricted enforced (a probe must be allowed there). */
const ns = { plain: '', restricted: '' };

const kubectl = (...args: string[]): string => kubectlOn(cluster, ...args);

interface PodRow {
  name: string;
  ready: string;
  status: string;
  restarts: string;
}

function podRow(namespace: string, name: string): PodRow {
  const [n, ready, status, restarts] = kubectl('get', 'pod', name, '-n', namespace, '--no-headers').trim().split(/\s+/) as [string, string, string, string];
  return { name: n, ready, status, restarts };
}

function create(obj: object): string {
  const r = spawnSync(join(BIN_DIR, 'kubectl'), ['create', '-f', '-'], { input: JSON.stringify(obj), encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}

const HARDENED = {
  securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
  containers: [{ name: 'app', image: NODE_IMAGES.pause, securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } } }],
};

function pod(namespace: string, name: string, labelled: boolean): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name, ...(labelled ? { [LABEL_PROTECT]: 'true' } : {}) } },
    spec: { ...onTheNode, terminationGracePeriodSeconds: 5, ...HARDENED },
  };
}

async function getPod(namespace: string, name: string): Promise<any> {
  const r = await cluster.request('GET', `/api/v1/namespaces/${namespace}/pods/${name}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}
const sidecarOf = (p: any): any => (p.status?.initContainerStatuses ?? []).find((s: any) => s.name === SIDECAR_NAME);
const appOf = (p: any): any => (p.status?.containerStatuses ?? []).find((s: any) => s.name === 'app');

interface Timeline {
  /** When (ms, this clock, polling every 100 ms) the sidecar's `started` was first seen true. */
  sidecarStartedSeen?: number;
  /** When the app was first seen running. */
  appRunningSeen?: number;
  /** Snapshots that showed the app running while the sidecar had not started (or was not ready). */
  appBeforeSidecarStarted: number;
  appBeforeSidecarReady: number;
  /** When kubectl first showed the pod Running with every container ready (2/2). */
  allReadySeen?: number;
  /** kubectl's STATUS column, each change. */
  statuses: string[];
  last: any;
  row: PodRow;
}

/** Polls the pod (JSON every 100 ms, kubectl's row every 500 ms) for `ms` or until `done`. */
async function watch(namespace: string, name: string, ms: number, done: (p: any, row: PodRow) => boolean): Promise<Timeline> {
  const t: Timeline = { appBeforeSidecarStarted: 0, appBeforeSidecarReady: 0, statuses: [], last: undefined, row: { name, ready: '', status: '', restarts: '' } };
  const deadline = Date.now() + ms;
  let lastRow = 0;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    // kubectl's row first, then the JSON: the JSON a check reads is never older than the row.
    if (Date.now() - lastRow >= 500) {
      lastRow = Date.now();
      t.row = podRow(namespace, name);
      if (t.statuses.at(-1) !== t.row.status) t.statuses.push(t.row.status);
      const [ready, all] = t.row.ready.split('/');
      if (t.allReadySeen === undefined && t.row.status === 'Running' && ready === all) t.allReadySeen = Date.now();
    }
    const p = await getPod(namespace, name);
    const now = Date.now();
    const sidecar = sidecarOf(p);
    const app = appOf(p);
    if (sidecar?.started === true && t.sidecarStartedSeen === undefined) t.sidecarStartedSeen = now;
    if (app?.state?.running) {
      t.appRunningSeen ??= now;
      if (sidecar?.started !== true) t.appBeforeSidecarStarted++;
      if (sidecar?.ready !== true) t.appBeforeSidecarReady++;
    }
    t.last = p;
    if (done(p, t.row)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return t;
}

/** The time (ms) the stand-in logged `ready (...)`, from the container runtime's log timestamps (waits for the line). */
async function readyLoggedAt(namespace: string, name: string): Promise<number> {
  let log = '';
  const line = await waitUntil(`${name}'s sidecar logs ready`, 15_000, async () => {
    log = kubectl('logs', '-n', namespace, name, '-c', SIDECAR_NAME, '--timestamps').trim();
    return log.split('\n').find((l) => / pando-sidecar: ready \(/.test(l));
  }).catch((err: Error) => assert.fail(`${err.message}: ${log}`));
  return Date.parse(line.split(' ')[0]!);
}

/** `helm upgrade` with the stand-in's `version` as sidecar image and the probe (or none); the webhook restarted with the env it renders. */
async function useChart(version: string, startupProbe?: object): Promise<void> {
  deployed = await deployProduct(cluster, { ...values, image: { repository: REPOSITORY, tag: version }, extra: { sidecar: { image: { repository: REPOSITORY, tag: version }, ...(startupProbe ? { startupProbe } : {}) } } });
  assert.equal(deployed.env[ENV.sidecarVersion], version);
  if (startupProbe) assert.deepEqual(JSON.parse(deployed.env[ENV.sidecarStartupProbe] ?? '{}'), startupProbe, 'the chart passes the probe to the webhook');
  else assert.equal(deployed.env[ENV.sidecarStartupProbe], undefined, 'without the value the chart sets no probe');
  await webhook?.stop();
  webhook = await startWebhook(tls, deployed.env, port);
}

function skipWithoutNode(t: TestContext): boolean {
  if (noNode) t.skip(`no node: ${noNode}`);
  return noNode !== undefined;
}

async function setUpNamespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const name = await createNamespace(cluster, prefix, labels);
  namespaces.push(name);
  const setup = await runPando(cluster.kubeconfigPath, ['setup-namespace', name]);
  assert.equal(setup.code, 0, setup.stderr + setup.stdout);
  return name;
}

const iso = (ms: number | undefined): string => (ms === undefined ? 'never' : new Date(ms).toISOString());
const second = (ms: number): number => Math.floor(ms / 1000) * 1000;

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: REPOSITORY, tag: STANDIN_VERSIONS.slow } }));
  noNode = await nodeMissing(cluster);
  if (noNode) return;
  // First the chart (setup-namespace copies its license Secret), without the probe.
  await useChart(STANDIN_VERSIONS.slow);
  [ns.plain, ns.restricted] = await Promise.all([setUpNamespace('e2e-probe'), setUpNamespace('e2e-probe-restricted', { 'pod-security.kubernetes.io/enforce': 'restricted' })]);
});

after(() => tearDown({ cluster, tls, webhook, deployed, namespaces }));

test('control, no startup probe: the app starts while the slow sidecar is not ready yet', async (t) => {
  if (skipWithoutNode(t)) return;
  create(pod(ns.plain, 'control', false));
  const control = await watch(ns.plain, 'control', 60_000, (_p, r) => r.status === 'Running' && r.ready === '1/1');
  assert.deepEqual([control.row.ready, control.row.status], ['1/1', 'Running'], 'the unlabelled control runs');

  create(pod(ns.plain, 'unprobed', true));
  const w = await watch(ns.plain, 'unprobed', 60_000, (_p, r) => r.status === 'Running' && r.ready === '2/2');
  assert.deepEqual([w.row.ready, w.row.status, w.row.restarts], ['2/2', 'Running', '0']);
  const p = await getPod(ns.plain, 'unprobed');
  assert.equal(p.metadata.annotations?.[ANNOTATION_STATUS], 'injected');
  assert.equal(p.spec.initContainers[0].startupProbe, undefined, 'no probe injected');
  const app = Date.parse(appOf(p).state.running.startedAt);
  const ready = { at: await readyLoggedAt(ns.plain, 'unprobed') };
  console.log(`# no probe: sidecar started ${sidecarOf(p).state.running.startedAt}, started=true seen ${iso(w.sidecarStartedSeen)}, app started ${appOf(p).state.running.startedAt} (seen running ${iso(w.appRunningSeen)}), kubectl Running 2/2 seen ${iso(w.allReadySeen)}, sidecar logged ready ${iso(ready.at)}; STATUS ${w.statuses.join(' -> ')}`);
  // startedAt has whole seconds: an earlier second than the ready line is a start before it.
  assert.ok(app < second(ready.at), `the app started (${appOf(p).state.running.startedAt}) before the sidecar was ready (${iso(ready.at)})`);
  // Without a readiness probe the kubelet reports a started sidecar Ready: kubectl says 2/2 too early.
  assert.ok(w.allReadySeen !== undefined && w.allReadySeen < ready.at, `kubectl showed Running 2/2 (${iso(w.allReadySeen)}) before the sidecar was ready (${iso(ready.at)})`);
});

test('control, no startup probe: with the crashing sidecar version the app starts anyway', async (t) => {
  if (skipWithoutNode(t)) return;
  await useChart(STANDIN_VERSIONS.crash);
  create(pod(ns.plain, 'crash-unprobed', true));
  const w = await watch(ns.plain, 'crash-unprobed', 60_000, (p) => appOf(p)?.state?.running !== undefined && sidecarOf(p)?.restartCount >= 1);
  const sidecar = sidecarOf(w.last);
  console.log(`# no probe, crashing sidecar: ${w.row.ready} ${w.row.status} restarts ${w.row.restarts}; app ${JSON.stringify(appOf(w.last)?.state)}; sidecar restartCount ${sidecar?.restartCount}; STATUS ${w.statuses.join(' -> ')}`);
  assert.ok(appOf(w.last)?.state?.running, 'the app runs without a working sidecar');
  assert.ok(sidecar.restartCount >= 1, 'the sidecar keeps crashing');
});

test('startup probe set: the app starts only once the slow sidecar is ready (Pod Security restricted allows the probe)', async (t) => {
  if (skipWithoutNode(t)) return;
  await useChart(STANDIN_VERSIONS.slow, PROBE);
  const warnings = create(pod(ns.restricted, 'probed', true));
  assert.doesNotMatch(warnings, /PodSecurity|not injected/, warnings);
  const w = await watch(ns.restricted, 'probed', 60_000, (_p, r) => r.status === 'Running' && r.ready === '2/2');
  assert.deepEqual([w.row.ready, w.row.status, w.row.restarts], ['2/2', 'Running', '0']);
  const p = await getPod(ns.restricted, 'probed');
  const stored = p.spec.initContainers[0];
  assert.equal(stored.name, SIDECAR_NAME);
  console.log(`# the sidecar's startupProbe as stored: ${JSON.stringify(stored.startupProbe)}`);
  assert.deepEqual(stored.startupProbe.exec, PROBE.exec);
  assert.equal(stored.startupProbe.periodSeconds, 1);
  assert.equal(stored.startupProbe.failureThreshold, 30);
  const app = Date.parse(appOf(p).state.running.startedAt);
  const ready = { at: await readyLoggedAt(ns.restricted, 'probed') };
  const initialized = p.status.conditions.find((c: any) => c.type === 'Initialized');
  console.log(`# probe: sidecar started ${sidecarOf(p).state.running.startedAt}, logged ready ${iso(ready.at)}, started=true seen ${iso(w.sidecarStartedSeen)}, Initialized ${initialized?.lastTransitionTime}, app started ${appOf(p).state.running.startedAt} (seen running ${iso(w.appRunningSeen)}), kubectl Running 2/2 seen ${iso(w.allReadySeen)}; STATUS ${w.statuses.join(' -> ')}`);
  assert.ok(w.allReadySeen !== undefined && w.allReadySeen >= ready.at, 'kubectl showed Running 2/2 only once the sidecar was ready');
  assert.equal(w.appBeforeSidecarStarted, 0, 'no snapshot showed the app running before the sidecar had started (passed its probe)');
  assert.ok(w.sidecarStartedSeen !== undefined && w.appRunningSeen !== undefined && w.appRunningSeen >= w.sidecarStartedSeen, 'started=true seen first');
  assert.ok(app >= second(ready.at), `the app started (${appOf(p).state.running.startedAt}) not before the sidecar was ready (${iso(ready.at)})`);
  assert.ok(app >= second(w.sidecarStartedSeen! - 1000), 'and not before started=true (to the second and the 100 ms poll)');
});

test('startup probe set: with the crashing sidecar version the app never starts', async (t) => {
  if (skipWithoutNode(t)) return;
  await useChart(STANDIN_VERSIONS.crash, PROBE);
  create(pod(ns.plain, 'crash-probed', true));
  // Long enough for the control above to have started its app many times over (it did within seconds).
  const w = await watch(ns.plain, 'crash-probed', 30_000, () => false);
  const sidecar = sidecarOf(w.last);
  const app = appOf(w.last);
  console.log(`# probe, crashing sidecar after 30 s: ${w.row.ready} ${w.row.status} restarts ${w.row.restarts}; app ${JSON.stringify(app?.state)}; sidecar restartCount ${sidecar?.restartCount} ${JSON.stringify(sidecar?.state)}; STATUS ${w.statuses.join(' -> ')}`);
  assert.equal(w.appRunningSeen, undefined, 'the app never ran');
  assert.ok(!app?.state?.running && !app?.state?.terminated, `the app is still waiting: ${JSON.stringify(app?.state)}`);
  assert.ok(sidecar.restartCount >= 1, 'the kubelet keeps restarting the sidecar');
  assert.equal(w.row.ready, '0/2');
  assert.match(w.row.status, /^Init:/, 'kubectl shows the pod still initializing');
});
