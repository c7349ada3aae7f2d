// Issue 5, self-signed TLS (the chart's default, tls.certManager=false) against a real API server:
// no cert-manager, no caBundle given to anyone. The chart's webhook configuration (clientConfig.url
// to 127.0.0.1, no caBundle) and RBAC are applied from `helm template`; the webhook runs as a local
// process (app/main.ts) with the chart's env (PANDO_TLS_SELF_SIGNED=true, PANDO_TLS_EXTRA_SANS=
// 127.0.0.1) as the chart's ServiceAccount. It must create its CA and serving certificate in the
// Secret, fill caBundle itself, rotate the CA with overlap while pods are being created, and agree
// on one CA with a second replica started at the same moment.
// The tests run in order and share the webhook configuration `pando-webhook`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { ENV } from '../../app/contract.ts';
import { ANNOTATION_ROTATE } from '../../app/tls/selfsigned/manager.ts';
import { startCluster, type Cluster } from '../cluster/harness.ts';
import { applyObjects, deleteObjects, RBAC_KINDS, renderChart, serviceAccountKubeconfig, webhookEnvFromObjects, webhookServiceAccount } from './chart-render.ts';
import { RELEASE_NAMESPACE, setupProtectedNamespace } from './product.ts';
import { createNamespace, deleteNamespace, isInjected, labelledPod, uniqueName, waitUntil } from './support.ts';
import { freePort, servedCertificate, startSelfSignedWebhook, verifyServedChain, type WebhookProcess } from './webhook-process.ts';

const CONFIG_NAME = 'pando-webhook';
const SECRET_NAME = 'pando-webhook-tls';
const LICENSE = 'e2e-license-selfsigned';
const CONFIG_PATH = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${CONFIG_NAME}`;
const SECRET_PATH = `/api/v1/namespaces/${RELEASE_NAMESPACE}/secrets/${SECRET_NAME}`;
// Short cycles so that a whole CA rotation (propagation, promotion, retirement) takes seconds.
const CHECK_SECONDS = 1;
const PROPAGATION_SECONDS = 3;

let cluster: Cluster;
let ns: string;
const running: WebhookProcess[] = [];
let rbac: any[] = [];
let identity: { path: string; cleanup(): void } | undefined;
let chartEnv: Record<string, string> = {};

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);

function render(url: string): any[] {
  return renderChart(cluster, `licenseKey=${LICENSE},webhook.url=${url},tls.extraIpAddresses={127.0.0.1}`);
}

/** The chart's env, as the chart's ServiceAccount; shorter check and propagation times than the defaults. */
function webhookEnv(): Record<string, string> {
  return {
    ...chartEnv,
    KUBECONFIG: identity!.path,
    [ENV.logLevel]: 'info',
    [ENV.namespace]: RELEASE_NAMESPACE,
    [ENV.tlsCheckIntervalSeconds]: String(CHECK_SECONDS),
    [ENV.tlsPropagationSeconds]: String(PROPAGATION_SECONDS),
  };
}

/** The chart's webhook configuration for `url`, created afresh: a URL and no caBundle. */
async function createConfigWithoutCaBundle(url: string): Promise<void> {
  await cluster.request('DELETE', CONFIG_PATH);
  await waitUntil('the old webhook configuration to be gone', 20_000, async () => (await cluster.request('GET', CONFIG_PATH)).status === 404);
  const config = render(url).find((o) => o.kind === 'MutatingWebhookConfiguration');
  assert.ok(config, 'the chart renders a MutatingWebhookConfiguration');
  assert.equal(config.metadata.name, CONFIG_NAME);
  assert.equal(config.webhooks[0].clientConfig.url, url);
  assert.equal(config.metadata.annotations?.['cert-manager.io/inject-ca-from'], undefined, 'no cainjector without cert-manager');
  applyObjects(cluster, [config]);
  const live = await cluster.request('GET', CONFIG_PATH);
  assert.equal(live.status, 200, JSON.stringify(live.body));
  assert.equal(live.body.webhooks[0].clientConfig.caBundle, undefined, 'the configuration starts without a caBundle');
}

async function deleteSecret(): Promise<void> {
  await cluster.request('DELETE', SECRET_PATH);
  await waitUntil(`Secret ${SECRET_NAME} to be gone`, 20_000, async () => (await cluster.request('GET', SECRET_PATH)).status === 404);
}

function pems(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** The caBundle of the (only) webhook of the configuration, as PEM ('' when unset). */
async function configBundle(): Promise<string> {
  const r = await cluster.request('GET', CONFIG_PATH);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const b64 = r.body.webhooks[0].clientConfig.caBundle as string | undefined;
  return b64 ? Buffer.from(b64, 'base64').toString('utf8') : '';
}

interface StoredTls {
  caCert: string;
  nextCaCert?: string;
  bundle: string[];
  leafCert: string;
  annotations: Record<string, string>;
}

async function readStoredTls(): Promise<StoredTls | undefined> {
  const r = await cluster.request('GET', SECRET_PATH);
  if (r.status !== 200) return undefined;
  const get = (k: string) => (r.body.data?.[k] ? Buffer.from(r.body.data[k], 'base64').toString('utf8') : undefined);
  const caCert = get('pando-ca.crt');
  const leafCert = get('tls.crt');
  if (!caCert || !leafCert) return undefined;
  return { caCert, nextCaCert: get('pando-next-ca.crt'), bundle: pems(get('ca.crt') ?? ''), leafCert, annotations: r.body.metadata.annotations ?? {} };
}

const podBody = labelledPod;
const injected = isInjected;

/**
 * A new or changed caBundle reaches the API server's webhook client through its informer, a moment
 * after the write. Creates labelled pods until one is injected; returns it and the number of tries.
 */
async function firstInjectedPod(prefix: string): Promise<{ pod: V1Pod; tries: number }> {
  let tries = 0;
  const pod = await waitUntil('a labelled pod to be injected', 30_000, async () => {
    tries++;
    const p = await core().createNamespacedPod({ namespace: ns, body: podBody(uniqueName(prefix)) });
    return injected(p) ? p : undefined;
  });
  return { pod, tries };
}

before(async () => {
  cluster = await startCluster();
  await core().createNamespace({ body: { metadata: { name: RELEASE_NAMESPACE } } }).catch(() => undefined);
  ns = await createNamespace(cluster, 'e2e-tls-selfsigned');
  await setupProtectedNamespace(cluster, ns, LICENSE);
  await deleteSecret(); // a crashed run's
  const objects = render('https://127.0.0.1:1/mutate');
  chartEnv = webhookEnvFromObjects(objects);
  rbac = objects.filter((o) => RBAC_KINDS.includes(o.kind));
  applyObjects(cluster, rbac);
  identity = await serviceAccountKubeconfig(cluster, RELEASE_NAMESPACE, webhookServiceAccount(objects));
});

after(async () => {
  for (const w of running) await w.stop();
  identity?.cleanup();
  if (cluster) {
    await cluster.request('DELETE', CONFIG_PATH);
    await deleteSecret().catch(() => undefined);
    deleteObjects(cluster, rbac);
    if (ns) await deleteNamespace(cluster, ns);
  }
  await cluster?.stop();
});

test('install without cert-manager: the webhook creates its CA, fills caBundle itself, and a labelled pod is injected', async (t) => {
  assert.equal(chartEnv[ENV.tlsSelfSigned], 'true', 'the chart runs the webhook in self-signed mode');
  assert.equal(chartEnv[ENV.tlsExtraSans], '127.0.0.1', 'tls.extraIpAddresses reaches the webhook');
  assert.equal(chartEnv[ENV.tlsSecretName] ?? SECRET_NAME, SECRET_NAME);
  assert.equal(chartEnv[ENV.webhookConfigName] ?? CONFIG_NAME, CONFIG_NAME);
  const port = await freePort();
  await createConfigWithoutCaBundle(`https://127.0.0.1:${port}/mutate`);
  const t0 = Date.now();
  const webhook = await startSelfSignedWebhook(webhookEnv(), port);
  running.push(webhook);
  t.diagnostic(`webhook ready ${Date.now() - t0} ms after start`);

  const stored = await waitUntil(`Secret ${SECRET_NAME}`, 20_000, readStoredTls);
  assert.equal(stored.bundle.length, 1, 'one CA in the bundle');
  assert.equal(stored.nextCaCert, undefined);
  const bundle = await waitUntil('the webhook to fill caBundle', 20_000, async () => (await configBundle()) || undefined);
  assert.deepEqual(pems(bundle).map(fingerprint), [fingerprint(stored.caCert)], 'caBundle is the Secret\'s CA');

  const served = await servedCertificate(port);
  assert.equal(served.fingerprint256, fingerprint(stored.leafCert), 'the process serves the Secret\'s leaf');
  const sans = served.subjectAltName ?? '';
  assert.match(sans, /DNS:pando-webhook\.pando-system\.svc(,|$)/, sans);
  assert.match(sans, /IP Address:127\.0\.0\.1/, sans);
  assert.equal(await verifyServedChain(port, bundle), 'ok', 'the served chain verifies against caBundle for 127.0.0.1');

  const { pod, tries } = await firstInjectedPod('first');
  t.diagnostic(`labelled pod ${pod.metadata?.name} injected (${tries} tr${tries === 1 ? 'y' : 'ies'}, ${Date.now() - t0} ms after start)`);
  const stored2 = await core().readNamespacedPod({ name: pod.metadata!.name!, namespace: ns });
  assert.ok(injected(stored2), 'the stored pod has the sidecar');
});

test('forced CA rotation while pods are being created: every pod is injected', async (t) => {
  const webhook = running[0];
  assert.ok(webhook, 'the webhook of the first test runs');
  const before = await readStoredTls();
  assert.ok(before && before.nextCaCert === undefined && before.bundle.length === 1, 'a settled state to rotate from');
  const oldCa = fingerprint(before.caCert);

  // Pods are created back to back by two clients for the whole rotation and a little after.
  let creating = true;
  const results: { name: string; injected: boolean; startedAt: number; error?: string }[] = [];
  const worker = async (id: number) => {
    for (let i = 0; creating && i < 10_000; i++) {
      const name = `rot-${id}-${i}`;
      const startedAt = Date.now();
      try {
        const p = await core().createNamespacedPod({ namespace: ns, body: podBody(name) });
        results.push({ name, injected: injected(p), startedAt });
      } catch (err) {
        results.push({ name, injected: false, startedAt, error: String(err) });
      }
    }
  };
  const workers = [worker(1), worker(2)];

  // What is observed, every 100 ms: the stored phase, the caBundle the API server was given, and
  // which CA issued the leaf the process serves. Every observation must have the served leaf
  // trusted by the caBundle of that moment.
  type Phase = 'settled' | 'next-ca-trusted' | 'promoted' | 'retired';
  const seen: { phase: Phase; atMs: number; bundleCas: number; servedBy: 'old' | 'new' | 'other' }[] = [];
  const untrusted: string[] = [];
  let observations = 0;
  const t0 = Date.now();
  await sleep(1000); // pods are flowing before the rotation starts
  const patched = await cluster.request('PATCH', SECRET_PATH, { metadata: { annotations: { [ANNOTATION_ROTATE]: 'e2e' } } }, 'application/merge-patch+json');
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  const rotateAt = Date.now();
  let newCa: string | undefined;
  const deadline = rotateAt + 60_000;
  while (Date.now() < deadline) {
    const s = await readStoredTls();
    const bundle = await configBundle();
    const served = await servedCertificate(webhook.port);
    observations++;
    if (!s) continue;
    if (s.nextCaCert) newCa = fingerprint(s.nextCaCert);
    const active = fingerprint(s.caCert);
    const phase: Phase = s.nextCaCert ? 'next-ca-trusted' : active === oldCa ? 'settled' : s.bundle.length > 1 ? 'promoted' : 'retired';
    const issuer = pems(bundle).find((ca) => served.checkIssued(new X509Certificate(ca)) && served.verify(new X509Certificate(ca).publicKey));
    const servedBy = !issuer ? 'other' : fingerprint(issuer) === oldCa ? 'old' : fingerprint(issuer) === newCa ? 'new' : 'other';
    if (!issuer) untrusted.push(`${Date.now() - rotateAt} ms: served leaf ${served.fingerprint256} not issued by a caBundle CA (${phase})`);
    const last = seen.at(-1);
    if (!last || last.phase !== phase || last.bundleCas !== pems(bundle).length || last.servedBy !== servedBy) {
      seen.push({ phase, atMs: Date.now() - rotateAt, bundleCas: pems(bundle).length, servedBy });
    }
    if (phase === 'retired' && pems(bundle).length === 1 && servedBy === 'new') break;
    await sleep(100);
  }
  const doneAt = Date.now();
  await sleep(2000); // and a little after
  creating = false;
  await Promise.all(workers);

  const during = results.filter((r) => r.startedAt >= rotateAt && r.startedAt <= doneAt).length;
  const failures = results.filter((r) => !r.injected);
  t.diagnostic(`observed: ${seen.map((p) => `${p.phase}@${p.atMs}ms(caBundle ${p.bundleCas} CA, serving ${p.servedBy})`).join(' -> ')}`);
  t.diagnostic(`pods created: ${results.length} in all, ${during} between the rotate request and the end of the rotation (${doneAt - rotateAt} ms); not injected or failed: ${failures.length}; ${observations} observations in ${Date.now() - t0} ms`);
  assert.deepEqual(untrusted, [], 'the served leaf was always trusted by the caBundle of the moment');
  const phases = seen.map((p) => p.phase).filter((p, i, all) => p !== all[i - 1]);
  assert.deepEqual(phases, ['settled', 'next-ca-trusted', 'promoted', 'retired'].slice(phases[0] === 'settled' ? 0 : 1), 'every phase, in order');
  assert.ok(seen.some((p) => p.phase === 'promoted' && p.servedBy === 'new' && p.bundleCas === 2), 'the new leaf was served while both CAs were trusted');
  assert.deepEqual(failures.slice(0, 5), [], `every pod created during the rotation was injected (${failures.length} of ${results.length} were not)`);
  assert.ok(during >= 20, `pods kept being created during the rotation (${during})`);

  const after = await readStoredTls();
  assert.ok(after);
  assert.notEqual(fingerprint(after.caCert), oldCa, 'a new CA is active');
  assert.equal(after.annotations[ANNOTATION_ROTATE], undefined, 'the rotate request was consumed');
  assert.deepEqual(pems(await configBundle()).map(fingerprint), [fingerprint(after.caCert)], 'caBundle holds only the new CA');
  assert.equal(await verifyServedChain(webhook.port, after.caCert), 'ok');
  assert.match(webhook.output(), /ca-rotation-started/);
  assert.match(webhook.output(), /ca-promoted/);
  assert.match(webhook.output(), /ca-retired/);
});

test('two webhook processes started together agree on one CA', async (t) => {
  for (const w of running.splice(0)) await w.stop();
  await deleteSecret();
  const [portA, portB] = [await freePort(), await freePort()];
  await createConfigWithoutCaBundle(`https://127.0.0.1:${portA}/mutate`);

  const [a, b] = await Promise.all([startSelfSignedWebhook(webhookEnv(), portA), startSelfSignedWebhook(webhookEnv(), portB)]);
  running.push(a, b);

  const list = await cluster.request('GET', `/api/v1/namespaces/${RELEASE_NAMESPACE}/secrets?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpando-webhook`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.items.map((s: any) => s.metadata.name), [SECRET_NAME], 'one Secret');
  const stored = await readStoredTls();
  assert.ok(stored);
  assert.equal(stored.bundle.length, 1, 'one CA');
  const bundle = await waitUntil('caBundle', 20_000, async () => (await configBundle()) || undefined);
  assert.deepEqual(pems(bundle).map(fingerprint), [fingerprint(stored.caCert)]);

  const [certA, certB] = [await servedCertificate(portA), await servedCertificate(portB)];
  assert.equal(certA.fingerprint256, fingerprint(stored.leafCert), 'A serves the stored leaf');
  assert.equal(certB.fingerprint256, fingerprint(stored.leafCert), 'B serves the stored leaf');
  assert.equal(await verifyServedChain(portA, bundle), 'ok', 'A\'s chain verifies against caBundle');
  assert.equal(await verifyServedChain(portB, bundle), 'ok', 'B\'s chain verifies against caBundle');
  const creators = [a, b].filter((w) => /"created"/.test(w.output()));
  assert.equal(creators.length, 1, 'exactly one process created the CA; the other adopted it');
  t.diagnostic(`CA ${fingerprint(stored.caCert).slice(0, 23)}... created by ${creators[0] === a ? 'A' : 'B'}, both serve it`);

  const { pod, tries } = await firstInjectedPod('after-race');
  t.diagnostic(`labelled pod ${pod.metadata?.name} injected through A (${tries} tr${tries === 1 ? 'y' : 'ies'})`);
});

/**
 * Every 100 ms until `done` holds (at most `ms`): the leaf each process serves must be issued by a CA
 * of the webhook configuration's caBundle of that moment. Returns the moments it was not.
 */
async function watchTrust(processes: WebhookProcess[], ms: number, done: () => Promise<boolean>): Promise<{ untrusted: string[]; observations: number; tookMs: number }> {
  const untrusted: string[] = [];
  let observations = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const bundle = pems(await configBundle()).map((p) => new X509Certificate(p));
    for (const w of processes) {
      const served = await servedCertificate(w.port);
      observations++;
      if (!bundle.some((ca) => served.checkIssued(ca) && served.verify(ca.publicKey))) untrusted.push(`${Date.now() - t0} ms: port ${w.port} serves ${served.fingerprint256.slice(0, 11)}... untrusted by caBundle`);
    }
    if (await done()) break;
    await sleep(100);
  }
  return { untrusted, observations, tookMs: Date.now() - t0 };
}

/** Settled on a CA other than `oldCa`: alone in the Secret's bundle and in caBundle, served by every process. */
async function settledOnNewCa(processes: WebhookProcess[], oldCa: string): Promise<boolean> {
  const s = await readStoredTls();
  if (!s || s.nextCaCert) return false;
  let active: string;
  try {
    active = fingerprint(s.caCert);
  } catch {
    return false;
  }
  if (active === oldCa) return false;
  const bundle = pems(await configBundle()).map(fingerprint);
  if (bundle.length !== 1 || bundle[0] !== active) return false;
  for (const w of processes) if ((await servedCertificate(w.port)).fingerprint256 !== fingerprint(s.leafCert)) return false;
  return true;
}

async function recoveries(processes: WebhookProcess[], reason: string): Promise<number> {
  let sum = 0;
  for (const w of processes) sum += await w.metric('pandocore_tls_secret_recoveries_total', { reason });
  return sum;
}

test('the Secret deleted while two replicas serve: caBundle never stops trusting what either serves; the recovery is logged and counted', async (t) => {
  const processes = running.slice(0, 2);
  assert.equal(processes.length, 2, 'the two processes of the previous test run');
  const before = await readStoredTls();
  assert.ok(before);
  const oldCa = fingerprint(before.caCert);
  const deleted = await cluster.request('DELETE', SECRET_PATH);
  assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
  const { untrusted, observations, tookMs } = await watchTrust(processes, 60_000, () => settledOnNewCa(processes, oldCa));
  t.diagnostic(`${observations} observations in ${tookMs} ms until both served the new CA alone`);
  assert.deepEqual(untrusted, [], 'what each replica served was always trusted');
  assert.ok(await settledOnNewCa(processes, oldCa), 'a new CA, served by both, the lost one retired');
  assert.equal(await recoveries(processes, 'missing'), 1, 'one replica replaced the lost Secret, and counted it');
  assert.match(processes.map((w) => w.output()).join(''), /PANDO_TLS_SECRET_RECOVERED/);
});

test('a corrupt CA certificate in the Secret: a new CA next to the old one, logged and counted, no untrusted moment', async (t) => {
  const processes = running.slice(0, 2);
  const before = await readStoredTls();
  assert.ok(before);
  const oldCa = fingerprint(before.caCert);
  const garbage = Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n').toString('base64');
  const patched = await cluster.request('PATCH', SECRET_PATH, { data: { 'pando-ca.crt': garbage } }, 'application/merge-patch+json');
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  let keptOld = false;
  const { untrusted, observations, tookMs } = await watchTrust(processes, 60_000, async () => {
    const s = await readStoredTls();
    if (s && s.bundle.some((p) => p.includes('AAAA') === false && fingerprint(p) === oldCa) && s.bundle.length > 1) keptOld = true;
    return settledOnNewCa(processes, oldCa);
  });
  t.diagnostic(`${observations} observations in ${tookMs} ms until both served the new CA alone`);
  assert.deepEqual(untrusted, [], 'what each replica served was always trusted');
  assert.ok(await settledOnNewCa(processes, oldCa), 'recovered: a new CA, served by both');
  assert.ok(keptOld, 'the old CA stood next to the new one until nobody served it');
  assert.ok((await recoveries(processes, 'corrupt')) >= 1, 'counted as corrupt');
  assert.match(processes.map((w) => w.output()).join(''), /"reason":"corrupt".*PANDO_TLS_SECRET_RECOVERED|PANDO_TLS_SECRET_RECOVERED.*"reason":"corrupt"/);
});
