// Issue 5, TLS from cert-manager (the chart's tls.certManager=true) against a real API server:
// cert-manager v1.21.2's controller and cainjector run as local processes, the chart's Issuers,
// Certificates and webhook configuration (helm template) are applied, cainjector fills caBundle,
// and the webhook (app/main.ts, local) serves the issued certificate from files laid out as the
// chart's Secret volume. Then the certificate is renewed (as `cmctl renew` does) and the webhook
// picks up the rewritten files without a restart while pods keep being injected.
// The tests run in order and share the installation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api } from '@kubernetes/client-node';
import { ENV } from '../../app/contract.ts';
import { startCluster, type Cluster } from '../cluster/harness.ts';
import { createSecretVolume, startCertManager, uninstallCertManagerCrds, type CertManager, type SecretVolume } from './cert-manager.ts';
import { applyObjects, deleteObjects, RBAC_KINDS, renderChart, serviceAccountKubeconfig, webhookEnvFromObjects, webhookServiceAccount } from './chart-render.ts';
import { CHART_DIR, RELEASE_NAMESPACE, setupProtectedNamespace } from './product.ts';
import { createNamespace, deleteNamespace, isInjected, labelledPod, uniqueName, waitUntil } from './support.ts';
import { freePort, servedCertificate, startWebhookWithFiles, verifyServedChain, type WebhookProcess } from './webhook-process.ts';

const CM = '/apis/cert-manager.io/v1';
const CONFIG_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pando-webhook';
const LICENSE = 'e2e-license-cm';

let cluster: Cluster;
let certManager: CertManager | undefined;
let webhook: WebhookProcess | undefined;
let volume: SecretVolume | undefined;
let ns: string;
let port: number;
let objects: any[] = [];
/** The serving Certificate the webhook configuration's inject-ca-from names. */
let serving: { name: string; secretName: string };
let webhookEnv: Record<string, string>;
let identity: { path: string; cleanup(): void } | undefined;

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);

async function secretData(name: string): Promise<Record<string, string>> {
  const s = await core().readNamespacedSecret({ name, namespace: RELEASE_NAMESPACE });
  return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

async function configBundle(): Promise<string> {
  const r = await cluster.request('GET', CONFIG_PATH);
  const b64 = r.body?.webhooks?.[0]?.clientConfig?.caBundle as string | undefined;
  return b64 ? Buffer.from(b64, 'base64').toString('utf8') : '';
}

function condition(obj: any, type: string): string | undefined {
  return obj?.status?.conditions?.find((c: any) => c.type === type)?.status;
}

const podBody = labelledPod;
const injected = isInjected;

/** Everything this file applies, and the Secrets cert-manager wrote; the CRDs go in after(). */
async function cleanupInstallation(): Promise<void> {
  deleteObjects(cluster, objects.filter((o) => RBAC_KINDS.includes(o.kind) || o.kind === 'MutatingWebhookConfiguration'));
  for (const o of objects.filter((x) => ['Certificate', 'Issuer'].includes(x.kind))) {
    await cluster.request('DELETE', `${CM}/namespaces/${RELEASE_NAMESPACE}/${o.kind.toLowerCase()}s/${o.metadata.name}`);
    if (o.kind === 'Certificate') await cluster.request('DELETE', `/api/v1/namespaces/${RELEASE_NAMESPACE}/secrets/${o.spec.secretName}`);
  }
}

before(async () => {
  cluster = await startCluster();
  await core().createNamespace({ body: { metadata: { name: RELEASE_NAMESPACE } } }).catch(() => undefined);
  ns = await createNamespace(cluster, 'e2e-tls-cm');
  await setupProtectedNamespace(cluster, ns, LICENSE);
  port = await freePort();
  assert.ok(existsSync(join(CHART_DIR, 'Chart.yaml')) || process.env.PANDO_E2E_CHART, 'the chart is needed (dist/pando-webhook or PANDO_E2E_CHART)');
  objects = renderChart(cluster, `tls.certManager=true,licenseKey=${LICENSE},webhook.url=https://127.0.0.1:${port}/mutate,tls.extraIpAddresses={127.0.0.1}`);
  await cleanupInstallation(); // a crashed run's
  certManager = await startCertManager(cluster);
});

after(async () => {
  await webhook?.stop();
  volume?.cleanup();
  identity?.cleanup();
  if (cluster) {
    await cleanupInstallation().catch(() => undefined);
    if (ns) await deleteNamespace(cluster, ns);
  }
  await certManager?.stop();
  if (cluster) await uninstallCertManagerCrds(cluster).catch(() => undefined);
  await cluster?.stop();
});

test('the cert-manager CRDs validate objects on the API server', async () => {
  const bad = {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name: uniqueName('invalid'), namespace: ns },
    spec: { secretName: 'x', dnsNames: ['a.example'], privateKey: { algorithm: 'DSA' } },
  };
  const r = await cluster.request('POST', `${CM}/namespaces/${ns}/certificates`, bad);
  assert.equal(r.status, 422, JSON.stringify(r.body));
  assert.match(r.body.message, /spec\.issuerRef: Required value/);
  assert.match(r.body.message, /spec\.privateKey\.algorithm: Unsupported value: "DSA"/);
});

test('install with cert-manager: cainjector fills caBundle, the webhook serves the issued certificate, a labelled pod is injected', async (t) => {
  const kinds = objects.map((o) => o.kind);
  t.diagnostic(`chart objects: ${kinds.join(', ')}`);
  const config = objects.find((o) => o.kind === 'MutatingWebhookConfiguration');
  assert.ok(config, 'the chart renders a MutatingWebhookConfiguration');
  const injectFrom: string | undefined = config.metadata.annotations?.['cert-manager.io/inject-ca-from'];
  assert.ok(injectFrom, 'with tls.certManager=true the configuration asks cainjector for its caBundle');
  assert.equal(config.webhooks[0].clientConfig.caBundle, undefined, 'the chart gives no caBundle of its own');
  assert.equal(config.webhooks[0].clientConfig.url, `https://127.0.0.1:${port}/mutate`);
  const [certNs, certName] = injectFrom.split('/');
  assert.equal(certNs, RELEASE_NAMESPACE);
  const certificate = objects.find((o) => o.kind === 'Certificate' && o.metadata.name === certName);
  assert.ok(certificate, `the chart renders the Certificate ${injectFrom} names`);
  assert.ok(certificate.spec.ipAddresses?.includes('127.0.0.1'), 'tls.extraIpAddresses reaches the Certificate');
  serving = { name: certName!, secretName: certificate.spec.secretName };

  // What TLS needs: the issuers, the certificates and the webhook configuration, and the webhook's
  // identity (ServiceAccount and RBAC) that the local process runs with.
  applyObjects(cluster, objects.filter((o) => ['Issuer', 'Certificate', 'MutatingWebhookConfiguration', ...RBAC_KINDS].includes(o.kind)));

  const t0 = Date.now();
  await waitUntil(`Certificate ${certName} Ready`, 90_000, async () => {
    const r = await cluster.request('GET', `${CM}/namespaces/${RELEASE_NAMESPACE}/certificates/${certName}`);
    return condition(r.body, 'Ready') === 'True';
  }, 500).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${certManager?.output().slice(-5000)}`);
  });
  t.diagnostic(`Certificate ${certName} Ready ${Date.now() - t0} ms after apply`);
  for (const issuer of objects.filter((o) => o.kind === 'Issuer')) {
    const r = await cluster.request('GET', `${CM}/namespaces/${RELEASE_NAMESPACE}/issuers/${issuer.metadata.name}`);
    assert.equal(condition(r.body, 'Ready'), 'True', `Issuer ${issuer.metadata.name} Ready`);
  }
  const data = await secretData(serving.secretName);
  const bundle = await waitUntil('cainjector to fill caBundle', 60_000, async () => (await configBundle()) || undefined, 500);
  t.diagnostic(`caBundle injected ${Date.now() - t0} ms after apply`);
  assert.equal(bundle.trim(), data['ca.crt']?.trim(), 'caBundle is the ca.crt of the issued Secret');
  const leaf = new X509Certificate(data['tls.crt']!);
  assert.match(leaf.subjectAltName ?? '', /DNS:pando-webhook\.pando-system\.svc(,|$)/);
  assert.match(leaf.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);

  volume = createSecretVolume();
  volume.write({ 'tls.crt': data['tls.crt']!, 'tls.key': data['tls.key']!, 'ca.crt': data['ca.crt']! });
  // The chart's env, minus what the local process sets itself (listening, and the files' paths).
  const chartEnv = webhookEnvFromObjects(objects);
  assert.equal(chartEnv[ENV.tlsSelfSigned], undefined, 'with cert-manager the webhook does not make its own CA');
  const local = new Set<string>([ENV.host, ENV.port, ENV.metricsPort, ENV.tlsCertFile, ENV.tlsKeyFile]);
  identity = await serviceAccountKubeconfig(cluster, RELEASE_NAMESPACE, webhookServiceAccount(objects));
  webhookEnv = {
    ...Object.fromEntries(Object.entries(chartEnv).filter(([k]) => !local.has(k))),
    KUBECONFIG: identity.path,
    [ENV.namespace]: RELEASE_NAMESPACE,
    [ENV.logLevel]: 'info',
  };
  webhook = await startWebhookWithFiles(volume, data['ca.crt']!, webhookEnv, port);
  const served = await servedCertificate(port);
  assert.equal(served.serialNumber, leaf.serialNumber, 'the webhook serves the issued certificate');
  assert.equal(await verifyServedChain(port, bundle), 'ok', 'the served chain verifies against caBundle for 127.0.0.1');

  let tries = 0;
  const pod = await waitUntil('a labelled pod to be injected', 30_000, async () => {
    tries++;
    const p = await core().createNamespacedPod({ namespace: ns, body: podBody(uniqueName('cm-first')) });
    return injected(p) ? p : undefined;
  });
  t.diagnostic(`labelled pod ${pod.metadata?.name} injected (${tries} tr${tries === 1 ? 'y' : 'ies'})`);
});

test('renewal: the certificate is reissued, the files are rewritten, the webhook serves the new serial without a restart and pods stay injected', async (t) => {
  assert.ok(webhook && volume && serving, 'the installation of the previous test');
  const certPath = `${CM}/namespaces/${RELEASE_NAMESPACE}/certificates/${serving.name}`;
  const previous = await secretData(serving.secretName);
  const oldSerial = new X509Certificate(previous['tls.crt']!).serialNumber;
  const oldRevision = (await cluster.request('GET', certPath)).body.status?.revision ?? 0;
  assert.equal((await servedCertificate(port)).serialNumber, oldSerial);

  let creating = true;
  const results: { name: string; injected: boolean; error?: string }[] = [];
  const worker = async (id: number) => {
    for (let i = 0; creating && i < 10_000; i++) {
      const name = `renew-${id}-${i}`;
      try {
        results.push({ name, injected: injected(await core().createNamespacedPod({ namespace: ns, body: podBody(name) })) });
      } catch (err) {
        results.push({ name, injected: false, error: String(err) });
      }
    }
  };
  const workers = [worker(1), worker(2)];
  await sleep(500);

  // What `cmctl renew` does: the Issuing condition on the Certificate's status.
  const cert = (await cluster.request('GET', certPath)).body;
  cert.status.conditions = [
    ...(cert.status.conditions ?? []).filter((c: any) => c.type !== 'Issuing'),
    { type: 'Issuing', status: 'True', reason: 'ManuallyTriggered', message: 'Certificate re-issuance manually triggered (e2e)', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
  ];
  const renewed = await cluster.request('PUT', `${certPath}/status`, cert);
  assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
  const t0 = Date.now();
  const reissued = await waitUntil('a new certificate in the Secret', 60_000, async () => {
    const d = await secretData(serving.secretName);
    return new X509Certificate(d['tls.crt']!).serialNumber !== oldSerial ? d : undefined;
  }, 250);
  const newSerial = new X509Certificate(reissued['tls.crt']!).serialNumber;
  const reissuedMs = Date.now() - t0;
  await waitUntil('the Certificate Ready again', 30_000, async () => {
    const c = (await cluster.request('GET', certPath)).body;
    return condition(c, 'Ready') === 'True' && condition(c, 'Issuing') !== 'True' && (c.status?.revision ?? 0) > oldRevision;
  });
  assert.equal((await servedCertificate(port)).serialNumber, oldSerial, 'until the files change, the old certificate is served');

  const loadsBefore = webhook.output().split('serving certificate loaded').length - 1;
  volume.write({ 'tls.crt': reissued['tls.crt']!, 'tls.key': reissued['tls.key']!, 'ca.crt': reissued['ca.crt']! });
  const t1 = Date.now();
  await waitUntil('the webhook to serve the new serial', 20_000, async () => (await servedCertificate(port)).serialNumber === newSerial, 50);
  const reloadMs = Date.now() - t1;
  await sleep(2000);
  creating = false;
  await Promise.all(workers);

  const failures = results.filter((r) => !r.injected);
  t.diagnostic(`serial ${oldSerial} -> ${newSerial}: reissued ${reissuedMs} ms after the Issuing condition, served ${reloadMs} ms after the files were swapped`);
  t.diagnostic(`pods created during the renewal: ${results.length}, not injected or failed: ${failures.length}`);
  assert.equal(reissued['ca.crt']?.trim(), (await configBundle()).trim(), 'the CA did not change, so caBundle still trusts the new certificate');
  assert.equal(await verifyServedChain(port, await configBundle()), 'ok');
  assert.deepEqual(failures.slice(0, 5), [], `every pod was injected (${failures.length} of ${results.length} were not)`);
  assert.ok(results.length >= 20, `pods kept being created during the renewal (${results.length})`);
  assert.equal(webhook.output().split('serving certificate loaded').length - 1, loadsBefore + 1, 'the webhook logged one reload');
  const p = await core().createNamespacedPod({ namespace: ns, body: podBody(uniqueName('cm-after')) });
  assert.ok(injected(p), 'a pod created after the renewal is injected');
});
