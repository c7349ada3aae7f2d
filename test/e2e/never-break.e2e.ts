// Issue 8 on the real API server: the four ways an injected sidecar could break a pod after a
// successful webhook call, each closed. The webhook runs with the chart's env (namespace check on)
// and, where the e2e runner published it, from its image.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, RbacAuthorizationV1Api, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_STATUS, LABEL_PROTECT, SIDECAR_NAME, STATUS_INJECTED } from '../../app/contract.ts';
import type { Cluster } from '../cluster/harness.ts';
import { deployProduct, prepare, RELEASE_NAMESPACE, setupProtectedNamespace, tearDown, type ChartValues, type Deployed } from './product.ts';
import { serviceAccountKubeconfig } from './chart-render.ts';
import { LABEL_PROTECT_NAMESPACE, LICENSE_SECRET_NAME, SIDECAR_SERVICE_ACCOUNT } from '../../app/contract.ts';
import { createNamespace, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-never-break';
const PROTECT = { [LABEL_PROTECT]: 'true' };
let cluster: Cluster;
let tls: WebhookTls;
let webhook: WebhookProcess | undefined;
let deployed: Deployed | undefined;
let values: ChartValues;
let port: number;
const namespaces: string[] = [];

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);
const apps = () => cluster.kubeConfig.makeApiClient(AppsV1Api);

/** A pod that satisfies Pod Security `restricted` and a cpu/memory quota on its own. */
function compliantPod(name: string, labels: Record<string, string> = PROTECT): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels },
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'app',
          image: 'registry.example.invalid/app:1',
          resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  };
}

const injected = (pod: V1Pod) =>
  pod.metadata?.annotations?.[ANNOTATION_STATUS] === STATUS_INJECTED && (pod.spec?.initContainers ?? []).some((c) => c.name === SIDECAR_NAME);

async function protectedNamespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const ns = await createNamespace(cluster, prefix, labels);
  namespaces.push(ns);
  await setupProtectedNamespace(cluster, ns, LICENSE);
  return ns;
}

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: 'registry.example.invalid/pandocore/sidecar', tag: '1.0.0' } }));
  deployed = await deployProduct(cluster, values);
  assert.equal(deployed.env.PANDO_NAMESPACE_CHECK, 'true', 'the chart turns the namespace check on');
  webhook = await startWebhook(tls, deployed.env, port);
});

after(() => tearDown({ cluster, tls, webhook, deployed, namespaces }));

test('1+2. namespace without ServiceAccount and license Secret: created without the sidecar, warned with the fix; after setup, injected', async () => {
  const ns = await createNamespace(cluster, 'e2e-not-ready');
  namespaces.push(ns);
  const r = await cluster.request('POST', `/api/v1/namespaces/${ns}/pods`, compliantPod('before-setup'));
  assert.equal(r.status, 201, `the pod is created: ${JSON.stringify(r.body)}`);
  assert.ok(!injected(r.body), 'not injected: its serviceAccountName and secretKeyRef would break it');
  assert.equal(r.body.spec.serviceAccountName, 'default');
  assert.ok(r.warnings.some((w) => w.includes(`namespace ${ns} is not set up`)), `a warning says why; got ${JSON.stringify(r.warnings)}`);
  const missing = r.warnings.find((w) => w.includes('missing'));
  assert.ok(missing, `a warning names what is missing; got ${JSON.stringify(r.warnings)}`);
  assert.match(missing, /ServiceAccount pando-sidecar and Secret pando-license/);
  for (const w of r.warnings) assert.ok(w.length <= 120 && !w.endsWith('…'), `fits a kubectl line uncut: ${w}`);
  assert.ok(r.warnings.some((w) => w.includes(`pando setup-namespace ${ns}`)), 'a warning gives the command that fixes it');
  // A namespace with none of the setup names no series of its own (issue 19 item 5: a forged review
  // could name any namespace); it is counted under `other`.
  assert.ok((await webhook!.metric('pandocore_namespace_not_ready_total', { namespace: 'other' })) >= 1, 'counted, under other');
  assert.equal(await webhook!.metric('pandocore_namespace_not_ready_total', { namespace: ns }), 0, 'no series for a namespace with nothing set up');

  await setupProtectedNamespace(cluster, ns, LICENSE);
  // A not-ready answer is cached for a few seconds: the next pods are injected once it expires.
  let attempt = 0;
  const pod = await waitUntil('a pod injected after the setup', 20_000, async () => {
    const created = await core().createNamespacedPod({ namespace: ns, body: compliantPod(`after-setup-${attempt++}`) });
    return injected(created) ? created : undefined;
  }, 1000);
  assert.equal(pod.spec?.serviceAccountName, 'pando-sidecar');
});

test('3. Pod Security restricted: an injected compliant pod is admitted, and the webhook Deployment runs there', async () => {
  const ns = await protectedNamespace('e2e-restricted', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  // Control: the namespace really enforces restricted.
  const bare = await cluster.request('POST', `/api/v1/namespaces/${ns}/pods`, {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'not-restricted' }, spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }] },
  });
  assert.equal(bare.status, 403, 'a pod that is not restricted-compliant is forbidden');
  assert.match(bare.body.message, /violates PodSecurity "restricted/);

  const pod = await core().createNamespacedPod({ namespace: ns, body: compliantPod('restricted-app') });
  assert.ok(injected(pod), 'injected and admitted under restricted');

  // The chart's own webhook pods, created by the controller-manager in a restricted namespace.
  const chartDeployment = deployed!.objects.find((o) => o.kind === 'Deployment') as V1Deployment;
  await core().createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: chartDeployment.spec!.template.spec!.serviceAccountName! } } });
  await apps().createNamespacedDeployment({ namespace: ns, body: { ...chartDeployment, metadata: { name: 'pando-webhook-restricted' } } });
  // With the HPA on (the default) the chart renders no replicas: the copy runs the API default, 1.
  const replicas = chartDeployment.spec!.replicas ?? 1;
  const pods = await waitUntil(`${replicas} webhook pods under restricted`, 60_000, async () => {
    const list = await core().listNamespacedPod({ namespace: ns, labelSelector: 'app.kubernetes.io/name=pando-webhook' });
    return list.items.length === replicas ? list.items : undefined;
  });
  assert.equal(pods.length, replicas);
});

test('4a. ResourceQuota on cpu and memory: the injected pod is admitted and the sidecar is counted', async () => {
  const ns = await protectedNamespace('e2e-quota');
  await core().createNamespacedResourceQuota({
    namespace: ns,
    body: { metadata: { name: 'compute' }, spec: { hard: { 'requests.cpu': '2', 'requests.memory': '2Gi', 'limits.cpu': '4', 'limits.memory': '4Gi' } } },
  });
  await waitUntil('the quota has a status', 30_000, async () => (await core().readNamespacedResourceQuota({ name: 'compute', namespace: ns })).status?.hard);
  // Control: a container without requests and limits is rejected by the quota.
  const bare = await cluster.request('POST', `/api/v1/namespaces/${ns}/pods`, {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'no-resources' }, spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }] },
  });
  assert.equal(bare.status, 403, 'the quota rejects a container without requests and limits');

  const pod = await core().createNamespacedPod({ namespace: ns, body: compliantPod('quota-app') });
  assert.ok(injected(pod), 'injected and admitted under the quota');
  const sidecar = pod.spec!.initContainers!.find((c) => c.name === SIDECAR_NAME)!;
  assert.ok(sidecar.resources?.requests?.cpu && sidecar.resources?.limits?.memory, 'the sidecar carries requests and limits');
  // 100m (app) + the sidecar's request, as the quota controller counts it.
  const expectedCpu = 100 + Number.parseInt(String(sidecar.resources.requests.cpu), 10);
  await waitUntil(`quota usage ${expectedCpu}m`, 30_000, async () => {
    const used = (await core().readNamespacedResourceQuota({ name: 'compute', namespace: ns })).status?.used?.['requests.cpu'];
    return used === `${expectedCpu}m` ? used : undefined;
  });
});

test('4b. pod-level resources: a pod with room gets the sidecar; a pod without room is created without it, with the reason', async () => {
  const ns = await protectedNamespace('e2e-pod-resources');
  const roomy = compliantPod('roomy');
  roomy.spec!.resources = { requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } };
  const created = await core().createNamespacedPod({ namespace: ns, body: roomy });
  assert.deepEqual(created.spec?.resources?.limits, { cpu: '1', memory: '512Mi' }, 'the API server keeps pod-level resources (PodLevelResources on)');
  assert.ok(injected(created), 'injected: the sidecar fits under the pod-level resources');

  const tight = compliantPod('tight');
  tight.spec!.resources = { limits: { cpu: '150m', memory: '512Mi' } };
  tight.spec!.containers[0]!.resources = { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '150m', memory: '256Mi' } };
  const r = await cluster.request('POST', `/api/v1/namespaces/${ns}/pods`, tight);
  assert.equal(r.status, 201, `the pod is created: ${JSON.stringify(r.body)}`);
  assert.ok(!injected(r.body), 'not injected: the sidecar would not fit');
  assert.ok(r.warnings.some((w) => /sidecar not injected: .*cpu limit/.test(w)), `the reason reaches the client; got ${JSON.stringify(r.warnings)}`);
});

test('namespaceSetup.auto: a labelled namespace is set up within seconds by the webhook, with the chart\'s RBAC; turning it off removes that RBAC', async (t) => {
  const setupRole = '/apis/rbac.authorization.k8s.io/v1/clusterroles/pando-webhook-namespace-setup';
  assert.equal((await cluster.request('GET', setupRole)).status, 404, 'no extra RBAC while the value is off');
  deployed = await deployProduct(cluster, { ...values, extra: { namespaceSetup: { auto: true } } });
  assert.equal((await cluster.request('GET', setupRole)).status, 200, 'the value adds its ClusterRole');
  assert.equal(deployed.env.PANDO_NAMESPACE_SETUP_AUTO, 'true');

  // The webhook as the chart's ServiceAccount (a bound token, as in a pod): only the chart's RBAC.
  const identity = await serviceAccountKubeconfig(cluster, RELEASE_NAMESPACE, 'pando-webhook');
  try {
    await webhook?.stop();
    webhook = await startWebhook(tls, { ...deployed.env, KUBECONFIG: identity.path, PANDO_POD_NAME: 'pando-webhook-e2e-0' }, port);
    const name = `e2e-auto-${Date.now().toString(36)}`;
    const t0 = Date.now();
    await core().createNamespace({ body: { metadata: { name, labels: { [LABEL_PROTECT_NAMESPACE]: 'true' } } } });
    namespaces.push(name);
    await waitUntil('the three objects of the namespace setup', 20_000, async () => {
      await core().readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: name });
      await cluster.kubeConfig.makeApiClient(RbacAuthorizationV1Api).readNamespacedRoleBinding({ name: SIDECAR_SERVICE_ACCOUNT, namespace: name });
      const secret = await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: name });
      return secret.data?.['license-key'] === Buffer.from(LICENSE).toString('base64');
    }, 250);
    const seconds = (Date.now() - t0) / 1000;
    t.diagnostic(`namespace ready ${seconds.toFixed(1)} s after it was labelled`);
    await waitUntil('default ServiceAccount', 30_000, async () => core().readNamespacedServiceAccount({ name: 'default', namespace: name }));
    const pod = await core().createNamespacedPod({ namespace: name, body: compliantPod('auto-setup') });
    assert.ok(injected(pod), 'a labelled pod there is injected');
  } finally {
    identity.cleanup();
  }

  deployed = await deployProduct(cluster, values);
  assert.equal((await cluster.request('GET', setupRole)).status, 404, 'turning the value off removes its ClusterRole');
  assert.equal((await cluster.request('GET', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/pando-webhook-namespace-setup')).status, 404);
});
