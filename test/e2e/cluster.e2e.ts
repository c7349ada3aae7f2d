// The control plane itself: it answers, admits a pod (which stays Pending: there is no kubelet or
// scheduler), and its controller-manager turns a Deployment into pods.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { REPO_ROOT, startCluster, type Cluster } from '../cluster/harness.ts';
import { createNamespace, deleteNamespace, waitUntil } from './support.ts';

const k8sVersion = /^\s*k8s\.io\/kubernetes (v\S+)/m.exec(readFileSync(join(REPO_ROOT, 'test/cluster/go.mod'), 'utf8'))?.[1];

let cluster: Cluster;
let ns: string;
before(async () => {
  cluster = await startCluster();
  ns = await createNamespace(cluster, 'e2e-cluster');
});
after(async () => {
  if (ns) await deleteNamespace(cluster, ns);
  await cluster?.stop();
});

test('the API server answers with the version test/cluster/go.mod pins', async () => {
  assert.ok(k8sVersion, 'test/cluster/go.mod requires k8s.io/kubernetes');
  const r = await cluster.request('GET', '/version');
  assert.equal(r.status, 200);
  assert.equal(r.body.gitVersion, k8sVersion);
  const ready = await cluster.request('GET', '/readyz');
  assert.equal(ready.status, 200);
});

test('the admission plugins production relies on are enabled', async () => {
  // PodSecurity: a namespace enforcing "restricted" rejects a privileged pod.
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  const strict = await createNamespace(cluster, 'e2e-restricted', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  try {
    await assert.rejects(
      core.createNamespacedPod({
        namespace: strict,
        body: { metadata: { name: 'privileged' }, spec: { containers: [{ name: 'c', image: 'busybox', securityContext: { privileged: true } }] } },
      }),
      (err: any) => err.code === 403 && /violates PodSecurity/.test(String(err.body)),
    );
  } finally {
    await deleteNamespace(cluster, strict);
  }
  // ServiceAccount: an admitted pod gets the namespace's default ServiceAccount and its token volume.
  const pod = await core.createNamespacedPod({
    namespace: ns,
    body: { metadata: { name: 'sa-check' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } },
  });
  assert.equal(pod.spec?.serviceAccountName, 'default');
  assert.ok(pod.spec?.volumes?.some((v) => v.name.startsWith('kube-api-access-')), 'projected token volume added');
});

test('a pod is created and stays Pending (no scheduler, no kubelet)', async () => {
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespacedPod({
    namespace: ns,
    body: { metadata: { name: 'plain' }, spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } },
  });
  const pod = await core.readNamespacedPod({ name: 'plain', namespace: ns });
  assert.equal(pod.status?.phase, 'Pending');
  assert.equal(pod.spec?.nodeName, undefined);
  assert.deepEqual(pod.spec?.containers.map((c) => c.name), ['app']);
});

test('a Deployment makes the controller-manager create its pods', async () => {
  const apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'web' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'registry.invalid/web:1' }] } },
      },
    },
  });
  const pods = await waitUntil('2 pods of Deployment web', 60_000, async () => {
    const list = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=web' });
    return list.items.length === 2 ? list.items : undefined;
  });
  for (const pod of pods) {
    assert.equal(pod.metadata?.ownerReferences?.[0]?.kind, 'ReplicaSet');
    assert.match(pod.metadata?.name ?? '', /^web-[a-z0-9]+-[a-z0-9]+$/);
    assert.equal(pod.status?.phase, 'Pending');
  }
});
