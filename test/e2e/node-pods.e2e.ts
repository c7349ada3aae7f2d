// Issue 22, first slice: pods RUN on the e2e node (kubelet, containerd, runc; test/cluster/node.ts),
// with the sidecar stand-in (test/sidecar-standin) as sidecar.image. Admission alone is proven
// elsewhere; here the kubelet starts what the webhook stored. Each case runs an unlabelled control
// first, and asserts on what `kubectl get pods` shows. Skipped, with the reason, without a node
// (not root, no containerd, PANDO_NODE=0).
//
// Only pods that name the node's scheduler and tolerate its taint run there: every other e2e keeps
// its Pending pods.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ANNOTATION_MODE, LABEL_PROTECT, SIDECAR_NAME } from '../../app/contract.ts';
import { BIN_DIR, type Cluster } from '../cluster/harness.ts';
import { NODE_IMAGES } from '../cluster/node.ts';
import { deployProduct, prepare, tearDown, type ChartValues, type Deployed } from './product.ts';
import { kubectlOn, nodeDeployment, nodeMissing, onTheNode, podRows, skipWithoutNode, type PodRow } from './node-support.ts';
import { createNamespace, runPando, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-node-pods';
const [SIDECAR_REPOSITORY, SIDECAR_TAG] = NODE_IMAGES.sidecar.split(':') as [string, string];
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
let webhook: WebhookProcess | undefined;
let ns: string;
/** Why there is no node (undefined: there is one). */
let noNode: string | undefined;
const namespaces: string[] = [];

const kubectl = (...args: string[]): string => kubectlOn(cluster, ...args);

/** `kubectl get pods -l SELECTOR` in this file's namespace. */
const podRowsOf = (selector: string): PodRow[] => podRows(cluster, ns, '-l', selector);


const deployment = (name: string, labelled: boolean) =>
  nodeDeployment(name, { labelled, replicas: 2, namespace: ns, ...(labelled ? { annotations: { [ANNOTATION_MODE]: 'enforce' } } : {}) });

function apply(obj: object): void {
  const r = spawnSync(join(BIN_DIR, 'kubectl'), ['apply', '-f', '-'], { input: JSON.stringify(obj), encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
}

const skip = (t: TestContext): boolean => skipWithoutNode(t, noNode);

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: SIDECAR_REPOSITORY, tag: SIDECAR_TAG } }));
  noNode = await nodeMissing(cluster);
  if (noNode) return;
  deployed = await deployProduct(cluster, values);
  webhook = await startWebhook(tls, deployed.env, port);
  ns = await createNamespace(cluster, 'e2e-node');
  namespaces.push(ns);
  const setup = await runPando(cluster.kubeconfigPath, ['setup-namespace', ns]);
  assert.equal(setup.code, 0, setup.stderr + setup.stdout);
});

after(() => tearDown({ cluster, tls, webhook, deployed, namespaces }));

test('control: an unlabelled Deployment on the node reaches READY 2/2, its pods Running 1/1', async (t) => {
  if (skip(t)) return;
  const t0 = Date.now();
  apply(deployment('control', false));
  await waitUntil('Deployment control READY 2/2', 90_000, async () => kubectl('get', 'deployment', 'control', '-n', ns, '--no-headers').trim().split(/\s+/)[1] === '2/2', 500);
  const rows = podRowsOf('app=control');
  console.log(`# control READY 2/2 in ${Date.now() - t0} ms: ${rows.map((r) => `${r.name} ${r.ready} ${r.status} ${r.restarts}`).join('; ')}`);
  assert.deepEqual(rows.map((r) => [r.ready, r.status, r.restarts]), [['1/1', 'Running', '0'], ['1/1', 'Running', '0']]);
});

test('a labelled Deployment runs with the native sidecar: Running, 2/2, restarts 0, sidecar started first, its log shows the mode', async (t) => {
  if (skip(t)) return;
  const t0 = Date.now();
  apply(deployment('protected', true));
  await waitUntil('Deployment protected READY 2/2', 90_000, async () => kubectl('get', 'deployment', 'protected', '-n', ns, '--no-headers').trim().split(/\s+/)[1] === '2/2', 500);
  const rows = podRowsOf('app=protected');
  console.log(`# protected READY 2/2 in ${Date.now() - t0} ms: ${rows.map((r) => `${r.name} ${r.ready} ${r.status} ${r.restarts}`).join('; ')}`);
  assert.deepEqual(rows.map((r) => [r.ready, r.status, r.restarts]), [['2/2', 'Running', '0'], ['2/2', 'Running', '0']], 'app + native sidecar, both ready, never restarted');
  const pods = JSON.parse(kubectl('get', 'pods', '-n', ns, '-l', 'app=protected', '-o', 'json')).items as any[];
  for (const pod of pods) {
    const sidecar = (pod.status.initContainerStatuses ?? []).find((s: any) => s.name === SIDECAR_NAME);
    const app = pod.status.containerStatuses.find((s: any) => s.name === 'app');
    assert.ok(sidecar?.state?.running, `${pod.metadata.name}: the sidecar is a running init container (native): ${JSON.stringify(sidecar)}`);
    assert.equal(sidecar.image.endsWith(NODE_IMAGES.sidecar), true, `the stand-in image: ${sidecar.image}`);
    const [s, a] = [Date.parse(sidecar.state.running.startedAt), Date.parse(app.state.running.startedAt)];
    console.log(`# ${pod.metadata.name}: sidecar started ${sidecar.state.running.startedAt}, app ${app.state.running.startedAt}`);
    assert.ok(s <= a, `${pod.metadata.name}: the sidecar started (${sidecar.state.running.startedAt}) not after the app (${app.state.running.startedAt})`);
    const logs = kubectl('logs', '-n', ns, pod.metadata.name, '-c', SIDECAR_NAME);
    assert.match(logs, /mode=enforce uid=65532/, `the sidecar logs the pod's mode and runs as 65532: ${logs}`);
    assert.ok(!logs.includes(LICENSE), 'the license key is never printed');
  }
});

test('a Job with the labelled pod template completes: the native sidecar does not keep it alive', async (t) => {
  if (skip(t)) return;
  const t0 = Date.now();
  apply({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'once', namespace: ns },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { labels: { app: 'once', [LABEL_PROTECT]: 'true' } },
        spec: { ...onTheNode, restartPolicy: 'Never', containers: [{ name: 'app', image: NODE_IMAGES.pause, args: ['3s'] }] },
      },
    },
  });
  await waitUntil('Job once Complete', 90_000, async () => kubectl('get', 'job', 'once', '-n', ns, '--no-headers').trim().split(/\s+/)[1] === 'Complete', 500);
  const job = kubectl('get', 'job', 'once', '-n', ns, '--no-headers').trim().split(/\s+/);
  const rows = podRowsOf('app=once');
  console.log(`# Job once ${job[1]} ${job[2]} in ${Date.now() - t0} ms; pod ${rows.map((r) => `${r.name} ${r.ready} ${r.status} ${r.restarts}`).join('; ')}`);
  assert.deepEqual([job[1], job[2]], ['Complete', '1/1']);
  assert.deepEqual(rows.map((r) => [r.ready, r.status]), [['0/2', 'Completed']], 'both containers stopped, the pod Succeeded');
  const pod = JSON.parse(kubectl('get', 'pods', '-n', ns, '-l', 'app=once', '-o', 'json')).items[0];
  const sidecar = (pod.status.initContainerStatuses ?? []).find((s: any) => s.name === SIDECAR_NAME);
  assert.equal(sidecar?.state?.terminated?.exitCode, 0, `the sidecar stopped on SIGTERM with exit 0: ${JSON.stringify(sidecar?.state)}`);
});
