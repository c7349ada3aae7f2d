// Issue 22 items 2 and 5 ("sidecar image behind registry auth") on the e2e node: the sidecar image
// is in a registry that requires authentication (pando-private.test, htpasswd;
// test/cluster/node-registry.ts), the chart names it with sidecar.image.registry and
// sidecar.imagePullSecrets, and containerd really pulls it with the kubelet's credentials.
//   - control: unlabelled pods with that image: without a pull Secret the registry refuses the pull
//     (401, ErrImagePull/ImagePullBackOff), with one the pod runs. That is what proves the auth real.
//   - labelled pod in a namespace `pando setup-namespace` set up (it copies the pull Secret from the
//     release namespace): injected, Running 2/2, the sidecar pulled with the Secret.
//   - labelled pod in a namespace without the pull Secret: not injected (namespace-not-ready, with
//     the warnings kubectl shows), Running 1/1, never ErrImagePull or ImagePullBackOff.
// Skipped, with the reason, without a node (not root, no containerd, PANDO_NODE=0).
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ANNOTATION_STATUS, LABEL_PROTECT, SIDECAR_NAME } from '../../app/contract.ts';
import { BIN_DIR, REPO_ROOT, type Cluster } from '../cluster/harness.ts';
import { NODE_IMAGES } from '../cluster/node.ts';
import { NODE_PRIVATE_IMAGES, PRIVATE_REGISTRY_HOST, privateRegistryCredentials } from '../cluster/node-registry.ts';
import { deployProduct, prepare, RELEASE_NAMESPACE, setupProtectedNamespace, tearDown, type ChartValues, type Deployed } from './product.ts';
import { kubectlOn, nodeMissing, onTheNode, podRows, skipWithoutNode } from './node-support.ts';
import { createNamespace, runPando, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-node-registry';
const PULL_SECRET = 'pando-private-pull';
const PRIVATE_IMAGE = NODE_PRIVATE_IMAGES.sidecar;
const [PRIVATE_REPOSITORY, PRIVATE_TAG] = PRIVATE_IMAGE.slice(PRIVATE_REGISTRY_HOST.length + 1).split(':') as [string, string];
const PULL_FAILED = ['ErrImagePull', 'ImagePullBackOff'];
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
let webhook: WebhookProcess | undefined;
let noNode: string | undefined;
const namespaces: string[] = [];

const kubectl = (...args: string[]): string => kubectlOn(cluster, ...args);

/** `kubectl create -f -` of OBJ; returns the warnings kubectl prints (stderr "Warning: ..."). */
function create(obj: object): string[] {
  const r = spawnSync(join(BIN_DIR, 'kubectl'), ['create', '-f', '-'], { input: JSON.stringify(obj), encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr.split('\n').filter((l) => l.startsWith('Warning: ')).map((l) => l.slice('Warning: '.length));
}

/** A docker-registry Secret for the private registry, as `kubectl create secret docker-registry` writes it. */
function pullSecret(namespace: string): object {
  const { username, password } = privateRegistryCredentials(REPO_ROOT);
  const auth = Buffer.from(`${username}:${password}`).toString('base64');
  const config = { auths: { [PRIVATE_REGISTRY_HOST]: { username, password, auth } } };
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name: PULL_SECRET, namespace }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64') } };
}

function pod(namespace: string, name: string, o: { image?: string; labelled?: boolean; pullSecret?: boolean } = {}): object {
  const image = o.image ?? NODE_IMAGES.pause;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, ...(o.labelled ? { labels: { [LABEL_PROTECT]: 'true' } } : {}) },
    spec: {
      ...onTheNode,
      terminationGracePeriodSeconds: 2,
      ...(o.pullSecret ? { imagePullSecrets: [{ name: PULL_SECRET }] } : {}),
      containers: [{
        name: 'app',
        image,
        // A pull at every start: the registry, not a cached image, answers.
        imagePullPolicy: 'Always',
        // The stand-in as an app: it needs a license key to run.
        ...(image === PRIVATE_IMAGE ? { env: [{ name: 'PANDO_LICENSE_KEY', value: 'control' }] } : {}),
      }],
    },
  };
}

/** READY and STATUS of a pod as `kubectl get pods` shows them. */
function row(namespace: string, name: string): { ready: string; status: string } {
  const { ready, status } = podRows(cluster, namespace, name)[0]!;
  return { ready, status };
}

/** The kubelet's Events for a pod: "Reason: message". */
function events(namespace: string, name: string): string[] {
  const list = JSON.parse(kubectl('get', 'events', '-n', namespace, '--field-selector', `involvedObject.name=${name}`, '-o', 'json')).items as any[];
  return list.map((e) => `${e.reason}: ${e.message}`);
}

/** Waits until the pod shows `ready` and Running, recording every STATUS seen on the way. */
async function untilRunning(namespace: string, name: string, ready: string, seen: Set<string>): Promise<number> {
  const t0 = Date.now();
  await waitUntil(`pod ${name} Running ${ready}`, 90_000, async () => {
    const r = row(namespace, name);
    seen.add(r.status);
    return r.status === 'Running' && r.ready === ready;
  }, 250);
  return Date.now() - t0;
}

const skip = (t: TestContext): boolean => skipWithoutNode(t, noNode);

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: PRIVATE_REPOSITORY, tag: PRIVATE_TAG } }));
  noNode = await nodeMissing(cluster);
  if (noNode) return;
  // As a user of a private registry sets the chart: the registry, and the Secret to pull with.
  values = { ...values, extra: { sidecar: { image: { registry: PRIVATE_REGISTRY_HOST, repository: PRIVATE_REPOSITORY, tag: PRIVATE_TAG, pullPolicy: 'Always' }, imagePullSecrets: [PULL_SECRET] } } };
  deployed = await deployProduct(cluster, values);
  assert.equal(deployed.env.PANDO_SIDECAR_IMAGE_PULL_SECRETS, PULL_SECRET, 'the chart passes sidecar.imagePullSecrets');
  create(pullSecret(RELEASE_NAMESPACE));
  webhook = await startWebhook(tls, deployed.env, port);
});

after(async () => {
  if (cluster && !noNode) spawnSync(join(BIN_DIR, 'kubectl'), ['delete', 'secret', PULL_SECRET, '-n', RELEASE_NAMESPACE, '--ignore-not-found'], { env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 60_000 });
  await tearDown({ cluster, tls, webhook, deployed, namespaces });
});

test('control: the private registry refuses a pull without credentials (ErrImagePull/ImagePullBackOff, 401); with the pull Secret the pod runs', async (t) => {
  if (skip(t)) return;
  const ns = await createNamespace(cluster, 'e2e-registry-control');
  namespaces.push(ns);
  create(pullSecret(ns));
  create(pod(ns, 'no-secret', { image: PRIVATE_IMAGE }));
  const refused = await waitUntil('pod no-secret ErrImagePull or ImagePullBackOff', 60_000, async () => {
    const r = row(ns, 'no-secret');
    return PULL_FAILED.includes(r.status) ? r : undefined;
  }, 250);
  const failed = events(ns, 'no-secret').filter((e) => e.startsWith('Failed:'));
  console.log(`# no-secret: ${refused.ready} ${refused.status}; ${failed[0]}`);
  assert.equal(refused.ready, '0/1');
  assert.ok(failed.some((e) => /401 Unauthorized/.test(e)), `the registry answered 401: ${JSON.stringify(failed)}`);

  create(pod(ns, 'with-secret', { image: PRIVATE_IMAGE, pullSecret: true }));
  const seen = new Set<string>();
  const ms = await untilRunning(ns, 'with-secret', '1/1', seen);
  const pulled = events(ns, 'with-secret').find((e) => e.startsWith('Pulled:'));
  console.log(`# with-secret Running 1/1 in ${ms} ms (statuses ${[...seen].join(', ')}); ${pulled}`);
  assert.match(pulled ?? '', new RegExp(`Successfully pulled image "${PRIVATE_IMAGE}"`));
  assert.ok(!PULL_FAILED.some((s) => seen.has(s)), `never a pull failure: ${[...seen].join(', ')}`);
});

test('labelled pod, namespace set up by pando setup-namespace (the pull Secret copied): injected, Running 2/2, the sidecar pulled from the private registry', async (t) => {
  if (skip(t)) return;
  const ns = await createNamespace(cluster, 'e2e-registry-ready');
  namespaces.push(ns);
  const setup = await runPando(cluster.kubeconfigPath, ['setup-namespace', ns]);
  assert.equal(setup.code, 0, setup.stderr + setup.stdout);
  assert.equal(kubectl('get', 'secret', PULL_SECRET, '-n', ns, '-o', 'jsonpath={.type}'), 'kubernetes.io/dockerconfigjson', 'setup-namespace copied the pull Secret');

  create(pod(ns, 'control'));
  const controlMs = await untilRunning(ns, 'control', '1/1', new Set());
  console.log(`# control Running 1/1 in ${controlMs} ms`);

  const warnings = create(pod(ns, 'protected', { labelled: true }));
  assert.deepEqual(warnings, [], 'no warning: the namespace is ready');
  const stored = JSON.parse(kubectl('get', 'pod', 'protected', '-n', ns, '-o', 'json'));
  assert.equal(stored.metadata.annotations?.[ANNOTATION_STATUS], 'injected');
  const sidecar = (stored.spec.initContainers ?? []).find((c: any) => c.name === SIDECAR_NAME);
  assert.equal(sidecar?.image, PRIVATE_IMAGE, 'sidecar.image.registry + repository + tag');
  assert.deepEqual(stored.spec.imagePullSecrets, [{ name: PULL_SECRET }], 'the webhook added the pull Secret');

  const seen = new Set<string>();
  const ms = await untilRunning(ns, 'protected', '2/2', seen);
  const pulled = events(ns, 'protected').filter((e) => e.startsWith('Pulled:'));
  console.log(`# protected Running 2/2 in ${ms} ms (statuses ${[...seen].join(', ')}); ${pulled.join('; ')}`);
  assert.ok(pulled.some((e) => e.includes(`Successfully pulled image "${PRIVATE_IMAGE}"`)), `the sidecar was pulled with the Secret: ${JSON.stringify(pulled)}`);
  assert.ok(!PULL_FAILED.some((s) => seen.has(s)), `never a pull failure: ${[...seen].join(', ')}`);
  const status = JSON.parse(kubectl('get', 'pod', 'protected', '-n', ns, '-o', 'json')).status;
  const sidecarStatus = (status.initContainerStatuses ?? []).find((s: any) => s.name === SIDECAR_NAME);
  assert.ok(sidecarStatus?.state?.running, `the sidecar runs: ${JSON.stringify(sidecarStatus?.state)}`);
  assert.equal(sidecarStatus.restartCount, 0);
});

test('labelled pod, namespace without the pull Secret: not injected (namespace-not-ready, kubectl shows why), Running 1/1, never ErrImagePull or ImagePullBackOff', async (t) => {
  if (skip(t)) return;
  const ns = await createNamespace(cluster, 'e2e-registry-missing');
  namespaces.push(ns);
  await setupProtectedNamespace(cluster, ns, LICENSE); // ServiceAccount, RoleBinding, license: no pull Secret

  create(pod(ns, 'control'));
  const controlMs = await untilRunning(ns, 'control', '1/1', new Set());
  console.log(`# control Running 1/1 in ${controlMs} ms`);

  const notReadyBefore = await webhook!.metric('pandocore_namespace_not_ready_total');
  const warnings = create(pod(ns, 'protected', { labelled: true }));
  console.log(`# kubectl warnings: ${JSON.stringify(warnings)}`);
  assert.ok(warnings.some((w) => w.includes(`namespace ${ns} is not set up`)), JSON.stringify(warnings));
  assert.ok(warnings.some((w) => w.includes(`pull Secret ${PULL_SECRET}`)), 'names what is missing');
  assert.ok(warnings.some((w) => w.includes(`pando setup-namespace ${ns}`)), 'and the fix');
  assert.equal(await webhook!.metric('pandocore_namespace_not_ready_total'), notReadyBefore + 1, 'counted as namespace-not-ready');
  const stored = JSON.parse(kubectl('get', 'pod', 'protected', '-n', ns, '-o', 'json'));
  const containers = [...(stored.spec.initContainers ?? []), ...stored.spec.containers].map((c: any) => c.name);
  assert.deepEqual(containers, ['app'], 'not injected');
  assert.equal(stored.spec.imagePullSecrets, undefined, 'no pull Secret named that the namespace lacks');

  const seen = new Set<string>();
  const ms = await untilRunning(ns, 'protected', '1/1', seen);
  // A little longer: a pull failure would show within the kubelet's first back-off.
  for (let i = 0; i < 10; i++) {
    seen.add(row(ns, 'protected').status);
    await new Promise((r) => setTimeout(r, 300));
  }
  const failed = events(ns, 'protected').filter((e) => /^(Failed|BackOff):/.test(e));
  console.log(`# protected Running 1/1 in ${ms} ms (statuses ${[...seen].join(', ')}); failure events: ${failed.length}`);
  assert.ok(!PULL_FAILED.some((s) => seen.has(s)), `never a pull failure: ${[...seen].join(', ')}`);
  assert.deepEqual(failed, []);
  assert.deepEqual(row(ns, 'protected'), { ready: '1/1', status: 'Running' });
});

test('what the namespace check prevents: with it off (PANDO_NAMESPACE_CHECK=false), the same pod is injected and its sidecar never pulls (Init:ErrImagePull / Init:ImagePullBackOff)', async (t) => {
  if (skip(t)) return;
  const ns = await createNamespace(cluster, 'e2e-registry-unchecked');
  namespaces.push(ns);
  await setupProtectedNamespace(cluster, ns, LICENSE);
  await webhook!.stop();
  webhook = await startWebhook(tls, { ...deployed!.env, PANDO_NAMESPACE_CHECK: 'false' }, port);
  try {
    create(pod(ns, 'unchecked', { labelled: true }));
    const stored = JSON.parse(kubectl('get', 'pod', 'unchecked', '-n', ns, '-o', 'json'));
    assert.equal(stored.metadata.annotations?.[ANNOTATION_STATUS], 'injected', 'injected: nothing checked the namespace');
    const broken = await waitUntil('pod unchecked Init:ErrImagePull or Init:ImagePullBackOff', 60_000, async () => {
      const r = row(ns, 'unchecked');
      return PULL_FAILED.map((s) => `Init:${s}`).includes(r.status) ? r : undefined;
    }, 250);
    const failed = events(ns, 'unchecked').filter((e) => e.startsWith('Failed:'));
    console.log(`# unchecked: ${broken.ready} ${broken.status}; ${failed[0]}`);
    assert.equal(broken.ready, '0/2', 'the app never starts: it waits for the sidecar');
    assert.ok(failed.some((e) => e.includes(PRIVATE_IMAGE) && /401 Unauthorized/.test(e)), JSON.stringify(failed));
  } finally {
    await webhook!.stop();
    webhook = await startWebhook(tls, deployed!.env, port);
  }
});
