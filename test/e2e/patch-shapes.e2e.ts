// Issue 19 items 6 and 9 on the real API server: a pod whose free-form maps hold `__proto__` and
// `constructor` keys is accepted by Kubernetes and injected like any other (fastify's default
// answered 400 and the pod went uninjected), and the patch for a pod with 100 init containers
// (one add for the sidecar in front, not a rewrite of every init container) applies there.
// Each shape is created unlabelled first (the control: the API server accepts it on its own).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { LABEL_PROTECT, SIDECAR_NAME } from '../../app/contract.ts';
import type { Cluster } from '../cluster/harness.ts';
import { deployProduct, prepare, setupProtectedNamespace, tearDown, type ChartValues, type Deployed } from './product.ts';
import { createNamespace, isInjected } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-2222-3333';
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let webhook: WebhookProcess | undefined;
let deployed: Deployed | undefined;
let namespace: string;
const namespaces: string[] = [];

before(async () => {
  ({ cluster, tls, port, values } = await prepare({
    licenseKey: LICENSE,
    image: { repository: 'registry.example.invalid/pandocore/sidecar', tag: '1.0.0' },
    defaultMode: 'monitor',
    excludedNamespaces: ['kube-system', 'kube-public', 'kube-node-lease'],
  }));
  deployed = await deployProduct(cluster, values);
  webhook = await startWebhook(tls, deployed.env, port);
  namespace = await createNamespace(cluster, 'e2e-shapes');
  namespaces.push(namespace);
  await setupProtectedNamespace(cluster, namespace, LICENSE);
});

after(() => tearDown({ cluster, tls, webhook, deployed, namespaces }));

/** Raw JSON: an object literal would turn `__proto__` into the prototype instead of a key. */
function podWithPoisonKeys(name: string, labelled: boolean): string {
  const labels = labelled ? `{"${LABEL_PROTECT}":"true"}` : '{"app":"shapes"}';
  return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"${name}","labels":${labels}},` +
    '"spec":{"containers":[{"name":"app","image":"registry.example.invalid/app:1"}],' +
    '"nodeSelector":{"constructor":"x"},' +
    '"volumes":[{"name":"data","csi":{"driver":"example.csi.k8s.io","volumeAttributes":{"__proto__":"a","constructor":"b","size":"1Gi"}}}]}}';
}

function podWithInitContainers(name: string, labelled: boolean, count: number) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: labelled ? { [LABEL_PROTECT]: 'true' } : { app: 'shapes' } },
    spec: {
      initContainers: Array.from({ length: count }, (_, i) => ({ name: `step-${i}`, image: 'registry.example.invalid/migrate:1', command: ['/migrate', String(i)] })),
      containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }],
    },
  };
}

test('a pod with __proto__ and constructor keys in its maps: accepted unlabelled, injected when labelled', async () => {
  const path = `/api/v1/namespaces/${namespace}/pods`;
  const control = await cluster.request('POST', path, podWithPoisonKeys('proto-control', false));
  assert.equal(control.status, 201, `the API server accepts the keys on its own: ${JSON.stringify(control.body).slice(0, 300)}`);
  assert.equal(control.body.spec.initContainers, undefined);

  const before = await webhook!.metric('pandocore_admission_requests_total', { reason: 'injected' });
  const labelled = await cluster.request('POST', path, podWithPoisonKeys('proto-labelled', true));
  assert.equal(labelled.status, 201, JSON.stringify(labelled.body).slice(0, 300));
  assert.ok(isInjected(labelled.body), 'the labelled pod got the sidecar');
  assert.deepEqual(labelled.warnings, [], 'no warning: reviewed like any other pod');
  const stored = await cluster.request('GET', `${path}/proto-labelled`);
  assert.deepEqual(Object.keys(stored.body.spec.volumes[0].csi.volumeAttributes).sort(), ['__proto__', 'constructor', 'size'], 'the keys are kept as data');
  assert.equal(await webhook!.metric('pandocore_admission_requests_total', { reason: 'injected' }), before + 1);
});

test('a pod with 100 init containers: the sidecar goes first and the API server applies the small patch', async () => {
  const path = `/api/v1/namespaces/${namespace}/pods`;
  const control = await cluster.request('POST', path, podWithInitContainers('inits-control', false, 100));
  assert.equal(control.status, 201, JSON.stringify(control.body).slice(0, 300));

  const labelled = await cluster.request('POST', path, podWithInitContainers('inits-labelled', true, 100));
  assert.equal(labelled.status, 201, JSON.stringify(labelled.body).slice(0, 300));
  assert.ok(isInjected(labelled.body), 'the labelled pod got the sidecar');
  const names = (labelled.body.spec.initContainers as Array<{ name: string; command?: string[] }>).map((c) => c.name);
  assert.equal(names[0], SIDECAR_NAME, 'the sidecar is first');
  assert.deepEqual(names.slice(1), Array.from({ length: 100 }, (_, i) => `step-${i}`), 'the init containers follow, in order');
  assert.deepEqual(labelled.body.spec.initContainers[100].command, ['/migrate', '99'], 'and unchanged');
});
