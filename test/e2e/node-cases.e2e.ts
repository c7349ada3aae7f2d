// Issue 22, item 5: the cases operators of sidecar injectors report breaking pods, run on the e2e
// node (kubelet, containerd, runc; test/cluster/node.ts) with the sidecar stand-in
// (test/sidecar-standin) as sidecar.image: a CronJob's Job, the pod's own init container that needs
// the sidecar, Pod Security `restricted`, a LimitRange, and the license Secret missing with the
// namespace check on and off. Each case runs an unlabelled control first and asserts on what
// `kubectl get pods` shows (READY, STATUS, RESTARTS). Skipped, with the reason, without a node.
// node-pods.e2e.ts is the model (Deployment, Job); this file keeps the same shape.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ANNOTATION_STATUS, ENV, LABEL_PROTECT, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, SIDECAR_NAME } from '../../app/contract.ts';
import { parseQuantity } from '../../app/inject/quantity.ts';
import { BIN_DIR, type Cluster } from '../cluster/harness.ts';
import { NODE_IMAGES } from '../cluster/node.ts';
import { deployProduct, prepare, tearDown, type ChartValues, type Deployed } from './product.ts';
import { kubectlOn, nodeMissing, onTheNode, podRows, rowText, skipWithoutNode, type PodRow } from './node-support.ts';
import { createNamespace, runPando, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-node-cases';
const [SIDECAR_REPOSITORY, SIDECAR_TAG] = NODE_IMAGES.sidecar.split(':') as [string, string];
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
let webhook: WebhookProcess | undefined;
/** Why there is no node (undefined: there is one). */
let noNode: string | undefined;
const namespaces: string[] = [];
/** One namespace per case, set up with `pando setup-namespace` (restricted: Pod Security enforced). */
const ns = { cron: '', init: '', restricted: '', limits: '', license: '' };

const kubectl = (...args: string[]): string => kubectlOn(cluster, ...args);

/** `kubectl get pods -n NAMESPACE SELECT...`. */
const podRowsIn = (namespace: string, ...select: string[]): PodRow[] => podRows(cluster, namespace, ...select);

/**
 * Polls `kubectl get pod NAME` until `done(row)`, recording every STATUS it shows on the way
 * (kubectl's summary: Init:0/1, PodInitializing, Init:CreateContainerConfigError, ...).
 */
async function watchPod(namespace: string, name: string, what: string, done: (r: PodRow) => boolean, timeoutMs = 60_000): Promise<{ row: PodRow; seen: string[]; ms: number }> {
  const t0 = Date.now();
  const seen: string[] = [];
  const row = await waitUntil(`pod ${namespace}/${name} ${what}`, timeoutMs, async () => {
    const r = podRowsIn(namespace, name)[0]!;
    if (seen.at(-1) !== r.status) seen.push(r.status);
    return done(r) ? r : undefined;
  });
  const ms = Date.now() - t0;
  console.log(`# ${namespace}/${name}: ${rowText(row)} after ${ms} ms; STATUS seen: ${seen.join(' -> ')}`);
  return { row, seen, ms };
}

/** `kubectl create -f -`; returns what kubectl printed on stderr (admission warnings). */
function create(obj: object): string {
  const r = spawnSync(join(BIN_DIR, 'kubectl'), ['create', '-f', '-'], { input: JSON.stringify(obj), encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}

function pod(namespace: string, name: string, labelled: boolean, spec: Record<string, unknown>): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name, ...(labelled ? { [LABEL_PROTECT]: 'true' } : {}) } },
    spec: { ...onTheNode, terminationGracePeriodSeconds: 5, containers: [{ name: 'app', image: NODE_IMAGES.pause }], ...spec },
  };
}

const getPod = (namespace: string, name: string): any => JSON.parse(kubectl('get', 'pod', name, '-n', namespace, '-o', 'json'));
const sidecarStatus = (p: any): any => (p.status.initContainerStatuses ?? []).find((s: any) => s.name === SIDECAR_NAME);
const injected = (p: any): boolean => p.metadata.annotations?.[ANNOTATION_STATUS] === 'injected' && (p.spec.initContainers ?? []).some((c: any) => c.name === SIDECAR_NAME);

const skip = (t: TestContext): boolean => skipWithoutNode(t, noNode);

async function setUpNamespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const name = await createNamespace(cluster, prefix, labels);
  namespaces.push(name);
  const setup = await runPando(cluster.kubeconfigPath, ['setup-namespace', name]);
  assert.equal(setup.code, 0, setup.stderr + setup.stdout);
  return name;
}

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: SIDECAR_REPOSITORY, tag: SIDECAR_TAG } }));
  noNode = await nodeMissing(cluster);
  if (noNode) return;
  deployed = await deployProduct(cluster, values);
  webhook = await startWebhook(tls, deployed.env, port);
  [ns.cron, ns.init, ns.restricted, ns.limits, ns.license] = await Promise.all([
    setUpNamespace('e2e-node-cron'),
    setUpNamespace('e2e-node-init'),
    setUpNamespace('e2e-node-restricted', { 'pod-security.kubernetes.io/enforce': 'restricted' }),
    setUpNamespace('e2e-node-limits'),
    setUpNamespace('e2e-node-license'),
  ]);
});

after(() => tearDown({ cluster, tls, webhook, deployed, namespaces }));

test("a CronJob's Job (kubectl create job --from=cronjob/...) with the labelled template completes: the sidecar does not keep the pod alive", async (t) => {
  if (skip(t)) return;
  // Suspended, so the controller never starts a Job of its own during the test: the Jobs are the
  // ones a user triggers by hand with `kubectl create job --from=cronjob/NAME`.
  const cronJob = (name: string, labelled: boolean): object => ({
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name, namespace: ns.cron },
    spec: {
      schedule: '*/5 * * * *',
      suspend: true,
      jobTemplate: {
        spec: {
          backoffLimit: 0,
          template: {
            metadata: { labels: { app: name, ...(labelled ? { [LABEL_PROTECT]: 'true' } : {}) } },
            spec: { ...onTheNode, restartPolicy: 'Never', containers: [{ name: 'app', image: NODE_IMAGES.pause, args: ['2s'] }] },
          },
        },
      },
    },
  });
  const runOnce = async (name: string, labelled: boolean): Promise<{ job: string[]; rows: PodRow[]; ms: number }> => {
    create(cronJob(name, labelled));
    const t0 = Date.now();
    kubectl('create', 'job', `${name}-manual`, `--from=cronjob/${name}`, '-n', ns.cron);
    await waitUntil(`Job ${name}-manual Complete`, 90_000, async () => kubectl('get', 'job', `${name}-manual`, '-n', ns.cron, '--no-headers').trim().split(/\s+/)[1] === 'Complete', 500);
    const ms = Date.now() - t0;
    const job = kubectl('get', 'job', `${name}-manual`, '-n', ns.cron, '--no-headers').trim().split(/\s+/);
    const rows = podRowsIn(ns.cron, '-l', `app=${name}`);
    console.log(`# Job ${name}-manual ${job[1]} ${job[2]} in ${ms} ms; pod ${rows.map(rowText).join('; ')}`);
    return { job, rows, ms };
  };

  const control = await runOnce('tick-control', false);
  assert.deepEqual([control.job[1], control.job[2]], ['Complete', '1/1']);
  assert.deepEqual(control.rows.map((r) => [r.ready, r.status, r.restarts]), [['0/1', 'Completed', '0']]);

  const labelled = await runOnce('tick', true);
  assert.deepEqual([labelled.job[1], labelled.job[2]], ['Complete', '1/1']);
  assert.deepEqual(labelled.rows.map((r) => [r.ready, r.status, r.restarts]), [['0/2', 'Completed', '0']], 'app and native sidecar both stopped, the pod Succeeded');
  const p = getPod(ns.cron, labelled.rows[0]!.name);
  assert.ok(injected(p), 'the Job made from the CronJob got the sidecar');
  assert.equal(sidecarStatus(p)?.state?.terminated?.exitCode, 0, `the sidecar stopped on SIGTERM with exit 0: ${JSON.stringify(sidecarStatus(p)?.state)}`);
  console.log(`# CronJob Job: control Complete in ${control.ms} ms, labelled in ${labelled.ms} ms`);
});

test("the pod's own init container that waits for the sidecar's ready file completes; without the sidecar it fails", async (t) => {
  if (skip(t)) return;
  // The user's init container runs the stand-in's `wait`: it polls the ready file the sidecar writes
  // in /dev/shm. On this node (containerd 1.6) /dev/shm is the pod sandbox's, shared by all the
  // pod's containers, so the sidecar's file is seen without a volume (the labelled pod shows it).
  // The webhook puts the sidecar first in initContainers, so every init container of the pod runs
  // after it has started; but the injected sidecar has no startup probe, and the kubelet starts the
  // next init container once the sidecar's process runs (kuberuntime_container.go,
  // computeInitContainerActions), not once it is ready: an init container that needs it must wait.
  const waiter = { name: 'wait-for-sidecar', image: NODE_IMAGES.sidecar, command: ['/pando-sidecar', 'wait', '4s'] };

  create(pod(ns.init, 'control-init', false, { initContainers: [{ name: 'setup', image: NODE_IMAGES.pause, args: ['1s'] }] }));
  const control = await watchPod(ns.init, 'control-init', 'Running 1/1', (r) => r.status === 'Running' && r.ready === '1/1');
  assert.equal(control.row.restarts, '0');

  // Without the sidecar nothing writes the file: the waiter gives up, so it really needs the sidecar.
  create(pod(ns.init, 'control-waiter', false, { restartPolicy: 'Never', initContainers: [waiter] }));
  const failed = await watchPod(ns.init, 'control-waiter', 'Init:Error', (r) => r.status === 'Init:Error');
  assert.equal(failed.row.ready, '0/1');
  assert.match(kubectl('logs', '-n', ns.init, 'control-waiter', '-c', waiter.name), /no sidecar ready file .* after 4s; exiting 1/);

  create(pod(ns.init, 'waiter', true, { restartPolicy: 'Never', initContainers: [waiter] }));
  const ran = await watchPod(ns.init, 'waiter', 'Running 2/2', (r) => r.status === 'Running' && r.ready === '2/2');
  assert.equal(ran.row.restarts, '0');
  const p = getPod(ns.init, 'waiter');
  assert.deepEqual(p.spec.initContainers.map((c: any) => c.name), [SIDECAR_NAME, waiter.name], 'the webhook puts the native sidecar before the pod\'s own init containers');
  const own = p.status.initContainerStatuses.find((s: any) => s.name === waiter.name);
  assert.equal(own?.state?.terminated?.reason, 'Completed', JSON.stringify(own?.state));
  assert.ok(Date.parse(sidecarStatus(p).state.running.startedAt) <= Date.parse(own.state.terminated.startedAt), 'the sidecar started first');
  const log = kubectl('logs', '-n', ns.init, 'waiter', '-c', waiter.name).trim();
  console.log(`# waiter's init container: ${log}`);
  assert.match(log, /wait: the sidecar is ready \(\/dev\/shm\/pando-sidecar-ready\) after \d+ ms/);
});

test('Pod Security restricted enforced: a pod with its own runAsNonRoot and read-only root runs, with the sidecar 2/2', async (t) => {
  if (skip(t)) return;
  // The namespace really enforces: a pod that sets nothing is refused (server-side dry-run).
  const plain = spawnSync(join(BIN_DIR, 'kubectl'), ['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod(ns.restricted, 'plain', false, {})), encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 60_000 });
  assert.notEqual(plain.status, 0, 'a pod without a securityContext must be refused');
  assert.match(plain.stderr, /forbidden: violates PodSecurity "restricted:latest"/);
  console.log(`# restricted namespace refuses a plain pod: ${plain.stderr.trim().slice(0, 160)}...`);

  const hardened = {
    securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [{ name: 'app', image: NODE_IMAGES.pause, securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } } }],
  };
  create(pod(ns.restricted, 'control', false, hardened));
  const control = await watchPod(ns.restricted, 'control', 'Running 1/1', (r) => r.status === 'Running' && r.ready === '1/1');
  assert.equal(control.row.restarts, '0');

  const warnings = create(pod(ns.restricted, 'protected', true, hardened));
  assert.doesNotMatch(warnings, /PodSecurity|not injected/, warnings);
  const ran = await watchPod(ns.restricted, 'protected', 'Running 2/2', (r) => r.status === 'Running' && r.ready === '2/2');
  assert.equal(ran.row.restarts, '0');
  const p = getPod(ns.restricted, 'protected');
  assert.ok(injected(p));
  assert.match(kubectl('logs', '-n', ns.restricted, 'protected', '-c', SIDECAR_NAME), /uid=65532/);
});

test('LimitRange (Container default and max, Pod max): the injected pod runs inside the limits, 2/2', async (t) => {
  if (skip(t)) return;
  // Container max below the sidecar's default limits (200m, 128Mi) but above its requests: the
  // webhook lowers the sidecar's limits to the max; the app gets the Container defaults.
  const containerMax = { cpu: '150m', memory: '96Mi' };
  const podMax = { cpu: '400m', memory: '256Mi' };
  create({
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: { name: 'limits', namespace: ns.limits },
    spec: {
      limits: [
        { type: 'Container', max: containerMax, default: { cpu: '100m', memory: '64Mi' }, defaultRequest: { cpu: '50m', memory: '32Mi' } },
        { type: 'Pod', max: podMax },
      ],
    },
  });

  create(pod(ns.limits, 'control', false, {}));
  const control = await watchPod(ns.limits, 'control', 'Running 1/1', (r) => r.status === 'Running' && r.ready === '1/1');
  assert.equal(control.row.restarts, '0');

  const warnings = create(pod(ns.limits, 'protected', true, {}));
  console.log(`# kubectl create said: ${warnings.trim().replace(/\n/g, ' | ')}`);
  const ran = await watchPod(ns.limits, 'protected', 'Running 2/2', (r) => r.status === 'Running' && r.ready === '2/2');
  assert.equal(ran.row.restarts, '0');
  const p = getPod(ns.limits, 'protected');
  assert.ok(injected(p));
  const sidecar = p.spec.initContainers.find((c: any) => c.name === SIDECAR_NAME);
  console.log(`# the sidecar's resources as stored: ${JSON.stringify(sidecar.resources)}; the app's: ${JSON.stringify(p.spec.containers[0].resources)}`);
  for (const r of ['cpu', 'memory'] as const) {
    const max = parseQuantity(containerMax[r]);
    assert.ok(parseQuantity(sidecar.resources.limits[r]) <= max, `sidecar limit ${r} ${sidecar.resources.limits[r]} <= Container max ${containerMax[r]}`);
    assert.ok(parseQuantity(sidecar.resources.requests[r]) <= parseQuantity(sidecar.resources.limits[r]), `sidecar request ${r} <= its limit`);
    const total = [sidecar, ...p.spec.containers].reduce((sum: number, c: any) => sum + parseQuantity(c.resources.limits[r]), 0);
    assert.ok(total <= parseQuantity(podMax[r]), `pod limits ${r} ${total} <= Pod max ${podMax[r]}`);
  }
});

test('license Secret missing: with the namespace check (default) the pod is skipped and runs 1/1; with namespaceCheck false the sidecar cannot start', async (t) => {
  if (skip(t)) return;
  kubectl('delete', 'secret', LICENSE_SECRET_NAME, '-n', ns.license);

  create(pod(ns.license, 'control', false, {}));
  const control = await watchPod(ns.license, 'control', 'Running 1/1', (r) => r.status === 'Running' && r.ready === '1/1');
  assert.equal(control.row.restarts, '0');

  const warnings = create(pod(ns.license, 'skipped', true, {}));
  console.log(`# kubectl create said: ${warnings.trim().replace(/\n/g, ' | ')}`);
  assert.match(warnings, new RegExp(`sidecar not injected: namespace ${ns.license} is not set up`));
  assert.match(warnings, /Secret pando-license/);
  const skipped = await watchPod(ns.license, 'skipped', 'Running 1/1', (r) => r.status === 'Running' && r.ready === '1/1');
  assert.equal(skipped.row.restarts, '0');
  assert.equal(injected(getPod(ns.license, 'skipped')), false, 'no sidecar, no injected annotation');

  // The chart with namespaceCheck: false, and the webhook restarted with the env it renders.
  deployed = await deployProduct(cluster, { ...values, extra: { namespaceCheck: false } });
  assert.equal(deployed.env[ENV.namespaceCheck], 'false');
  await webhook?.stop();
  webhook = await startWebhook(tls, deployed.env, port);

  create(pod(ns.license, 'control-2', false, {}));
  await watchPod(ns.license, 'control-2', 'Running 1/1', (r) => r.status === 'Running' && r.ready === '1/1');
  const warned = create(pod(ns.license, 'broken', true, {}));
  assert.doesNotMatch(warned, /not injected/, warned);
  assert.ok(injected(getPod(ns.license, 'broken')), 'with the check off the pod is injected');
  // The sidecar's PANDO_LICENSE_KEY comes from the missing Secret: the kubelet cannot make its env.
  const broken = await watchPod(ns.license, 'broken', 'Init:CreateContainerConfigError', (r) => r.status === 'Init:CreateContainerConfigError', 30_000);
  assert.equal(broken.row.ready, '0/2');
  let p = getPod(ns.license, 'broken');
  console.log(`# broken: sidecar ${JSON.stringify(sidecarStatus(p).state)}; app ${JSON.stringify(p.status.containerStatuses?.[0]?.state)}`);
  assert.match(sidecarStatus(p).state.waiting.message, /secret "pando-license" not found/);
  assert.ok(!p.status.containerStatuses?.[0]?.state?.running, 'the app never starts');

  // A Secret whose key is empty: now the stand-in itself starts, logs why and exits 1. It counted as
  // started while its process ran (no startup probe), so the kubelet started the app: the app runs
  // without a working sidecar, and kubectl's STATUS alternates between Running (2/2) and Init:Error
  // (1/2) as the kubelet restarts the sidecar with back-off.
  create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: LICENSE_SECRET_NAME, namespace: ns.license }, type: 'Opaque', stringData: { [LICENSE_SECRET_KEY]: '' } });
  const crashing = await watchPod(ns.license, 'broken', 'Init:Error after a restart', (r) => r.status === 'Init:Error' && Number(r.restarts) >= 1, 90_000);
  assert.equal(crashing.row.ready, '1/2', 'the app ready, the sidecar not');
  p = getPod(ns.license, 'broken');
  const sidecar = sidecarStatus(p);
  const app = p.status.containerStatuses.find((c: any) => c.name === 'app');
  console.log(`# broken: sidecar restartCount ${sidecar.restartCount}, last exit ${JSON.stringify(sidecar.state.terminated ?? sidecar.lastState.terminated)}; app ${JSON.stringify(app.state)} restartCount ${app.restartCount}`);
  assert.equal((sidecar.state.terminated ?? sidecar.lastState.terminated)?.exitCode, 1);
  assert.ok(app.state.running, 'the app started once the sidecar had run, and keeps running');
  assert.equal(app.restartCount, 0);
  const logs = kubectl('logs', '-n', ns.license, 'broken', '-c', SIDECAR_NAME, ...(sidecar.state.terminated ? [] : ['--previous'])).trim();
  console.log(`# kubectl logs broken -c ${SIDECAR_NAME}: ${logs}`);
  assert.match(logs, /PANDO_LICENSE_KEY is missing or empty: the license Secret \(pando-license, key license-key\) must be readable; exiting 1/);
  assert.ok(!logs.includes(LICENSE), 'the key is never printed');
});
