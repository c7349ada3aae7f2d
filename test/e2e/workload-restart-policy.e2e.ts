// Issue 23 item 13 on the real API server: with watchdog.heal=restart (or restartStale) the chart
// grants the webhook's ServiceAccount get and patch of every Deployment, StatefulSet and DaemonSet,
// so a compromised webhook pod could rewrite any pod template. The chart's ValidatingAdmissionPolicy
// pando-webhook-workloads (charts-src/workload-restart-policy.ts) must let that account change only
// the restart annotations of the template, and only in namespaces the webhook configuration's
// namespaceSelector selects. The control comes first: under the chart's RBAC alone the same account
// changes a container image, and restarts workloads in kube-system and in an opted-out namespace.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { ANNOTATION_RESTARTED_AT, ANNOTATION_ROLLOUT_TARGET, LABEL_INJECTION } from '../../app/contract.ts';
import { kubeRestarter } from '../../app/controllers/heal.ts';
import { BIN_DIR, startCluster, type Cluster } from '../cluster/harness.ts';
import { applyObjects, deleteObjects, RBAC_KINDS, renderChart, serviceAccountKubeconfig, webhookServiceAccount } from './chart-render.ts';
import { RELEASE_NAMESPACE } from './product.ts';
import { createNamespace, deleteNamespace, uniqueName, waitUntil } from './support.ts';

const POLICY = 'pando-webhook-workloads';
const FIELD_MANAGER = 'e2e-workload-policy';
const EXCLUDED_NAMESPACE = 'kube-system';

let cluster: Cluster;
let ns: string;
let optedOut: string;
let excludedName: string;
let rbac: any[] = [];
let policy: any[] = [];
let identity: { path: string; cleanup(): void } | undefined;
let asWebhook: KubeConfig;

type Kind = 'Deployment' | 'StatefulSet' | 'DaemonSet';

function workload(kind: Kind, name: string, namespace: string): KubernetesObject & Record<string, any> {
  const labels = { app: name };
  const template = { metadata: { labels, annotations: { team: 'e2e' } }, spec: { containers: [{ name: 'app', image: 'registry.example/app:1.0.0' }] } };
  const spec: Record<string, unknown> = { selector: { matchLabels: labels }, template };
  if (kind !== 'DaemonSet') spec.replicas = 1;
  if (kind === 'StatefulSet') spec.serviceName = name;
  return { apiVersion: 'apps/v1', kind, metadata: { name, namespace, labels: { owner: 'e2e' } }, spec };
}

/** A merge patch as `kc`; the HTTP status, the API server's message and the stored (or dry-run) object. */
async function mergePatch(kc: KubeConfig, kind: Kind, name: string, namespace: string, body: Record<string, unknown>, dryRun = false): Promise<{ status: number; message: string; object?: any }> {
  try {
    const object = await KubernetesObjectApi.makeApiClient(kc).patch(
      { apiVersion: 'apps/v1', kind, ...body, metadata: { ...(body.metadata as object | undefined), name, namespace } } as KubernetesObject,
      undefined, dryRun ? 'All' : undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch,
    );
    return { status: 200, message: '', object };
  } catch (err) {
    const e = err as { code?: number; body?: string };
    const message = typeof e.body === 'string' ? (JSON.parse(e.body) as { message?: string }).message ?? '' : String(err);
    return { status: e.code ?? 0, message };
  }
}

const newImage = { spec: { template: { spec: { containers: [{ name: 'app', image: 'attacker.example/app:evil' }] } } } };
const restartStamp = () => ({ spec: { template: { metadata: { annotations: { [ANNOTATION_RESTARTED_AT]: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') } } } } });

before(async () => {
  cluster = await startCluster();
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: RELEASE_NAMESPACE } } }).catch(() => undefined);
  ns = await createNamespace(cluster, 'e2e-workload-policy');
  optedOut = await createNamespace(cluster, 'e2e-workload-opted-out', { [LABEL_INJECTION]: 'disabled' });
  const objects = renderChart(cluster, 'licenseKey=e2e-workload-policy,watchdog.heal=restart');
  rbac = objects.filter((o) => RBAC_KINDS.includes(o.kind));
  policy = objects.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy') && o.metadata.name === POLICY);
  assert.equal(policy.length, 2, 'with watchdog.heal=restart the chart renders the workload policy and its binding');
  deleteObjects(cluster, policy); // a crashed run's
  applyObjects(cluster, rbac);
  identity = await serviceAccountKubeconfig(cluster, RELEASE_NAMESPACE, webhookServiceAccount(objects));
  asWebhook = new KubeConfig();
  asWebhook.loadFromFile(identity.path);

  const objectsApi = KubernetesObjectApi.makeApiClient(cluster.kubeConfig);
  excludedName = uniqueName('e2e-workload-policy');
  for (const w of [
    workload('Deployment', 'web', ns), workload('StatefulSet', 'db', ns), workload('DaemonSet', 'agent', ns),
    workload('Deployment', 'web', optedOut), workload('Deployment', excludedName, EXCLUDED_NAMESPACE),
  ]) await objectsApi.create(w);
});

after(async () => {
  identity?.cleanup();
  if (cluster) {
    deleteObjects(cluster, [...policy, ...rbac]);
    if (excludedName) await cluster.kubeConfig.makeApiClient(AppsV1Api).deleteNamespacedDeployment({ name: excludedName, namespace: EXCLUDED_NAMESPACE }).catch(() => undefined);
    for (const n of [ns, optedOut]) if (n) await deleteNamespace(cluster, n);
  }
  await cluster?.stop();
});

test('control: under the heal RBAC alone the webhook\'s account may change a container image, and restart in kube-system and an opted-out namespace', async () => {
  const image = await mergePatch(asWebhook, 'Deployment', 'web', ns, newImage, true);
  assert.equal(image.status, 200, `RBAC alone admits the image change (dry run): ${image.message}`);
  assert.equal(image.object.spec.template.spec.containers[0].image, 'attacker.example/app:evil');
  for (const [name, namespace] of [[excludedName, EXCLUDED_NAMESPACE], ['web', optedOut]] as const) {
    const r = await mergePatch(asWebhook, 'Deployment', name, namespace, restartStamp(), true);
    assert.equal(r.status, 200, `${namespace}: ${r.message}`);
  }
});

test('with the chart\'s ValidatingAdmissionPolicy: only a restart, only where the webhook injects', async (t) => {
  applyObjects(cluster, policy);
  // The policy reaches the API server's admission through an informer: wait until it bites (dry runs).
  const refused = await waitUntil('the policy to refuse the image change', 30_000, async () => {
    const r = await mergePatch(asWebhook, 'Deployment', 'web', ns, newImage, true);
    return r.status === 403 ? r : undefined;
  });
  t.diagnostic(`refused: ${refused.message}`);
  assert.match(refused.message, /ValidatingAdmissionPolicy 'pando-webhook-workloads'.*denied request: pando-webhook may only change the pod template annotations kubectl\.kubernetes\.io\/restartedAt and pandocore\.xyz\/rollout-target/);
  // The policy type-checks against the workloads' schemas without a warning (kube-controller-manager's
  // validatingadmissionpolicy-status-controller writes the result into its status).
  const typeChecking = await waitUntil('the policy\'s type check', 30_000, async () => {
    const r = await cluster.request('GET', `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/${POLICY}`);
    return r.status === 200 && r.body.status?.typeChecking ? r.body.status.typeChecking : undefined;
  });
  assert.deepEqual(typeChecking.expressionWarnings ?? [], [], 'type-check warnings');
  const real = await mergePatch(asWebhook, 'Deployment', 'web', ns, newImage);
  assert.equal(real.status, 403, real.message);
  const apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
  assert.equal((await apps.readNamespacedDeployment({ name: 'web', namespace: ns })).spec?.template.spec?.containers[0]?.image, 'registry.example/app:1.0.0', 'the image is unchanged');

  // The other ways to rewrite what runs, or to get rid of the workload, refused as well.
  const others: [string, Record<string, unknown>, RegExp][] = [
    ['a third template annotation', { spec: { template: { metadata: { annotations: { 'sidecar.example/inject': 'false' } } } } }, /may only change the pod template annotations/],
    ['a template label', { spec: { template: { metadata: { labels: { app: 'web', extra: 'x' } } } } }, /may only change the pod template annotations/],
    ['replicas', { spec: { replicas: 0 } }, /may only change the pod template annotations/],
    ['the workload\'s own label', { metadata: { labels: { owner: 'attacker' } } }, /may not change a workload's own labels/],
    ['a finalizer', { metadata: { finalizers: ['example.com/block'] } }, /may not change a workload's own labels/],
    ['an owner (garbage collection)', { metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'gone', uid: '00000000-0000-0000-0000-000000000000' }] } }, /may not change a workload's own labels/],
  ];
  for (const [what, body, message] of others) {
    const r = await mergePatch(asWebhook, 'Deployment', 'web', ns, body, true);
    assert.equal(r.status, 403, `${what}: ${r.message}`);
    assert.match(r.message, message, what);
  }

  // The admin is not matched: the policy binds only the webhook's account.
  assert.equal((await mergePatch(cluster.kubeConfig, 'Deployment', 'web', ns, newImage, true)).status, 200, 'the admin may still change the image');

  // What the watchdog does: app/controllers/heal.ts's restarter, as the webhook's account, on each kind.
  const restarter = kubeRestarter(asWebhook, FIELD_MANAGER);
  // A minute ago: kubectl rollout restart below refuses a stamp equal to the one already there
  // ("already been triggered within the past second").
  const at = new Date(Date.now() - 60_000);
  for (const [kind, name] of [['Deployment', 'web'], ['StatefulSet', 'db'], ['DaemonSet', 'agent']] as const) {
    await restarter.restart({ kind, name, namespace: ns }, at);
    const stored = await restarter.lastRestart({ kind, name, namespace: ns });
    assert.equal(stored, Math.floor(at.getTime() / 1000) * 1000, `${kind} restarted`);
  }
  // kubectl rollout restart itself (a strategic merge patch of the same annotation), as the webhook's account.
  for (const target of ['deployment/web', 'statefulset/db', 'daemonset/agent']) {
    const r = spawnSync(join(BIN_DIR, 'kubectl'), ['--kubeconfig', identity!.path, 'rollout', 'restart', target, '-n', ns], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `kubectl rollout restart ${target}: ${r.stderr}`);
  }
  // The DaemonSet's template generation (an object annotation the API server bumps) moved, and was allowed.
  const ds = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });
  t.diagnostic(`DaemonSet deprecated.daemonset.template.generation after the restart: ${ds.metadata?.annotations?.['deprecated.daemonset.template.generation']}`);
  assert.equal(ds.metadata?.annotations?.['deprecated.daemonset.template.generation'], '3', 'created 1, two restarts');
  // The health-gated rollout's annotation, with a restart stamp, as kubectl rollout restart would write it.
  const rollout = await mergePatch(asWebhook, 'Deployment', 'web', ns, { spec: { template: { metadata: { annotations: { [ANNOTATION_ROLLOUT_TARGET]: '1.0.0/abcdef012345', [ANNOTATION_RESTARTED_AT]: '2026-12-06T07:00:00Z' } } } } });
  assert.equal(rollout.status, 200, rollout.message);

  // Where the webhook never injects, not even a restart.
  for (const [name, namespace] of [[excludedName, EXCLUDED_NAMESPACE], ['web', optedOut]] as const) {
    const r = await mergePatch(asWebhook, 'Deployment', name, namespace, restartStamp(), true);
    assert.equal(r.status, 403, `${namespace}: ${r.message}`);
    assert.match(r.message, new RegExp(`may not change workloads in namespace ${namespace}: the webhook configuration's namespaceSelector leaves it out`));
  }
});
