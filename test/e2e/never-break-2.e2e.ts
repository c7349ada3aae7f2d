// Issue 15 (and issue 19 item 2) on the real API server: what a pod and its namespace demand of a
// sidecar. Each case creates a control pod without our label first (it must be accepted), then the
// labelled pod: it must be accepted too, and the stored object shows the outcome. The webhook runs
// with the chart's env and the chart's own RBAC (a token of its ServiceAccount).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { CoreV1Api, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_STATUS, LABEL_PROTECT, LABEL_PROTECT_NAMESPACE, LICENSE_SECRET_NAME, SIDECAR_NAME, SIDECAR_SERVICE_ACCOUNT, STATUS_INJECTED } from '../../app/contract.ts';
import { kubeReadinessFetcher } from '../../app/kube/namespaces.ts';
import { REPO_ROOT, type Cluster } from '../cluster/harness.ts';
import { serviceAccountKubeconfig } from './chart-render.ts';
import { deployProduct, prepare, RELEASE_NAMESPACE, setupProtectedNamespace, tearDown, type ChartValues, type Deployed } from './product.ts';
import { createNamespace, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-never-break-2';
const PULL_SECRET = 'pando-registry';
const SIDECAR_IMAGE = { repository: 'registry.example.invalid/pandocore/sidecar', tag: '1.0.0' };
const PROTECT = { [LABEL_PROTECT]: 'true' };
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
let webhook: WebhookProcess | undefined;
let identity: { path: string; cleanup(): void } | undefined;
const namespaces: string[] = [];

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);

type Resources = V1Container['resources'];
const APP: Resources = { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } };

function pod(name: string, labels: Record<string, string>, spec: Partial<V1Pod['spec']> = {}, resources: Resources = APP): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels },
    spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1', resources }], ...spec },
  };
}

const sidecarOf = (p: V1Pod) => [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].find((c) => c.name === SIDECAR_NAME);
const injected = (p: V1Pod) => p.metadata?.annotations?.[ANNOTATION_STATUS] === STATUS_INJECTED && sidecarOf(p) !== undefined;

async function create(ns: string, body: V1Pod) {
  return cluster.request('POST', `/api/v1/namespaces/${ns}/pods`, body);
}

/** The control pod (no label) is accepted; the labelled one too. Returns the labelled answer. */
async function controlThenLabelled(ns: string, name: string, spec: Partial<V1Pod['spec']> = {}, resources: Resources = APP) {
  const control = await create(ns, pod(`${name}-control`, {}, spec, resources));
  assert.equal(control.status, 201, `control pod accepted: ${JSON.stringify(control.body)}`);
  const labelled = await create(ns, pod(name, PROTECT, spec, resources));
  assert.equal(labelled.status, 201, `labelled pod accepted: ${JSON.stringify(labelled.body)}`);
  for (const w of labelled.warnings) assert.ok(w.length <= 120 && w.startsWith('pandocore:'), `short, prefixed warning: ${w}`);
  return labelled;
}

async function pullSecret(namespace: string) {
  const config = Buffer.from(JSON.stringify({ auths: { 'registry.example.invalid': { auth: Buffer.from('e2e:e2e').toString('base64') } } })).toString('base64');
  await core().createNamespacedSecret({ namespace, body: { metadata: { name: PULL_SECRET }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': config } } });
}

async function protectedNamespace(prefix: string): Promise<string> {
  const ns = await createNamespace(cluster, prefix);
  namespaces.push(ns);
  await setupProtectedNamespace(cluster, ns, LICENSE);
  await pullSecret(ns);
  return ns;
}

async function limitRange(ns: string, name: string, limits: unknown[]) {
  await core().createNamespacedLimitRange({ namespace: ns, body: { metadata: { name }, spec: { limits } } as never });
}

async function startAsChart(extraEnv: Record<string, string> = {}) {
  await webhook?.stop();
  webhook = await startWebhook(tls, { ...deployed!.env, KUBECONFIG: identity!.path, ...extraEnv }, port);
}

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: SIDECAR_IMAGE }));
  values = { ...values, extra: { sidecar: { image: SIDECAR_IMAGE, imagePullSecrets: [PULL_SECRET] } } };
  deployed = await deployProduct(cluster, values);
  assert.equal(deployed.env.PANDO_NAMESPACE_CHECK, 'true');
  assert.equal(deployed.env.PANDO_SIDECAR_IMAGE_PULL_SECRETS, PULL_SECRET, 'the chart passes sidecar.imagePullSecrets');
  identity = await serviceAccountKubeconfig(cluster, RELEASE_NAMESPACE, 'pando-webhook');
  await startAsChart();
});

after(async () => {
  identity?.cleanup();
  await tearDown({ cluster, tls, webhook, deployed, namespaces });
});

test('15.1 Windows by spec.os.name, by node selector, by required affinity: created without the sidecar (unsupported-os)', async () => {
  const ns = await protectedNamespace('e2e-windows');
  const cases: Array<[string, Partial<V1Pod['spec']>, string]> = [
    ['os-name', { os: { name: 'windows' } }, 'spec.os.name'],
    ['node-selector', { nodeSelector: { 'kubernetes.io/os': 'windows' } }, 'nodeSelector'],
    ['affinity', { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['windows'] }] }] } } } }, 'required node affinity'],
  ];
  for (const [name, spec, source] of cases) {
    const r = await controlThenLabelled(ns, `windows-${name}`, spec);
    assert.ok(!injected(r.body), `${name}: not injected`);
    assert.ok(r.warnings.some((w) => w.includes('the sidecar runs on Linux only') && w.includes(source)), `${name}: warned; got ${JSON.stringify(r.warnings)}`);
  }
  // What the skip prevents: the same Windows pod with a container that has our securityContext.
  const broken = pod('windows-with-linux-context', {}, { os: { name: 'windows' } });
  broken.spec!.containers.push({ name: 'linux-like', image: 'x:1', securityContext: { runAsUser: 65532, readOnlyRootFilesystem: true } });
  const refused = await create(ns, broken);
  assert.equal(refused.status, 422, 'a Windows pod with a Linux securityContext is refused');
  assert.match(refused.body.message, /cannot be set for a windows pod/);
});

test('15.2 LimitRange: max between the sidecar request and limit is fitted; below the request, ratio, and a Pod max are handled', async (t) => {
  await t.test('Container max memory 96Mi (sidecar 64Mi/128Mi): injected with its limit lowered to 96Mi', async () => {
    const ns = await protectedNamespace('e2e-lr-fit');
    await limitRange(ns, 'container-max', [{ type: 'Container', max: { memory: '96Mi' } }]);
    const r = await controlThenLabelled(ns, 'fit', {}, { requests: { cpu: '100m', memory: '32Mi' }, limits: { cpu: '500m', memory: '96Mi' } });
    assert.ok(injected(r.body), 'injected');
    assert.equal(sidecarOf(r.body)!.resources!.limits!.memory, '96Mi');
    assert.ok(r.warnings.some((w) => w.includes('memory limit lowered from 128Mi to 96Mi')), JSON.stringify(r.warnings));
  });
  await t.test('Container max memory 48Mi, below the sidecar request: created without it (limit-range)', async () => {
    const ns = await protectedNamespace('e2e-lr-small');
    await limitRange(ns, 'tiny', [{ type: 'Container', max: { memory: '48Mi' } }]);
    const r = await controlThenLabelled(ns, 'small', {}, { requests: { cpu: '100m', memory: '32Mi' }, limits: { cpu: '500m', memory: '48Mi' } });
    assert.ok(!injected(r.body), 'not injected');
    assert.ok(r.warnings.some((w) => w.includes('LimitRange "tiny"') && w.includes('max memory 48Mi')), JSON.stringify(r.warnings));
  });
  await t.test('maxLimitRequestRatio cpu 2 (sidecar 50m/200m): injected with its cpu limit at 100m', async () => {
    const ns = await protectedNamespace('e2e-lr-ratio');
    await limitRange(ns, 'ratio', [{ type: 'Container', maxLimitRequestRatio: { cpu: '2' } }]);
    const r = await controlThenLabelled(ns, 'ratio', {}, { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '200m', memory: '256Mi' } });
    assert.ok(injected(r.body), 'injected');
    assert.equal(sidecarOf(r.body)!.resources!.limits!.cpu, '100m');
  });
  await t.test('type Pod max memory 300Mi (app 256Mi + sidecar 128Mi): created without it (limit-range)', async () => {
    const ns = await protectedNamespace('e2e-lr-pod');
    await limitRange(ns, 'per-pod', [{ type: 'Pod', max: { memory: '300Mi' } }]);
    const r = await controlThenLabelled(ns, 'pod-max');
    assert.ok(!injected(r.body), 'not injected');
    assert.ok(r.warnings.some((w) => w.includes('LimitRange "per-pod": Pod max memory 300Mi')), JSON.stringify(r.warnings));
  });
});

test('15.5 LimitRange defaults (issue 23 item 5): LimitRanger defaults the injected sidecar again before it validates the pod', async (t) => {
  // The API server runs the mutating chain again after a webhook changed the pod (k8s.io/apiserver
  // pkg/admission/reinvocation.go: "reinvoke all in-tree plugins"), LimitRanger's Admit included:
  // it fills the sidecar's missing requests and limits from the LimitRange's default/defaultRequest
  // (which the API server defaults from max and min), and its Validate then judges that pod.
  const limitRangerAnnotation = 'kubernetes.io/limit-ranger';
  await t.test('Container max ephemeral-storage 1Gi, no default: injected; the API server gives the sidecar its limit', async () => {
    const ns = await protectedNamespace('e2e-lr-max-default');
    await limitRange(ns, 'storage-max', [{ type: 'Container', max: { 'ephemeral-storage': '1Gi' } }]);
    const stored = await core().readNamespacedLimitRange({ name: 'storage-max', namespace: ns });
    assert.equal(stored.spec?.limits[0]?._default?.['ephemeral-storage'], '1Gi', 'the API server defaulted default from max');
    const r = await controlThenLabelled(ns, 'storage-max');
    const control = (await core().readNamespacedPod({ name: 'storage-max-control', namespace: ns }));
    assert.equal(control.spec?.containers[0]!.resources?.limits?.['ephemeral-storage'], '1Gi', 'control: the app container defaulted');
    assert.ok(injected(r.body), `injected; got ${JSON.stringify(r.warnings)}`);
    const sidecar = sidecarOf(r.body)!;
    assert.equal(sidecar.resources!.limits!['ephemeral-storage'], '1Gi', 'the sidecar defaulted by LimitRanger after our patch');
    assert.equal(sidecar.resources!.requests!['ephemeral-storage'], '1Gi');
    assert.match(r.body.metadata.annotations[limitRangerAnnotation], /ephemeral-storage limit for init container pando-sidecar/, 'LimitRanger\'s second Admit names the sidecar');
    t.diagnostic(`labelled pod: 201, sidecar ephemeral-storage ${sidecar.resources!.requests!['ephemeral-storage']}/${sidecar.resources!.limits!['ephemeral-storage']}; ${limitRangerAnnotation}: ${r.body.metadata.annotations[limitRangerAnnotation]}`);
  });
  await t.test('Container default ephemeral-storage 1Gi + Pod max 1536Mi: created without the sidecar (limit-range), not refused', async () => {
    const ns = await protectedNamespace('e2e-lr-default-pod-max');
    // Raw JSON: the client's serializer knows `default` only as `_default` and drops the key otherwise.
    const created = await cluster.request('POST', `/api/v1/namespaces/${ns}/limitranges`, {
      apiVersion: 'v1', kind: 'LimitRange', metadata: { name: 'storage' },
      spec: { limits: [{ type: 'Container', default: { 'ephemeral-storage': '1Gi' } }, { type: 'Pod', max: { 'ephemeral-storage': '1536Mi' } }] },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.spec.limits[0].defaultRequest['ephemeral-storage'], '1Gi', 'the API server defaulted defaultRequest from default');
    // Control: a second container without ephemeral-storage (as our sidecar) is defaulted to 1Gi and
    // the pod's 2Gi exceeds the Pod max: the API server refuses it.
    const two = pod('storage-two-containers', {});
    two.spec!.containers.push({ name: 'second', image: 'registry.example.invalid/app:1', resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } } });
    const refused = await create(ns, two);
    assert.equal(refused.status, 403, `control with a second container refused: ${JSON.stringify(refused.body)}`);
    assert.match(refused.body.message, /maximum ephemeral-storage usage per Pod is 1536Mi, but limit is 2Gi/);
    t.diagnostic(`control with a second container: ${refused.status} ${refused.body.message}`);
    const r = await controlThenLabelled(ns, 'storage-pod-max');
    assert.ok(!injected(r.body), 'not injected');
    assert.ok(r.warnings.some((w) => w.includes('LimitRange "storage"') && w.includes('Pod max ephemeral-storage 1536Mi')), JSON.stringify(r.warnings));
    t.diagnostic(`labelled pod: ${r.status}, warnings ${JSON.stringify(r.warnings)}`);
  });
});

test('15.3 pull Secrets: present, the pod carries them (its own kept); missing, skipped with the fix; after pando setup-namespace, injected', async () => {
  const ns = await protectedNamespace('e2e-pull');
  const own = pod('own-pull', PROTECT);
  own.spec!.imagePullSecrets = [{ name: 'app-registry' }];
  const created = await core().createNamespacedPod({ namespace: ns, body: own });
  assert.ok(injected(created));
  assert.deepEqual(created.spec?.imagePullSecrets?.map((s) => s.name), ['app-registry', PULL_SECRET], 'its own kept, ours added');
  assert.equal(sidecarOf(created)!.image, `${SIDECAR_IMAGE.repository}:${SIDECAR_IMAGE.tag}`);

  const bare = await createNamespace(cluster, 'e2e-pull-missing');
  namespaces.push(bare);
  await setupProtectedNamespace(cluster, bare, LICENSE);
  const r = await controlThenLabelled(bare, 'no-pull-secret');
  assert.ok(!injected(r.body), 'not injected: the sidecar image could never be pulled');
  assert.ok(r.warnings.some((w) => w.includes(`pull Secret ${PULL_SECRET}`)), JSON.stringify(r.warnings));
  assert.ok(r.warnings.some((w) => w.includes(`pando setup-namespace ${bare}`)), 'the fix');

  await pullSecret(RELEASE_NAMESPACE).catch(() => undefined);
  const run = promisify(execFile);
  await run(process.execPath, [join(REPO_ROOT, 'app/cli/main.ts'), 'setup-namespace', bare], {
    cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', KUBECONFIG: cluster.kubeconfigPath, HOME: process.env.HOME ?? tmpdir() }, timeout: 60_000,
  });
  const copied = await core().readNamespacedSecret({ name: PULL_SECRET, namespace: bare });
  assert.equal(copied.type, 'kubernetes.io/dockerconfigjson', 'copied with its type');
  let attempt = 0;
  const after = await waitUntil('a pod injected after setup-namespace', 15_000, async () => {
    const p = await core().createNamespacedPod({ namespace: bare, body: pod(`after-setup-${attempt++}`, PROTECT) });
    return injected(p) ? p : undefined;
  }, 1000);
  assert.ok(after.spec?.imagePullSecrets?.some((s) => s.name === PULL_SECRET));
});

test('19.2 readiness is fresh: deleting the setup, then a pod 3 s later, is not broken; a failed lookup skips (namespace-check-failed) and is counted', async (t) => {
  const ns = await protectedNamespace('e2e-fresh');
  assert.ok(injected(await core().createNamespacedPod({ namespace: ns, body: pod('while-ready', PROTECT) })), 'injected while set up');

  // API-server cost of one lookup (what each namespace with labelled pods costs per TTL).
  const fetch = kubeReadinessFetcher(cluster.kubeConfig, [PULL_SECRET]);
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) await fetch(ns);
  const perLookupMs = (performance.now() - t0) / 20;
  const lookupsBefore = await webhook!.metric('pandocore_namespace_lookups_total');
  // 24 labelled pods over about 6 s: with a 2 s TTL, about 3 lookups, not 24.
  const burstStart = Date.now();
  for (let i = 0; i < 24; i++) {
    await core().createNamespacedPod({ namespace: ns, body: pod(`burst-${i}`, PROTECT) });
    await sleep(250);
  }
  const burstSeconds = (Date.now() - burstStart) / 1000;
  const lookups = (await webhook!.metric('pandocore_namespace_lookups_total')) - lookupsBefore;
  t.diagnostic(`one lookup = 4 API requests (2 Secret GETs, 1 ServiceAccount GET, 1 LimitRange LIST), ${perLookupMs.toFixed(1)} ms; 24 pods in ${burstSeconds.toFixed(1)} s cost ${lookups} lookups (TTL 2 s)`);
  assert.ok(lookups >= 1, 'the TTL expires: answers are re-checked');
  assert.ok(lookups <= Math.ceil(burstSeconds / 2) + 2, `about one lookup per 2 s, not one per pod (${lookups})`);

  await core().deleteNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: ns });
  await core().deleteNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: ns });
  await sleep(3000);
  const r = await controlThenLabelled(ns, 'after-delete');
  assert.ok(!injected(r.body), 'not injected: ServiceAccount and Secret are gone');
  assert.equal(r.body.spec.serviceAccountName, 'default');

  // A lookup the API server refuses (the chart's ClusterRoleBinding removed): skipped, warned, counted.
  const bindingPath = '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/pando-webhook';
  const binding = (await cluster.request('GET', bindingPath)).body;
  const other = await protectedNamespace('e2e-forbidden');
  assert.equal((await cluster.request('DELETE', bindingPath)).status, 200);
  try {
    const refused = await waitUntil('a review whose lookup is forbidden', 15_000, async () => {
      const answer = await create(other, pod(`forbidden-${Date.now()}`, PROTECT));
      return answer.warnings.some((w) => w.includes('could not be checked (forbidden)')) ? answer : undefined;
    }, 1000);
    assert.equal(refused.status, 201, 'created');
    assert.ok(!injected(refused.body), 'without the sidecar');
    assert.ok((await webhook!.metric('pandocore_namespace_lookup_errors_total', { reason: 'forbidden' })) >= 1, 'counted');
    assert.match(webhook!.output(), /PANDO_NAMESPACE_LOOKUP_FAILED/, 'logged with its code');
  } finally {
    const { metadata, roleRef, subjects } = binding;
    await cluster.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: metadata.name, labels: metadata.labels }, roleRef, subjects });
  }
});

test('15.4 pod-level resources without room: skipped by default; with sidecar.podResources grow, injected and grown', async () => {
  const ns = await protectedNamespace('e2e-pod-level');
  const tight = { resources: { limits: { cpu: '150m', memory: '512Mi' } } };
  const appResources: Resources = { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '150m', memory: '256Mi' } };
  const skipped = await controlThenLabelled(ns, 'tight-skip', tight, appResources);
  assert.ok(!injected(skipped.body), 'skip (the default): not injected');
  // An init container's peak counts with the native sidecar beside it (AggregateContainerRequests):
  // 1 cpu + 50m > 1020m, although the containers' plain sum (100m + 50m) would fit.
  const peak = { resources: { requests: { cpu: '1020m' }, limits: { cpu: '2' } }, initContainers: [{ name: 'migrate', image: 'x:1', resources: { requests: { cpu: '1' }, limits: { cpu: '1' } } }] };
  const peaked = await controlThenLabelled(ns, 'init-peak', peak, appResources);
  assert.ok(!injected(peaked.body), 'an init container\'s peak leaves no room: not injected');
  const forced = pod('init-peak-with-sidecar', {}, peak, appResources);
  forced.spec!.initContainers = [{ name: 'side', image: 'x:1', restartPolicy: 'Always', resources: { requests: { cpu: '50m' }, limits: { cpu: '200m' } } }, ...forced.spec!.initContainers!];
  const refused = await create(ns, forced);
  assert.equal(refused.status, 422, `what the skip prevents: ${JSON.stringify(refused.body.message)}`);

  await startAsChart({ PANDO_SIDECAR_POD_RESOURCES: 'grow' });
  const grown = await controlThenLabelled(ns, 'tight-grow', tight, appResources);
  assert.ok(injected(grown.body), 'grow: injected');
  assert.deepEqual(grown.body.spec.resources.limits, { cpu: '350m', memory: '640Mi' }, 'pod-level limits grown by the sidecar limits');
  assert.ok(grown.warnings.some((w) => w.includes('pod-level resources grown')), JSON.stringify(grown.warnings));
});

test('15.3 namespaceSetup.auto copies the pull Secret with the license, with the chart\'s RBAC', async () => {
  await pullSecret(RELEASE_NAMESPACE).catch(() => undefined);
  deployed = await deployProduct(cluster, { ...values, extra: { ...values.extra, namespaceSetup: { auto: true } } });
  assert.equal(deployed.env.PANDO_NAMESPACE_SETUP_AUTO, 'true');
  await startAsChart({ PANDO_POD_NAME: 'pando-webhook-e2e-0' });
  const ns = await createNamespace(cluster, 'e2e-auto-pull', { [LABEL_PROTECT_NAMESPACE]: 'true' });
  namespaces.push(ns);
  const copied = await waitUntil('the pull Secret copied by the namespace setup', 20_000, async () => core().readNamespacedSecret({ name: PULL_SECRET, namespace: ns }), 500);
  assert.equal(copied.type, 'kubernetes.io/dockerconfigjson');
  const original = await core().readNamespacedSecret({ name: PULL_SECRET, namespace: RELEASE_NAMESPACE });
  assert.deepEqual(copied.data, original.data);
  let attempt = 0;
  const p = await waitUntil('a pod injected in the auto-set-up namespace', 20_000, async () => {
    const created = await core().createNamespacedPod({ namespace: ns, body: pod(`auto-${attempt++}`, PROTECT) });
    return injected(created) ? created : undefined;
  }, 1000);
  assert.ok(p.spec?.imagePullSecrets?.some((s) => s.name === PULL_SECRET));
});
