// Issue 19 item 4 on the real control plane: namespaceSetup.auto watches namespaces and applies
// only on change, never takes over what someone else manages, never sets up an excluded namespace
// or one the operator's namespaceSelector leaves out, refuses a license Secret of another type, and
// removes what it created when the label goes. The webhook runs as the chart's ServiceAccount, so
// the chart's RBAC is what it has.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { LABEL_PROTECT_NAMESPACE, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, SIDECAR_SERVICE_ACCOUNT } from '../../app/contract.ts';
import type { Cluster } from '../cluster/harness.ts';
import { serviceAccountKubeconfig } from './chart-render.ts';
import { deployProduct, prepare, RELEASE_NAMESPACE, tearDown, type ChartValues, type Deployed } from './product.ts';
import { uniqueName, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-namespace-setup';
const EXCLUDED = uniqueName('e2e-setup-excluded');
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
let webhook: WebhookProcess | undefined;
let identity: { path: string; cleanup(): void } | undefined;
const namespaces: string[] = [EXCLUDED];

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);
const rbac = () => cluster.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
const status = async (fn: () => Promise<unknown>) => fn().then(() => 200, (e: { code?: number }) => e.code ?? 0);

async function labelledNamespace(name: string, labels: Record<string, string> = {}): Promise<string> {
  await core().createNamespace({ body: { metadata: { name, labels: { [LABEL_PROTECT_NAMESPACE]: 'true', ...labels } } } });
  if (!namespaces.includes(name)) namespaces.push(name);
  return name;
}

async function setUp(namespace: string): Promise<boolean> {
  const secret = await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace }).catch(() => undefined);
  return (
    (await status(() => core().readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace }))) === 200 &&
    (await status(() => rbac().readNamespacedRoleBinding({ name: SIDECAR_SERVICE_ACCOUNT, namespace }))) === 200 &&
    secret?.data?.[LICENSE_SECRET_KEY] === Buffer.from(LICENSE).toString('base64')
  );
}

/** Apply and patch requests the API server answered for the setup's resources (its own metrics). */
async function setupWrites(): Promise<number> {
  const r = await cluster.request('GET', '/metrics');
  let sum = 0;
  for (const line of String(r.body).split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    if (!/verb="(APPLY|PATCH)"/.test(line) || !/resource="(serviceaccounts|rolebindings|secrets)"/.test(line)) continue;
    sum += Number(line.split(' ').pop());
  }
  return sum;
}

async function startAs(extra: Record<string, unknown>): Promise<void> {
  await webhook?.stop();
  deployed = await deployProduct(cluster, { ...values, extra: { namespaceSetup: { auto: true, ...extra } } });
  identity?.cleanup();
  identity = await serviceAccountKubeconfig(cluster, RELEASE_NAMESPACE, 'pando-webhook');
  webhook = await startWebhook(tls, { ...deployed.env, KUBECONFIG: identity.path, PANDO_POD_NAME: 'pando-webhook-e2e-setup' }, port);
}

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: 'registry.example.invalid/pandocore/sidecar', tag: '1.0.0' }, excludedNamespaces: ['kube-system', 'kube-public', 'kube-node-lease', EXCLUDED] }));
  await startAs({});
});

after(async () => {
  identity?.cleanup();
  await tearDown({ cluster, tls, webhook, deployed, namespaces });
});

test('a labelled namespace is set up once; with nothing changing the webhook sends no further writes', async () => {
  const ns = await labelledNamespace(uniqueName('e2e-setup-quiet'));
  await waitUntil('the setup', 20_000, () => setUp(ns));
  await sleep(1_000);
  const before = await setupWrites();
  await sleep(10_000);
  const writes = (await setupWrites()) - before;
  console.log(`# setup writes in 10 s with nothing changing: ${writes}`);
  assert.equal(writes, 0, 'watch, and apply only on change (was: every object every 3 s)');
});

test('an excluded namespace is never set up, labelled or not', async () => {
  await labelledNamespace(EXCLUDED);
  const other = await labelledNamespace(uniqueName('e2e-setup-control'));
  await waitUntil('the control namespace set up', 20_000, () => setUp(other));
  assert.equal(await status(() => core().readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: EXCLUDED })), 404);
  assert.equal(await status(() => core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: EXCLUDED })), 404, 'no license copied there');
});

test('removing the label removes what the webhook created, and only that', async () => {
  const ns = await labelledNamespace(uniqueName('e2e-setup-unlabel'));
  await waitUntil('the setup', 20_000, () => setUp(ns));
  await core().createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'unrelated' }, data: { a: 'b' } } });
  await cluster.request('PATCH', `/api/v1/namespaces/${ns}`, { metadata: { labels: { [LABEL_PROTECT_NAMESPACE]: null } } }, 'application/merge-patch+json');
  await waitUntil('the three objects to go', 20_000, async () =>
    (await status(() => core().readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: ns }))) === 404 &&
    (await status(() => rbac().readNamespacedRoleBinding({ name: SIDECAR_SERVICE_ACCOUNT, namespace: ns }))) === 404 &&
    (await status(() => core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: ns }))) === 404);
  assert.equal(await status(() => core().readNamespacedConfigMap({ name: 'unrelated', namespace: ns })), 200);
});

test('objects someone else manages are not taken over, and a license Secret of another type is refused', async () => {
  // A license Secret written by a person with other data, before the label: a conflict, reported.
  const mine = uniqueName('e2e-setup-theirs');
  await core().createNamespace({ body: { metadata: { name: mine } } });
  namespaces.push(mine);
  await core().createNamespacedSecret({ namespace: mine, body: { metadata: { name: LICENSE_SECRET_NAME }, type: 'Opaque', stringData: { [LICENSE_SECRET_KEY]: 'their-own-key' } } });
  // A Secret of another type with our name (a service-account token would hand its token to whoever reads it).
  const token = uniqueName('e2e-setup-token');
  await core().createNamespace({ body: { metadata: { name: token } } });
  namespaces.push(token);
  await waitUntil('default ServiceAccount', 30_000, async () => core().readNamespacedServiceAccount({ name: 'default', namespace: token }));
  await core().createNamespacedSecret({ namespace: token, body: { metadata: { name: LICENSE_SECRET_NAME, annotations: { 'kubernetes.io/service-account.name': 'default' } }, type: 'kubernetes.io/service-account-token' } });
  for (const ns of [mine, token]) await cluster.request('PATCH', `/api/v1/namespaces/${ns}`, { metadata: { labels: { [LABEL_PROTECT_NAMESPACE]: 'true' } } }, 'application/merge-patch+json');
  await waitUntil('the ServiceAccounts to be set up (the rest goes on)', 20_000, async () =>
    (await status(() => core().readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: mine }))) === 200 &&
    (await status(() => core().readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: token }))) === 200);
  await sleep(3_000);
  const theirs = await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: mine });
  assert.equal(Buffer.from(theirs.data![LICENSE_SECRET_KEY]!, 'base64').toString(), 'their-own-key', 'not overwritten (no force)');
  const other = await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: token });
  assert.equal(other.type, 'kubernetes.io/service-account-token');
  assert.equal(other.data?.[LICENSE_SECRET_KEY], undefined, 'no license written into a Secret of another type');
  assert.match(webhook!.output(), /namespace setup: .*not taken over|conflict/i, 'the conflict is reported');
});

test('namespaceSetup.namespaceSelector: only labelled namespaces the operator selects are set up', async () => {
  await startAs({ namespaceSelector: 'pandocore.xyz/team=payments' });
  const chosen = await labelledNamespace(uniqueName('e2e-setup-chosen'), { 'pandocore.xyz/team': 'payments' });
  const left = await labelledNamespace(uniqueName('e2e-setup-left'), { 'pandocore.xyz/team': 'web' });
  await waitUntil('the selected namespace set up', 20_000, () => setUp(chosen));
  await sleep(3_000);
  assert.equal(await status(() => core().readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: left })), 404);
});
