// Issue 19 item 3 on the real API server: the chart's RBAC for namespaceSetup.auto lets the
// webhook's ServiceAccount create Secrets (create cannot be limited by name) and patch any Secret
// named pando-license, so a compromised webhook pod could create a kubernetes.io/service-account-token
// Secret of that name and read the token the token controller puts in it. The chart's
// ValidatingAdmissionPolicy (charts-src/secret-admission-policy.ts) must refuse that and still
// allow the namespace setup and the self-signed TLS Secret. The control comes first: the same
// requests under the chart's RBAC alone are accepted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, KubeConfig, KubernetesObjectApi, PatchStrategy, type V1Secret } from '@kubernetes/client-node';
import { LICENSE_SECRET_KEY, LICENSE_SECRET_NAME } from '../../app/contract.ts';
import { FIELD_MANAGER } from '../../app/controllers/namespace-setup.ts';
import { namespaceSetupObjects } from '../../app/setup/namespace-objects.ts';
import { startCluster, type Cluster } from '../cluster/harness.ts';
import { applyObjects, deleteObjects, RBAC_KINDS, renderChart, serviceAccountKubeconfig, webhookServiceAccount } from './chart-render.ts';
import { RELEASE_NAMESPACE } from './product.ts';
import { createNamespace, deleteNamespace, waitUntil } from './support.ts';

const POLICY_KINDS = ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'];
const TLS_SECRET = 'pando-webhook-tls';
const PULL_SECRET = 'pando-registry';

let cluster: Cluster;
let ns: string;
let rbac: any[] = [];
let policy: any[] = [];
let identity: { path: string; cleanup(): void } | undefined;
let asWebhook: KubeConfig;

/** The attack: a token Secret named as our license, for the namespace's default account. */
function tokenSecret(): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: LICENSE_SECRET_NAME, annotations: { 'kubernetes.io/service-account.name': 'default' } },
    type: 'kubernetes.io/service-account-token',
  };
}

/** Creates `body` in `namespace` as `kc`; the HTTP status and the API server's message. */
async function create(kc: KubeConfig, namespace: string, body: V1Secret, dryRun: boolean): Promise<{ status: number; message: string }> {
  try {
    await kc.makeApiClient(CoreV1Api).createNamespacedSecret({ namespace, body, ...(dryRun ? { dryRun: 'All' } : {}) });
    return { status: 201, message: '' };
  } catch (err) {
    const e = err as { code?: number; body?: string };
    const message = typeof e.body === 'string' ? (JSON.parse(e.body) as { message?: string }).message ?? '' : String(err);
    return { status: e.code ?? 0, message };
  }
}

before(async () => {
  cluster = await startCluster();
  await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: RELEASE_NAMESPACE } } }).catch(() => undefined);
  ns = await createNamespace(cluster, 'e2e-secret-policy');
  const objects = renderChart(cluster, `licenseKey=e2e-secret-policy,namespaceSetup.auto=true,sidecar.imagePullSecrets={${PULL_SECRET}}`);
  rbac = objects.filter((o) => RBAC_KINDS.includes(o.kind));
  policy = objects.filter((o) => POLICY_KINDS.includes(o.kind));
  assert.equal(policy.length, 2, 'the chart renders the policy and its binding by default');
  deleteObjects(cluster, policy); // a crashed run's
  applyObjects(cluster, rbac);
  identity = await serviceAccountKubeconfig(cluster, RELEASE_NAMESPACE, webhookServiceAccount(objects));
  asWebhook = new KubeConfig();
  asWebhook.loadFromFile(identity.path);
});

after(async () => {
  identity?.cleanup();
  if (cluster) {
    deleteObjects(cluster, [...policy, ...rbac]);
    if (ns) await deleteNamespace(cluster, ns);
  }
  await cluster?.stop();
});

test('control: under the chart\'s RBAC alone the webhook\'s account may create a token Secret named pando-license', async () => {
  const r = await create(asWebhook, ns, tokenSecret(), true);
  assert.equal(r.status, 201, `RBAC alone admits the attack (dry run): ${r.message}`);
});

test('with the chart\'s ValidatingAdmissionPolicy: the attack is refused, the namespace setup and the TLS Secret are allowed', async (t) => {
  applyObjects(cluster, policy);
  // The policy reaches the API server's admission through an informer: wait until it bites (dry runs).
  const refused = await waitUntil('the policy to refuse the attack', 30_000, async () => {
    const r = await create(asWebhook, ns, tokenSecret(), true);
    return r.status === 403 ? r : undefined;
  });
  t.diagnostic(`refused: ${refused.message}`);
  assert.match(refused.message, /may only write the Opaque Secret pando-license/);

  const real = await create(asWebhook, ns, tokenSecret(), false);
  assert.equal(real.status, 403, real.message);
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  await assert.rejects(core.readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: ns }), (err: { code?: number }) => err.code === 404, 'no Secret was created');

  // The other shapes of the same attack.
  const opaqueWithAnnotation: V1Secret = { metadata: { name: LICENSE_SECRET_NAME, annotations: { 'kubernetes.io/service-account.name': 'default' } }, type: 'Opaque' };
  const r1 = await create(asWebhook, ns, opaqueWithAnnotation, true);
  assert.equal(r1.status, 403, 'an Opaque pando-license with a service-account annotation');
  assert.match(r1.message, /service-account/);
  assert.equal((await create(asWebhook, RELEASE_NAMESPACE, { metadata: { name: 'anything-else' }, type: 'Opaque' }, true)).status, 403, 'another name');
  assert.equal((await create(asWebhook, ns, { metadata: { name: TLS_SECRET }, type: 'kubernetes.io/tls', data: { 'tls.crt': '', 'tls.key': '' } }, true)).status, 403, 'the TLS Secret outside the release namespace');

  // Other identities are not matched: the cluster admin may still create such a Secret.
  assert.equal((await create(cluster.kubeConfig, ns, tokenSecret(), true)).status, 201, 'the admin is not limited by the policy');

  // What the webhook does: the namespace setup by server-side apply, as app/controllers/ does it...
  const api = KubernetesObjectApi.makeApiClient(asWebhook);
  const pull = { name: PULL_SECRET, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from('{"auths":{}}').toString('base64') } };
  for (const object of namespaceSetupObjects(ns, Buffer.from('e2e-secret-policy').toString('base64'), [pull])) {
    await api.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }
  const license = await core.readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: ns });
  assert.equal(license.type, 'Opaque');
  assert.equal(Buffer.from(license.data?.[LICENSE_SECRET_KEY] ?? '', 'base64').toString(), 'e2e-secret-policy', 'the setup was allowed');
  assert.equal((await core.readNamespacedSecret({ name: PULL_SECRET, namespace: ns })).type, 'kubernetes.io/dockerconfigjson', 'the pull Secret copy was allowed');
  const pullAsOpaque = await create(asWebhook, ns, { metadata: { name: 'not-a-pull-secret' }, type: 'kubernetes.io/dockerconfigjson', data: pull.data }, true);
  assert.equal(pullAsOpaque.status, 403, 'a docker-registry Secret under a name that is not a configured pull Secret');
  // ...and a patch that would turn it into a token holder is refused.
  const patched = await api
    .patch({ apiVersion: 'v1', kind: 'Secret', metadata: { name: LICENSE_SECRET_NAME, namespace: ns, annotations: { 'kubernetes.io/service-account.name': 'default' } } }, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply)
    .then(() => 200, (err: { code?: number }) => err.code ?? 0);
  assert.equal(patched, 403, 'adding a service-account annotation to pando-license');
  // The self-signed TLS Secret in the release namespace.
  const tls = await create(asWebhook, RELEASE_NAMESPACE, { metadata: { name: TLS_SECRET }, type: 'kubernetes.io/tls', data: { 'tls.crt': '', 'tls.key': '' } }, true);
  assert.equal(tls.status, 201, `the TLS Secret in the release namespace: ${tls.message}`);
});
