// `pando setup-namespace` and `pando doctor` against the real control plane (issue 7): a healthy
// install passes; a stopped webhook, an excluded namespace, a missing license Secret, pods created
// while the webhook was down and pods left stale by an upgrade are each reported with their fix,
// and running the printed fix makes doctor pass again. The CLI runs as a process, as users run it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AppsV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_STATUS, ANNOTATION_VERSION, LABEL_PROTECT, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, STATUS_INJECTED } from '../../app/contract.ts';
import { BIN_DIR, REPO_ROOT, type Cluster } from '../cluster/harness.ts';
import { deployProduct, prepare, RELEASE, RELEASE_NAMESPACE, tearDown, type ChartValues, type Deployed } from './product.ts';
import { createNamespace, runPando, uniqueName, waitUntil, type Ran } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-cli-license-2222-3333';
const REPOSITORY = 'registry.example.invalid/pandocore/sidecar';
const V1 = '1.0.0';
const V2 = '1.1.0';

let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let webhook: WebhookProcess | undefined;
let deployed: Deployed | undefined;
let values: ChartValues;
let ns: string;
const excludedNs = uniqueName('e2e-cli-excluded');
const namespaces: string[] = [];

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);
const apps = () => cluster.kubeConfig.makeApiClient(AppsV1Api);
const run = promisify(execFile);
const pando = (...args: string[]): Promise<Ran> => runPando(cluster.kubeconfigPath, args);

interface CheckLine {
  status: string;
  title: string;
  message: string;
  fixes: string[];
}

/** doctor -o json, parsed; the text form is checked separately. */
async function doctor(...args: string[]): Promise<{ code: number; checks: Map<string, CheckLine>; raw: Ran }> {
  const r = await pando('doctor', '-o', 'json', ...args);
  assert.ok(r.code === 0 || r.code === 1, `doctor ran (exit ${r.code}): ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { ok: boolean; checks: Array<CheckLine & { id: string }> };
  assert.equal(out.ok, r.code === 0, 'exit code and "ok" agree');
  return { code: r.code, checks: new Map(out.checks.map((c) => [c.id, c])), raw: r };
}

function failing(checks: Map<string, CheckLine>): string[] {
  return [...checks].filter(([, c]) => c.status === 'fail').map(([id]) => id);
}

function kubectl(...args: string[]): string {
  const r = spawnSync(join(BIN_DIR, 'kubectl'), args, { encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** Runs a printed fix that is a kubectl command (only the command, before any explanation). */
function runFix(fix: string): void {
  const m = /^kubectl (.+?)(?:\s{3}.*)?$/.exec(fix);
  assert.ok(m, `the fix is a kubectl command: ${fix}`);
  kubectl(...m[1]!.trim().split(/\s+/));
}

const PROTECT = { [LABEL_PROTECT]: 'true' };

async function createDeployment(namespace: string, name: string, replicas: number): Promise<void> {
  await apps().createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name },
      spec: {
        replicas,
        // No kubelet: pods never become available, so a RollingUpdate would wait forever.
        strategy: { type: 'Recreate' },
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name, ...PROTECT } }, spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }] } },
      },
    },
  });
}

async function podsOf(namespace: string, app: string, count: number, ok: (p: V1Pod) => boolean = () => true): Promise<V1Pod[]> {
  return waitUntil(`${count} pods of ${app}`, 60_000, async () => {
    const items = (await core().listNamespacedPod({ namespace, labelSelector: `app=${app}` })).items.filter((p) => !p.metadata?.deletionTimestamp);
    return items.length === count && items.every(ok) ? items : undefined;
  });
}

const injectedWith = (version: string) => (p: V1Pod) => p.metadata?.annotations?.[ANNOTATION_STATUS] === STATUS_INJECTED && p.metadata?.annotations?.[ANNOTATION_VERSION] === version;

before(async () => {
  ({ cluster, tls, port, values } = await prepare({
    licenseKey: LICENSE,
    image: { repository: REPOSITORY, tag: V1 },
    excludedNamespaces: ['kube-system', 'kube-public', 'kube-node-lease', excludedNs],
  }));
  deployed = await deployProduct(cluster, values);
  webhook = await startWebhook(tls, deployed.env, port);
});

after(() => tearDown({ cluster, tls, webhook, deployed, namespaces }));

test('setup-namespace creates the three objects by server-side apply, again is unchanged, and never prints the key', async () => {
  ns = await createNamespace(cluster, 'e2e-cli');
  namespaces.push(ns);
  const first = await pando('setup-namespace', ns);
  assert.equal(first.code, 0, first.stderr + first.stdout);
  assert.match(first.stdout, new RegExp(`^ok +${ns}: ServiceAccount pando-sidecar created$`, 'm'));
  assert.match(first.stdout, new RegExp(`^ok +${ns}: RoleBinding pando-sidecar created$`, 'm'));
  assert.match(first.stdout, new RegExp(`^ok +${ns}: Secret ${LICENSE_SECRET_NAME} created$`, 'm'));
  const again = await pando('setup-namespace', ns, '-o', 'json');
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout).results.map((r: { action: string }) => r.action), ['unchanged', 'unchanged', 'unchanged']);
  for (const out of [first, again]) assert.ok(!`${out.stdout}${out.stderr}`.includes(LICENSE), 'the license key is never printed');
  const secret = await core().readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: ns });
  assert.equal(Buffer.from(secret.data![LICENSE_SECRET_KEY]!, 'base64').toString(), LICENSE, 'copied from the release Secret');
  assert.ok(secret.metadata?.managedFields?.some((m) => m.manager === 'pando' && m.operation === 'Apply'), 'server-side apply by field manager pando');

  const missing = await pando('setup-namespace', 'e2e-cli-no-such-namespace');
  assert.equal(missing.code, 2);
  assert.match(missing.stdout, /namespace e2e-cli-no-such-namespace does not exist\n +fix: kubectl create namespace e2e-cli-no-such-namespace/);
  const wrongRelease = await pando('setup-namespace', ns, '--release-namespace', 'e2e-cli-nowhere');
  assert.equal(wrongRelease.code, 2);
  assert.match(wrongRelease.stderr, /the release's Secret pando-license is missing in namespace e2e-cli-nowhere\n +fix: /);
});

test('doctor: a healthy install passes every check (text and json)', async (t) => {
  await createDeployment(ns, 'web', 2);
  await podsOf(ns, 'web', 2, injectedWith(V1));
  const text = await pando('doctor', '-n', ns);
  t.diagnostic(`\n${text.stdout}`);
  assert.equal(text.code, 0, text.stdout + text.stderr);
  assert.doesNotMatch(text.stdout, /FAIL|\u001b\[/);
  assert.match(text.stdout, /all checks passed/);
  const { checks } = await doctor('-n', ns);
  for (const id of ['webhook-configuration', 'webhook-endpoint', 'ca-bundle', 'namespace', 'namespace-setup', 'injection-probe', 'uninjected-pods', 'stale-pods']) {
    assert.equal(checks.get(id)?.status, 'ok', `${id}: ${JSON.stringify(checks.get(id))}`);
  }
  // The harness's serving certificate lives two days: within 30 days of expiry, a warning (exit 0).
  const expiry = checks.get('certificate-expiry')!;
  assert.equal(expiry.status, 'warn');
  assert.match(expiry.message, /^the certificate expires in [01] days? \(/);
  assert.match(expiry.fixes[0]!, /^renew the certificate served at https:\/\/127\.0\.0\.1:/);
  assert.match(checks.get('injection-probe')!.message, new RegExp(`gets sidecar ${V1.replace(/\./g, '\\.')}`));
  assert.match(checks.get('ca-bundle')!.message, /for 127\.0\.0\.1 verifies against caBundle/);
  const pod = (await podsOf(ns, 'web', 2))[0]!.metadata!.name!;
  const one = await doctor('-n', ns, '--pod', pod);
  assert.equal(one.code, 0);
  assert.equal(one.checks.get('pod-injection')?.status, 'ok');
  assert.match(one.checks.get('pod-injection')!.message, /current/);
});

test('doctor: a missing license Secret is reported with pando setup-namespace, which fixes it', async (t) => {
  await core().deleteNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: ns });
  const broken = await doctor('-n', ns);
  t.diagnostic(`\n${(await pando('doctor', '-n', ns)).stdout}`);
  assert.equal(broken.code, 1);
  const setup = broken.checks.get('namespace-setup')!;
  assert.equal(setup.status, 'fail');
  assert.match(setup.message, /lacks Secret pando-license/);
  assert.deepEqual(setup.fixes, [`pando setup-namespace ${ns}`]);
  // The webhook checks the namespace too (namespaceCheck): once its cache of a ready namespace (30 s)
  // expires, the dry-run pod says so in the webhook's own words.
  const probe = await waitUntil('the dry-run pod to be refused the sidecar', 45_000, async () => {
    const c = (await doctor('-n', ns)).checks.get('injection-probe')!;
    return c.status === 'fail' ? c : undefined;
  }, 2000);
  assert.match(probe.message, new RegExp(`is not injected: sidecar not injected: namespace ${ns}\\b.*Secret pando-license`));
  assert.match(probe.fixes[0]!, new RegExp(`^pando setup-namespace ${ns}`));

  const fixed = await pando('setup-namespace', ns);
  assert.match(fixed.stdout, new RegExp(`${ns}: Secret pando-license created`));
  assert.match(fixed.stdout, new RegExp(`${ns}: ServiceAccount pando-sidecar unchanged`));
  // The webhook remembers a namespace that was not ready for a few seconds.
  await waitUntil('doctor to pass after setup-namespace', 30_000, async () => (await doctor('-n', ns)).code === 0, 1000);
});

test('doctor: an excluded namespace is reported with the chart change that includes it', async () => {
  await core().createNamespace({ body: { metadata: { name: excludedNs } } });
  namespaces.push(excludedNs);
  const r = await doctor('-n', excludedNs);
  assert.equal(r.code, 1);
  assert.deepEqual(failing(r.checks), ['namespace']);
  const check = r.checks.get('namespace')!;
  assert.match(check.message, new RegExp(`namespace ${excludedNs} is excluded from injection`));
  assert.equal(check.fixes.length, 1);
  assert.match(check.fixes[0]!, /^helm upgrade pando-webhook oci:\/\/REGISTRY\/charts\/pando-webhook -n pando-system --reuse-values --set 'excludedNamespaces=\{kube-system,kube-public,kube-node-lease\}'$/);
});

test('doctor: a stopped webhook, then the pods created while it was down, each with the fix that works', async (t) => {
  await webhook!.stop();
  webhook = undefined;
  const down = await doctor('-n', ns);
  const text = await pando('doctor', '-n', ns);
  t.diagnostic(`\n${text.stdout}`);
  assert.equal(down.code, 1);
  const endpoint = down.checks.get('webhook-endpoint')!;
  assert.equal(endpoint.status, 'fail');
  assert.match(endpoint.message, new RegExp(`https://127\\.0\\.0\\.1:${port}/readyz does not answer \\(ECONNREFUSED\\)`));
  assert.match(endpoint.fixes[0]!, new RegExp(`start the webhook that serves https://127\\.0\\.0\\.1:${port}/mutate`));
  assert.equal(down.checks.get('injection-probe')?.status, 'fail');
  assert.match(down.checks.get('injection-probe')!.message, /the webhook said nothing/);
  assert.match(text.stdout, /^FAIL webhook endpoint/m);
  assert.match(text.stdout, /^ +fix: start the webhook/m);

  // Created while the webhook is down: a Deployment's pods and a bare pod, all without the sidecar.
  await createDeployment(ns, 'late', 2);
  const latePods = await podsOf(ns, 'late', 2);
  for (const p of latePods) assert.equal(p.metadata?.annotations?.[ANNOTATION_STATUS], undefined, 'created without the sidecar');
  await core().createNamespacedPod({ namespace: ns, body: { metadata: { name: 'bare-while-down', labels: PROTECT }, spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }] } } });

  webhook = await startWebhook(tls, deployed!.env, port);
  const up = await doctor('-n', ns);
  assert.deepEqual(failing(up.checks), ['uninjected-pods'], JSON.stringify([...up.checks.values()]));
  const uninjected = up.checks.get('uninjected-pods')!;
  assert.match(uninjected.message, /3 labelled pod\(s\) in .* without the sidecar/);
  assert.match(uninjected.message, /deployment\/late in /);
  assert.deepEqual(uninjected.fixes, [
    `kubectl delete pod bare-while-down -n ${ns} and create it again (it has no controller)`,
    `kubectl rollout restart deployment/late -n ${ns}`,
  ]);
  const podCheck = await doctor('-n', ns, '--pod', latePods[0]!.metadata!.name!);
  assert.equal(podCheck.checks.get('pod-injection')?.status, 'fail');
  assert.deepEqual(podCheck.checks.get('pod-injection')?.fixes, [`kubectl rollout restart deployment/late -n ${ns}`]);

  runFix(uninjected.fixes[1]!);
  await podsOf(ns, 'late', 2, injectedWith(V1));
  await core().deleteNamespacedPod({ name: 'bare-while-down', namespace: ns });
  await waitUntil('the bare pod to be gone', 30_000, async () => (await core().listNamespacedPod({ namespace: ns, fieldSelector: 'metadata.name=bare-while-down' })).items.length === 0);
  const healed = await doctor('-n', ns);
  assert.equal(healed.code, 0, JSON.stringify([...healed.checks.values()].filter((c) => c.status !== 'ok')));
});

test('doctor: after an upgrade, pods with the old sidecar are stale, and the printed rollout restart fixes them', async (t) => {
  values = { ...values, image: { ...values.image, tag: V2 } };
  deployed = await deployProduct(cluster, values);
  // The chart's Deployment rolls the webhook; here the local process restarts with the new env.
  await webhook?.stop();
  webhook = await startWebhook(tls, deployed.env, port);

  const text = await pando('doctor', '-n', ns);
  t.diagnostic(`captured pando doctor output with one failure:\n${text.stdout}`);
  assert.equal(text.code, 1);
  const r = await doctor('-n', ns);
  assert.deepEqual(failing(r.checks), ['stale-pods']);
  const stale = r.checks.get('stale-pods')!;
  assert.match(stale.message, new RegExp(`4 pod\\(s\\) run an old sidecar \\(${V1.replace(/\./g, '\\.')}/[0-9a-f]{12}; now ${V2.replace(/\./g, '\\.')}/[0-9a-f]{12}\\)`));
  assert.deepEqual(stale.fixes, [`kubectl rollout restart deployment/late -n ${ns}`, `kubectl rollout restart deployment/web -n ${ns}`]);
  assert.match(r.checks.get('injection-probe')!.message, new RegExp(`gets sidecar ${V2.replace(/\./g, '\\.')}`));

  for (const fix of stale.fixes) runFix(fix);
  await podsOf(ns, 'web', 2, injectedWith(V2));
  await podsOf(ns, 'late', 2, injectedWith(V2));
  const healed = await doctor('-n', ns);
  assert.equal(healed.code, 0, JSON.stringify([...healed.checks.values()].filter((c) => c.status !== 'ok')));
  assert.match(healed.checks.get('stale-pods')!.message, new RegExp(`4 injected pod\\(s\\) run sidecar ${V2.replace(/\./g, '\\.')}`));
});

/** `pando ARGS` with a manifest on standard input. */
async function pandoWithInput(input: string, ...args: string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [join(REPO_ROOT, 'app/cli/main.ts'), ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', KUBECONFIG: cluster.kubeconfigPath, HOME: process.env.HOME ?? tmpdir() },
      timeout: 60_000,
    }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      if (typeof code !== 'number') return reject(err);
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(input);
  });
}

test('inject --from-cluster gives the pod the webhook gives; --check-namespace sees a namespace without setup', async () => {
  const manifest: V1Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'compare', labels: PROTECT }, spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }] } };
  const live = await cluster.request('POST', `/api/v1/namespaces/${ns}/pods?dryRun=All`, manifest);
  assert.equal(live.status, 201, JSON.stringify(live.body));
  const r = await pandoWithInput(JSON.stringify(manifest), 'inject', '-f', '-', '-n', ns, '--from-cluster', '--check-namespace', '-o', 'json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.config.sources, ['defaults', `cluster deployment/pando-webhook -n ${RELEASE_NAMESPACE}`]);
  assert.equal(out.config.version, V2);
  assert.equal(out.namespaceChecked, true);
  const cli = out.objects[0] as V1Pod;
  const pick = (p: V1Pod) => {
    const sidecar = p.spec!.initContainers!.find((c) => c.name === 'pando-sidecar')!;
    // The API server's ServiceAccount admission adds the token volume before the webhook runs, and its
    // defaulting adds terminationMessagePath after: neither is the webhook's doing.
    const { volumeMounts: _mounts, terminationMessagePath: _path, ...rest } = sidecar;
    const annotations = Object.fromEntries(Object.entries(p.metadata!.annotations!).filter(([k]) => k.startsWith('pandocore.xyz/')));
    return { sidecar: rest, annotations, serviceAccountName: p.spec!.serviceAccountName };
  };
  assert.deepEqual(pick(cli), pick(live.body as V1Pod));

  const bare = await createNamespace(cluster, 'e2e-cli-bare');
  namespaces.push(bare);
  const skipped = await pandoWithInput(JSON.stringify(manifest), 'inject', '-f', '-', '-n', bare, '--from-cluster', '--check-namespace', '-o', 'json');
  assert.equal(skipped.code, 0, skipped.stderr);
  const result = JSON.parse(skipped.stdout).results[0];
  assert.equal(result.reason, 'namespace-not-ready');
  const webhookSaid = await cluster.request('POST', `/api/v1/namespaces/${bare}/pods?dryRun=All`, manifest);
  // Header values read as latin1 bytes are decoded as the UTF-8 the webhook wrote (if not done already).
  const relayed = webhookSaid.warnings.map((w) => (/^[\x00-\xff]*$/.test(w) ? Buffer.from(w, 'latin1').toString('utf8') : w));
  assert.deepEqual(result.warnings, relayed, 'the same warnings the API server relays from the webhook');
});

test('doctor without a webhook configuration: the first check fails with the install command', async () => {
  const name = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pando-webhook';
  const saved = (await cluster.request('GET', name)).body;
  await cluster.request('DELETE', name);
  try {
    const r = await doctor('-n', ns, '--no-probe');
    assert.equal(r.code, 1);
    const first = r.checks.get('webhook-configuration')!;
    assert.equal(first.status, 'fail');
    assert.match(first.message, /MutatingWebhookConfiguration pando-webhook is missing/);
    assert.match(first.fixes[0]!, new RegExp(`^helm upgrade --install ${RELEASE} oci://REGISTRY/charts/pando-webhook -n ${RELEASE_NAMESPACE} `));
  } finally {
    const { resourceVersion: _rv, uid: _uid, managedFields: _mf, creationTimestamp: _ct, generation: _g, ...metadata } = saved.metadata;
    const restored = await cluster.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', { ...saved, metadata });
    assert.equal(restored.status, 201, JSON.stringify(restored.body));
  }
});

test('doctor over every namespace (no -n) looks at the labelled pods of the whole cluster', async () => {
  const r = await doctor('--no-probe');
  assert.equal(r.checks.has('namespace'), false, 'no namespace check without -n');
  assert.match(r.checks.get('uninjected-pods')!.message, /in the cluster/);
  assert.match(r.checks.get('stale-pods')!.message, /injected pod\(s\)/);
});

test('doctor in the chart\'s in-cluster mode (Service): no ready endpoint is reported with the rollout status fix', async (t) => {
  // Last: switches the release from the development URL to the Service. No kubelet runs here, so
  // the webhook pods never start and the Service never gets a ready endpoint.
  deployed = await deployProduct(cluster, { ...values, webhookUrl: '' });
  t.diagnostic(`\n${(await pando('doctor', '-n', ns, '--no-probe')).stdout}`);
  const r = await doctor('-n', ns, '--no-probe');
  assert.equal(r.code, 1);
  assert.match(r.checks.get('webhook-configuration')!.message, /calls service pando-system\/pando-webhook:443\/mutate/);
  const endpoint = r.checks.get('webhook-endpoint')!;
  assert.equal(endpoint.status, 'fail');
  assert.match(endpoint.message, /Service pando-system\/pando-webhook has no ready endpoint/);
  assert.deepEqual(endpoint.fixes, ['kubectl -n pando-system rollout status deployment/pando-webhook', 'kubectl -n pando-system logs deployment/pando-webhook']);
  assert.notEqual(r.checks.get('ca-bundle')!.status, 'ok', 'nothing served, nothing verified');
});

test('a cluster that cannot be reached: exit code 2 and what to do', async () => {
  const r = await run(process.execPath, [join(REPO_ROOT, 'app/cli/main.ts'), 'doctor'], {
    env: { PATH: process.env.PATH ?? '', KUBECONFIG: join(REPO_ROOT, 'no-such-kubeconfig'), HOME: '/nonexistent' },
  }).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /pando: error: /);
  assert.match(r.stderr, /fix: /);
});
