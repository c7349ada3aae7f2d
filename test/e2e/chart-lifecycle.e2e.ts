// Issue 16 on the real control plane: the chart as a platform team installs it. The license comes
// from a Secret the team manages (license.existingSecret): no key in any rendered object or in
// `helm get values`, and the webhook (self-signed mode, namespaceSetup.auto, running locally as the
// chart's ServiceAccount) copies it into labelled namespaces and protectedNamespaces, whose pods
// are injected. The HPA owns the replica count: scaled to 4, a `helm upgrade` leaves 4.
// webhook.namespaceSelector and the opt-out label keep namespaces out. `helm uninstall` leaves no
// Secret, Lease or ClusterRole of ours: the TLS Secret and the Lease the webhook created are owned
// by its Deployment and the controller-manager's garbage collector removes them; `pando
// setup-namespace --delete` removes a namespace's setup. The tests run in order and share the
// installation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoordinationV1Api, CoreV1Api, PatchStrategy, RbacAuthorizationV1Api, setHeaderOptions } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { ENV, LABEL_INJECTION, LABEL_PROTECT_NAMESPACE, LEASE_NAMESPACE_SETUP, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, SIDECAR_CLUSTER_ROLE, SIDECAR_SERVICE_ACCOUNT } from '../../app/contract.ts';
import { startCluster, type Cluster } from '../cluster/harness.ts';
import { serviceAccountKubeconfig } from './chart-render.ts';
import { RELEASE, RELEASE_NAMESPACE, chartSource, helm, webhookEnvFromChart } from './product.ts';
import { createNamespace, deleteNamespace, isInjected, labelledPod, runPando, waitUntil } from './support.ts';
import { freePort, startSelfSignedWebhook, type WebhookProcess } from './webhook-process.ts';

const LICENSE = 'e2e-license-existing-secret-7f3a';
const USER_SECRET = 'vault-pando-license';
const USER_KEY = 'token';
const TLS_SECRET = 'pando-webhook-tls';
const OUR_CLUSTER_ROLES = ['pando-webhook', 'pando-webhook-namespace-setup', 'pando-webhook-license-copy', SIDECAR_CLUSTER_ROLE];

let cluster: Cluster;
let port: number;
let webhook: WebhookProcess | undefined;
let identity: { path: string; cleanup(): void } | undefined;
let installNotes = '';
let installed = false;
const namespaces: string[] = [];
let setUpNs = '';
let protectedNs = '';

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);
const apps = () => cluster.kubeConfig.makeApiClient(AppsV1Api);

function values(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    license: { existingSecret: { name: USER_SECRET, key: USER_KEY } },
    namespaceSetup: { auto: true },
    protectedNamespaces: [protectedNs],
    tls: { extraIpAddresses: ['127.0.0.1'] },
    webhook: { url: `https://127.0.0.1:${port}/mutate` },
    sidecar: { image: { repository: 'registry.example.invalid/pandocore/sidecar', tag: '1.0.0' } },
    ...extra,
  };
}

/** `helm upgrade --install` of the published chart with `v`; returns helm's output (NOTES included). */
function helmInstall(v: Record<string, unknown>): string {
  const src = chartSource();
  const dir = mkdtempSync(join(tmpdir(), 'pando-e2e-lifecycle-'));
  try {
    const file = join(dir, 'values.yaml');
    writeFileSync(file, stringify(v), { mode: 0o600 });
    return helm(cluster, ['upgrade', '--install', RELEASE, src.ref, ...src.args, '--namespace', RELEASE_NAMESPACE, '-f', file, '--timeout', '60s']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function createPod(namespace: string, name: string) {
  return core().createNamespacedPod({ namespace, body: labelledPod(name) });
}

const pando = (...args: string[]) => runPando(cluster.kubeconfigPath, args);

before(async () => {
  cluster = await startCluster();
  port = await freePort();
  await core().createNamespace({ body: { metadata: { name: RELEASE_NAMESPACE } } }).catch(() => undefined);
  // The Secret a platform team's External Secrets or Vault operator would write.
  await core().deleteNamespacedSecret({ name: USER_SECRET, namespace: RELEASE_NAMESPACE }).catch(() => undefined);
  await core().createNamespacedSecret({ namespace: RELEASE_NAMESPACE, body: { metadata: { name: USER_SECRET }, type: 'Opaque', stringData: { [USER_KEY]: LICENSE } } });
  // protectedNamespaces must exist before the install (the chart puts objects there).
  protectedNs = await createNamespace(cluster, 'e2e-protected');
  namespaces.push(protectedNs);
});

after(async () => {
  await webhook?.stop();
  identity?.cleanup();
  if (cluster) {
    for (const ns of namespaces) await deleteNamespace(cluster, ns);
    if (installed) await Promise.resolve().then(() => helm(cluster, ['uninstall', RELEASE, '--namespace', RELEASE_NAMESPACE, '--wait', '--timeout', '60s'])).catch(() => undefined);
    await core().deleteNamespacedSecret({ name: USER_SECRET, namespace: RELEASE_NAMESPACE }).catch(() => undefined);
  }
  await cluster?.stop();
});

test('license.existingSecret: installed with no key in any rendered object or in helm get values; NOTES name the Secret', async () => {
  installNotes = helmInstall(values());
  installed = true;
  const manifest = helm(cluster, ['get', 'manifest', RELEASE, '--namespace', RELEASE_NAMESPACE]);
  const releaseValues = helm(cluster, ['get', 'values', RELEASE, '--namespace', RELEASE_NAMESPACE, '--all', '-o', 'json']);
  for (const [what, text] of [['manifest', manifest], ['values', releaseValues], ['install output', installNotes]]) {
    assert.ok(!text!.includes(LICENSE), `the license key is in helm's ${what}`);
  }
  assert.ok(!/^kind: Secret$/m.test(manifest), 'the release renders no Secret');
  assert.match(installNotes, new RegExp(`License: from your Secret ${USER_SECRET} \\(key ${USER_KEY}\\)`));
  assert.match(installNotes, new RegExp(`kubectl label namespace NAMESPACE ${LABEL_PROTECT_NAMESPACE.replace('.', '\\.')}=true`));
  assert.ok(!installNotes.includes('kubectl create serviceaccount'), 'NOTES print the manual setup although namespaceSetup.auto is on');
});

test('the webhook (as the chart ServiceAccount) copies the license from the existing Secret into labelled and protected namespaces; their pods are injected', async (t) => {
  const env = await webhookEnvFromChart(cluster);
  assert.equal(env[ENV.licenseSecretName], USER_SECRET);
  assert.equal(env[ENV.licenseSecretKey], USER_KEY);
  identity = await serviceAccountKubeconfig(cluster, RELEASE_NAMESPACE, 'pando-webhook');
  const t0 = Date.now();
  webhook = await startSelfSignedWebhook({ ...env, KUBECONFIG: identity.path, [ENV.namespace]: RELEASE_NAMESPACE, [ENV.podName]: 'e2e-lifecycle-0', [ENV.tlsCheckIntervalSeconds]: '1' }, port);
  t.diagnostic(`webhook ready in ${Date.now() - t0} ms`);

  setUpNs = await createNamespace(cluster, 'e2e-lifecycle', { [LABEL_PROTECT_NAMESPACE]: 'true' });
  namespaces.push(setUpNs);
  const copy = await waitUntil(`Secret ${LICENSE_SECRET_NAME} in ${setUpNs}`, 30_000, async () =>
    (await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: setUpNs })).data?.[LICENSE_SECRET_KEY]);
  assert.equal(Buffer.from(copy, 'base64').toString('utf8'), LICENSE, 'the copy holds the key of the existing Secret');
  await waitUntil(`ServiceAccount ${SIDECAR_SERVICE_ACCOUNT} in ${setUpNs}`, 30_000, async () => Boolean(await core().readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: setUpNs })));
  // caBundle reaches the API server's webhook client a moment after the webhook writes it.
  const pod = await waitUntil('a labelled pod to be injected', 30_000, async () => {
    const p = await createPod(setUpNs, `app-${Date.now()}`);
    return isInjected(p) ? p : undefined;
  });
  t.diagnostic(`pod ${pod.metadata?.name} injected ${Date.now() - t0} ms after the webhook started`);

  // protectedNamespaces: ServiceAccount and RoleBinding from the chart, the license copy from the webhook.
  assert.equal(env[ENV.licenseCopyNamespaces], protectedNs);
  const protectedCopy = await waitUntil(`Secret ${LICENSE_SECRET_NAME} in ${protectedNs}`, 30_000, async () =>
    (await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: protectedNs })).data?.[LICENSE_SECRET_KEY]);
  assert.equal(Buffer.from(protectedCopy, 'base64').toString('utf8'), LICENSE);
  assert.ok(isInjected(await createPod(protectedNs, 'protected-app')), 'a labelled pod in a protectedNamespace is injected');
});

test('the opt-out label pandocore.xyz/injection: disabled keeps a set-up namespace out (control: the same pod is injected elsewhere)', async () => {
  const optedOut = await createNamespace(cluster, 'e2e-optout', { [LABEL_PROTECT_NAMESPACE]: 'true', [LABEL_INJECTION]: 'disabled' });
  namespaces.push(optedOut);
  await waitUntil(`Secret ${LICENSE_SECRET_NAME} in ${optedOut}`, 30_000, async () => Boolean(await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: optedOut })));
  assert.ok(isInjected(await createPod(setUpNs, 'control-optout')), 'the control pod is injected');
  const pod = await createPod(optedOut, 'opted-out');
  assert.ok(!isInjected(pod), 'a pod in an opted-out namespace was injected');
  assert.equal(pod.metadata?.annotations?.['pandocore.xyz/status'], undefined);
});

test('scaled to 4 (as the HPA would), helm upgrade with a changed value keeps 4; the new namespaceSelector is honoured', async () => {
  const scale = await apps().readNamespacedDeploymentScale({ name: 'pando-webhook', namespace: RELEASE_NAMESPACE });
  await apps().replaceNamespacedDeploymentScale({ name: 'pando-webhook', namespace: RELEASE_NAMESPACE, body: { ...scale, spec: { replicas: 4 } } });
  assert.equal((await apps().readNamespacedDeployment({ name: 'pando-webhook', namespace: RELEASE_NAMESPACE })).spec?.replicas, 4);

  helmInstall(values({ defaultMode: 'enforce', webhook: { url: `https://127.0.0.1:${port}/mutate`, namespaceSelector: { matchExpressions: [{ key: 'stage', operator: 'NotIn', values: ['dev'] }] } } }));
  const after = await apps().readNamespacedDeployment({ name: 'pando-webhook', namespace: RELEASE_NAMESPACE });
  assert.equal(after.spec?.replicas, 4, 'helm upgrade reset the replica count the autoscaler owns');
  assert.ok(after.spec?.template.spec?.containers[0]?.env?.some((e) => e.name === ENV.defaultMode && e.value === 'enforce'), 'the upgrade applied the changed value');

  const dev = await createNamespace(cluster, 'e2e-dev', { [LABEL_PROTECT_NAMESPACE]: 'true', stage: 'dev' });
  namespaces.push(dev);
  await waitUntil(`Secret ${LICENSE_SECRET_NAME} in ${dev}`, 30_000, async () => Boolean(await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: dev })));
  // The upgraded configuration reaches the API server's webhook client through its informer.
  await waitUntil('the namespaceSelector to keep stage=dev out', 30_000, async () => !isInjected(await createPod(dev, `dev-${Date.now()}`)));
  await waitUntil('a control pod to be injected after the upgrade', 30_000, async () => isInjected(await createPod(setUpNs, `after-upgrade-${Date.now()}`)));
});

test('issue 23 item 7: helm upgrade narrowing namespaceSetup.namespaceSelector (every replica restarts) removes the setup from namespaces that no longer qualify; the others keep it', async () => {
  const narrowed = await createNamespace(cluster, 'e2e-narrowed', { [LABEL_PROTECT_NAMESPACE]: 'true' });
  namespaces.push(narrowed);
  await waitUntil(`Secret ${LICENSE_SECRET_NAME} in ${narrowed}`, 30_000, async () => Boolean(await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: narrowed })));
  // setUpNs keeps qualifying (the later tests use it).
  await core().patchNamespace({ name: setUpNs, body: { metadata: { labels: { team: 'keep' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));

  // As helm upgrade does in a cluster: the replicas go (the leader's memory with them) and new ones start.
  await webhook?.stop();
  webhook = undefined;
  helmInstall(values({ defaultMode: 'enforce', namespaceSetup: { auto: true, namespaceSelector: 'team=keep' }, webhook: { url: `https://127.0.0.1:${port}/mutate`, namespaceSelector: { matchExpressions: [{ key: 'stage', operator: 'NotIn', values: ['dev'] }] } } }));
  const env = await webhookEnvFromChart(cluster);
  assert.equal(env[ENV.namespaceSetupSelector], 'team=keep');
  webhook = await startSelfSignedWebhook({ ...env, KUBECONFIG: identity!.path, [ENV.namespace]: RELEASE_NAMESPACE, [ENV.podName]: 'e2e-lifecycle-1', [ENV.tlsCheckIntervalSeconds]: '1' }, port);
  const gone = async (read: () => Promise<unknown>) => read().then(() => false, (err: { code?: number }) => err.code === 404);
  await waitUntil(`the setup in ${narrowed} to be removed by the new leader`, 45_000, async () =>
    (await gone(() => core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: narrowed }))) &&
    (await gone(() => core().readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: narrowed }))));
  assert.ok(await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: setUpNs }), `${setUpNs} still qualifies and keeps its setup`);
  assert.ok(await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: protectedNs }), 'the protectedNamespaces copy is not namespace setup\'s to remove');
});

test('helm uninstall (self-signed mode) leaves no Secret, Lease or ClusterRole of ours; setup-namespace --delete removes a namespace setup', async (t) => {
  const tls = await core().readNamespacedSecret({ name: TLS_SECRET, namespace: RELEASE_NAMESPACE });
  const deployment = await apps().readNamespacedDeployment({ name: 'pando-webhook', namespace: RELEASE_NAMESPACE });
  const owner = { kind: 'Deployment', name: 'pando-webhook', uid: deployment.metadata?.uid };
  const ownerOf = (refs: { kind: string; name: string; uid: string }[] | undefined) => refs?.map((r) => ({ kind: r.kind, name: r.name, uid: r.uid }));
  assert.deepEqual(ownerOf(tls.metadata?.ownerReferences), [owner], 'the TLS Secret is owned by the Deployment');
  const lease = await cluster.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE_NAMESPACE_SETUP, namespace: RELEASE_NAMESPACE });
  assert.deepEqual(ownerOf(lease.metadata?.ownerReferences), [owner], 'the Lease is owned by the Deployment');

  // In a cluster the webhook pods end with their Deployment; here the local process stands in for them.
  await webhook?.stop();
  // A stopping leader lets go; it never removes the setup it applied (pods there still use it).
  assert.ok(await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: setUpNs }), 'the webhook removed a namespace setup on stop');
  webhook = undefined;
  const t0 = Date.now();
  helm(cluster, ['uninstall', RELEASE, '--namespace', RELEASE_NAMESPACE, '--wait', '--timeout', '60s']);
  installed = false;
  const coordination = cluster.kubeConfig.makeApiClient(CoordinationV1Api);
  const rbac = cluster.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  const left = async () => {
    const secrets = (await core().listNamespacedSecret({ namespace: RELEASE_NAMESPACE })).items.map((s) => `Secret/${s.metadata?.name}`);
    const leases = (await coordination.listNamespacedLease({ namespace: RELEASE_NAMESPACE })).items.map((l) => `Lease/${l.metadata?.name}`);
    const roles = (await rbac.listClusterRole()).items.map((r) => r.metadata?.name ?? '').filter((n) => OUR_CLUSTER_ROLES.includes(n)).map((n) => `ClusterRole/${n}`);
    return [...secrets, ...leases, ...roles];
  };
  const remaining = await waitUntil('the garbage collector to remove what the webhook created', 60_000, async () => {
    const now = await left();
    return now.every((o) => o === `Secret/${USER_SECRET}`) ? now : undefined;
  }, 500);
  t.diagnostic(`after helm uninstall (${Date.now() - t0} ms), left in ${RELEASE_NAMESPACE} and cluster-wide: ${remaining.join(', ')} (the team's own Secret)`);
  assert.deepEqual(remaining, [`Secret/${USER_SECRET}`]);

  // The per-namespace setup the webhook applied stays (pods there still use it) until removed on purpose.
  assert.ok(await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: setUpNs }));
  const removed = await pando('setup-namespace', '--delete', setUpNs);
  assert.equal(removed.code, 0, removed.stderr + removed.stdout);
  assert.match(removed.stdout, new RegExp(`${setUpNs}: Secret ${LICENSE_SECRET_NAME} deleted`));
  // One read at a time: a read started early and rejected before its assert.rejects is an unhandled rejection.
  const reads = [
    () => core().readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: setUpNs }),
    () => rbac.readNamespacedRoleBinding({ name: SIDECAR_SERVICE_ACCOUNT, namespace: setUpNs }),
    () => core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: setUpNs }),
  ];
  for (const read of reads) await assert.rejects(read(), (err: unknown) => (err as { code?: number }).code === 404);
  const again = await pando('setup-namespace', '--delete', setUpNs);
  assert.equal(again.code, 0);
  assert.match(again.stdout, new RegExp(`${setUpNs}: Secret ${LICENSE_SECRET_NAME} absent`));
});
