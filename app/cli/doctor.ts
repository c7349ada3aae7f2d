// `pando doctor`: reads what the checks need from the cluster (and dials the webhook in development
// mode), then prints app/cli/doctor-checks.ts's verdict, one line per check.

import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  RbacAuthorizationV1Api,
  type KubeConfig,
  type V1MutatingWebhook,
  type V1Pod,
} from '@kubernetes/client-node';
import { ANNOTATION_CONFIG_HASH, ANNOTATION_STATUS, ANNOTATION_VERSION, ENV, LABEL_PROTECT, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, PATH_READYZ, SIDECAR_SERVICE_ACCOUNT, STATUS_INJECTED } from '../contract.ts';
import { CHART, kubeError, loadKubeConfig, readWebhookDeployment, sidecarPullSecretNames, statusOf, webhookContainer } from './cluster.ts';
import { kubeReadinessFetcher } from '../kube/namespaces.ts';
import type { NamespaceReadiness } from '../inject/decide.ts';
import { splitPem } from './certificates.ts';
import { evaluate, findWebhook, type Check, type DoctorFacts, type InjectionProbe, type NamespaceFacts, type PodOwner, type ReadyzProbe, type Served } from './doctor-checks.ts';
import { jsonSafe, mark, paint, terminalSafe, type Style } from './output.ts';

export interface DoctorOptions {
  namespace?: string;
  pod?: string;
  releaseNamespace: string;
  output: 'text' | 'json';
  probe: boolean;
  context?: string;
  timeoutMs?: number;
}

async function orNull<T>(read: () => Promise<T>, doing: string, kc: KubeConfig): Promise<T | null> {
  try {
    return await read();
  } catch (err) {
    if (statusOf(err) === 404) return null;
    throw kubeError(err, doing, kc);
  }
}

function readyz(url: URL, timeoutMs: number): Promise<ReadyzProbe> {
  const target = new URL(PATH_READYZ, url).toString();
  return new Promise((resolve) => {
    // Only "does it answer" here; whether the API server trusts it is the caBundle check's job.
    const req = httpsRequest(target, { rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve({ url: target, status: res.statusCode });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ url: target, error: err.code ?? err.message }));
    req.end();
  });
}

/** The chain a TLS server presents, leaf first, as PEM. */
function servedChain(url: URL, timeoutMs: number): Promise<Served> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 443);
  const source = `${url.protocol}//${url.host}`;
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, servername: isIP(host) ? undefined : host, rejectUnauthorized: false, timeout: timeoutMs, ALPNProtocols: ['http/1.1'] }, () => {
      const chain: string[] = [];
      let cert: PeerCertificate | undefined = socket.getPeerCertificate(true);
      const seen = new Set<string>();
      while (cert?.raw && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256);
        chain.push(new X509Certificate(cert.raw).toString());
        cert = (cert as { issuerCertificate?: PeerCertificate }).issuerCertificate;
      }
      socket.end();
      resolve({ source, chain });
    });
    socket.on('timeout', () => socket.destroy(new Error(`no TLS handshake in ${timeoutMs} ms`)));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ source, error: err.code ?? err.message }));
  });
}

async function serviceFacts(kc: KubeConfig, hook: V1MutatingWebhook, timeoutMs: number) {
  const ref = hook.clientConfig.service!;
  const core = kc.makeApiClient(CoreV1Api);
  const service = await orNull(() => core.readNamespacedService({ name: ref.name, namespace: ref.namespace }), `reading Service ${ref.namespace}/${ref.name}`, kc);
  const slices = service
    ? (await kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({ namespace: ref.namespace, labelSelector: `kubernetes.io/service-name=${ref.name}` }).catch((err) => {
        throw kubeError(err, `listing EndpointSlices of ${ref.name}`, kc);
      })).items
    : [];
  let readyzProbe: ReadyzProbe | undefined;
  if (service) {
    const path = `${ref.namespace}/services/https:${ref.name}:${ref.port ?? 443}/proxy${PATH_READYZ}`;
    try {
      await Promise.race([
        core.connectGetNamespacedServiceProxyWithPath({ name: `https:${ref.name}:${ref.port ?? 443}`, namespace: ref.namespace, path: PATH_READYZ.slice(1) }),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs).unref()),
      ]);
      readyzProbe = { url: `API server proxy ${path}`, status: 200 };
    } catch (err) {
      const status = statusOf(err);
      readyzProbe = status === 403 ? undefined : { url: `API server proxy ${path}`, status, error: status === undefined ? (err as Error).message : undefined };
    }
  }
  // The certificate the pods serve, from the Secret they mount (when we may read it).
  let served: Served = { source: `Secret ${ref.namespace}/${CHART.tlsSecret}` };
  try {
    const secret = await core.readNamespacedSecret({ name: CHART.tlsSecret, namespace: ref.namespace });
    const crt = secret.data?.['tls.crt'];
    served = crt ? { ...served, chain: splitPem(Buffer.from(crt, 'base64').toString('utf8')) } : { ...served, error: 'it has no tls.crt' };
  } catch (err) {
    const status = statusOf(err);
    served = { ...served, error: status === 404 ? 'it does not exist' : status === 403 ? 'not allowed to read it' : (err as Error).message };
  }
  return { service, endpointSlices: slices, readyz: readyzProbe, served };
}

async function namespaceFacts(kc: KubeConfig, name: string): Promise<NamespaceFacts> {
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const ns = await orNull(() => core.readNamespace({ name }), `reading namespace ${name}`, kc);
  if (!ns) return { name, exists: false, labels: {}, serviceAccount: false, roleBinding: null, licenseSecret: null };
  const [sa, rb, secret] = await Promise.all([
    orNull(() => core.readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace: name }), `reading ServiceAccount ${SIDECAR_SERVICE_ACCOUNT} in ${name}`, kc),
    orNull(() => rbac.readNamespacedRoleBinding({ name: SIDECAR_SERVICE_ACCOUNT, namespace: name }), `reading RoleBinding ${SIDECAR_SERVICE_ACCOUNT} in ${name}`, kc),
    // Only whether the key is there and when the Secret was made; the value is dropped here.
    orNull(async () => {
      const s = await core.readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: name });
      return { hasKey: Boolean(s.data?.[LICENSE_SECRET_KEY]), created: s.metadata?.creationTimestamp };
    }, `reading Secret ${LICENSE_SECRET_NAME} in ${name}`, kc),
  ]);
  // The webhook checks exactly these two (namespace-not-ready): pods created before both existed were skipped.
  const made = [sa?.metadata?.creationTimestamp, secret?.created].map((t) => (t ? new Date(t).getTime() : NaN));
  const setupAt = made.every(Number.isFinite) ? new Date(Math.max(...made)) : undefined;
  return { name, exists: true, labels: ns.metadata?.labels ?? {}, serviceAccount: sa !== null, roleBinding: rb, licenseSecret: secret === null ? null : { hasKey: secret.hasKey }, setupAt };
}

/** Kubernetes' Warning headers (RFC 7234 style, 299 - "text"), joined by fetch into one value. */
export function parseWarnings(header: string | undefined): string[] {
  if (!header) return [];
  // Header values arrive as bytes read one per character (latin1); the webhook wrote UTF-8 (…).
  const text = /^[\x00-\xff]*$/.test(header) ? Buffer.from(header, 'latin1').toString('utf8') : header;
  return [...text.matchAll(/299 [^ ]+ "((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, '$1'));
}

async function injectionProbe(kc: KubeConfig, namespace: string): Promise<InjectionProbe> {
  const core = kc.makeApiClient(CoreV1Api);
  const body: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'pando-doctor-probe-', labels: { [LABEL_PROTECT]: 'true' } },
    spec: {
      containers: [
        {
          name: 'probe',
          image: 'pando-doctor-probe:never-pulled',
          resources: { requests: { cpu: '1m', memory: '1Mi' }, limits: { cpu: '1m', memory: '1Mi' } },
          securityContext: { runAsNonRoot: true, runAsUser: 65532, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
        },
      ],
    },
  };
  try {
    const answer = await core.createNamespacedPodWithHttpInfo({ namespace, body, dryRun: 'All', fieldManager: 'pando-doctor' });
    const annotations = answer.data.metadata?.annotations ?? {};
    const headers = answer.headers as Record<string, string>;
    return {
      namespace,
      injected: annotations[ANNOTATION_STATUS] === STATUS_INJECTED,
      version: annotations[ANNOTATION_VERSION],
      configHash: annotations[ANNOTATION_CONFIG_HASH],
      warnings: parseWarnings(headers.warning ?? headers.Warning),
    };
  } catch (err) {
    const e = kubeError(err, 'server-side dry run', kc);
    const body = (err as { body?: unknown }).body;
    const detail = typeof body === 'string' ? /"message":"((?:[^"\\]|\\.)*)"/.exec(body)?.[1] : undefined;
    return { namespace, injected: false, warnings: [], error: detail ?? e.message };
  }
}

async function labelledPods(kc: KubeConfig, namespace: string | undefined): Promise<V1Pod[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const labelSelector = `${LABEL_PROTECT}=true`;
  try {
    const list = namespace ? await core.listNamespacedPod({ namespace, labelSelector }) : await core.listPodForAllNamespaces({ labelSelector });
    return list.items;
  } catch (err) {
    throw kubeError(err, `listing labelled pods ${namespace ? `in ${namespace}` : 'in all namespaces (pass -n NAMESPACE to look at one)'}`, kc);
  }
}

/** pod -> ReplicaSet -> Deployment, pod -> Job -> CronJob, or the StatefulSet/DaemonSet itself. */
async function resolveOwners(kc: KubeConfig, pods: V1Pod[]): Promise<Map<string, PodOwner>> {
  const apps = kc.makeApiClient(AppsV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  const cache = new Map<string, Promise<PodOwner | undefined>>();
  const parent = (kind: string, name: string, namespace: string): Promise<PodOwner | undefined> => {
    const key = `${kind}/${namespace}/${name}`;
    let found = cache.get(key);
    if (!found) {
      const read = kind === 'ReplicaSet' ? apps.readNamespacedReplicaSet({ name, namespace }) : batch.readNamespacedJob({ name, namespace });
      found = read.then(
        (o) => {
          const ref = o.metadata?.ownerReferences?.find((r) => r.controller);
          if (ref && (ref.kind === 'Deployment' || ref.kind === 'CronJob')) return { kind: ref.kind.toLowerCase(), name: ref.name, namespace };
          return { kind: kind.toLowerCase(), name, namespace };
        },
        () => ({ kind: kind.toLowerCase(), name, namespace }),
      );
      cache.set(key, found);
    }
    return found;
  };
  const owners = new Map<string, PodOwner>();
  for (const pod of pods) {
    const namespace = pod.metadata?.namespace ?? '';
    const ref = pod.metadata?.ownerReferences?.find((r) => r.controller);
    let owner: PodOwner | undefined;
    if (!ref) owner = { kind: 'pod', name: pod.metadata?.name ?? '', namespace };
    else if (ref.kind === 'ReplicaSet' || ref.kind === 'Job') owner = await parent(ref.kind, ref.name, namespace);
    else owner = { kind: ref.kind.toLowerCase(), name: ref.name, namespace };
    if (owner && pod.metadata?.uid) owners.set(pod.metadata.uid, owner);
  }
  return owners;
}

/**
 * The webhook's own readiness lookup (app/kube/namespaces.ts) for each namespace with a labelled pod
 * without the sidecar, when the webhook checks namespaces: doctor then classifies the pods exactly
 * as the webhook and its watchdog do. A failed lookup leaves the namespace unknown.
 */
async function readinessOf(kc: KubeConfig, facts: DoctorFacts): Promise<Map<string, NamespaceReadiness>> {
  const readiness = new Map<string, NamespaceReadiness>();
  const env = facts.deployment ? webhookContainer(facts.deployment)?.env ?? [] : [];
  if (!env.some((e) => e.name === ENV.namespaceCheck && e.value === 'true')) return readiness;
  // The sidecar's pull Secrets the webhook checks, as the Deployment's env names them.
  const fetch = kubeReadinessFetcher(kc, sidecarPullSecretNames(facts.deployment));
  const namespaces = new Set(facts.pods.filter((p) => p.metadata?.annotations?.[ANNOTATION_STATUS] !== STATUS_INJECTED).map((p) => p.metadata?.namespace ?? ''));
  for (const namespace of namespaces) {
    if (!namespace) continue;
    const found = await fetch(namespace).catch(() => undefined);
    if (found) readiness.set(namespace, found);
  }
  return readiness;
}

/** Labels of each namespace with a labelled pod, for the webhook's namespaceSelector; an unreadable one is left out. */
async function namespaceLabelsOf(kc: KubeConfig, facts: DoctorFacts): Promise<Map<string, Record<string, string>>> {
  const core = kc.makeApiClient(CoreV1Api);
  const labels = new Map<string, Record<string, string>>();
  const namespaces = new Set([...facts.pods, ...(facts.pod ? [facts.pod] : [])].map((p) => p.metadata?.namespace ?? ''));
  for (const name of namespaces) {
    if (!name) continue;
    const found = await core.readNamespace({ name }).catch(() => undefined);
    if (found) labels.set(name, found.metadata?.labels ?? {});
  }
  return labels;
}

export async function gatherFacts(kc: KubeConfig, options: DoctorOptions): Promise<DoctorFacts> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const webhookConfiguration = await orNull(
    () => admission.readMutatingWebhookConfiguration({ name: CHART.webhookConfiguration }),
    `reading MutatingWebhookConfiguration ${CHART.webhookConfiguration}`,
    kc,
  );
  const deployment = (await readWebhookDeployment(kc, options.releaseNamespace)) ?? null;
  const facts: DoctorFacts = { now: new Date(), releaseNamespace: options.releaseNamespace, webhookConfiguration, deployment, pods: [], owners: new Map() };
  const hook = findWebhook(webhookConfiguration);
  if (hook?.clientConfig.url) {
    let url: URL | undefined;
    try {
      url = new URL(hook.clientConfig.url);
    } catch {
      facts.readyz = { url: hook.clientConfig.url, error: 'not a valid URL' };
    }
    if (url) [facts.readyz, facts.served] = await Promise.all([readyz(url, timeoutMs), servedChain(url, timeoutMs)]);
  } else if (hook?.clientConfig.service) {
    Object.assign(facts, await serviceFacts(kc, hook, timeoutMs));
  }
  if (options.namespace) {
    facts.namespace = await namespaceFacts(kc, options.namespace);
    if (options.probe && hook && facts.namespace.exists) facts.probe = await injectionProbe(kc, options.namespace);
  }
  facts.pods = await labelledPods(kc, options.namespace);
  const all = [...facts.pods];
  if (options.pod) {
    facts.podName = options.pod;
    const core = kc.makeApiClient(CoreV1Api);
    facts.pod = await orNull(() => core.readNamespacedPod({ name: options.pod!, namespace: options.namespace! }), `reading pod ${options.pod}`, kc);
    if (facts.pod) all.push(facts.pod);
  }
  facts.owners = await resolveOwners(kc, all);
  facts.readiness = await readinessOf(kc, facts);
  facts.namespaceLabels = await namespaceLabelsOf(kc, facts);
  return facts;
}

/** The checks as text for a terminal; everything read from the cluster in them is escaped. */
export function formatChecks(style: Style, checks: readonly Check[]): string {
  const width = Math.max(...checks.map((c) => terminalSafe(c.title).length));
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${mark(style, c.status)} ${paint(style, 'bold', terminalSafe(c.title).padEnd(width))}  ${terminalSafe(c.message)}`);
    for (const fix of c.fixes) lines.push(`  ${' '.repeat(4)}${paint(style, 'yellow', 'fix:')} ${terminalSafe(fix)}`);
  }
  const failed = checks.filter((c) => c.status === 'fail').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  const summary = failed > 0 ? paint(style, 'red', `${failed} check(s) failed`) : paint(style, 'green', 'all checks passed');
  lines.push(`${summary}${warned > 0 ? `, ${warned} warning(s)` : ''}`);
  return `${lines.join('\n')}\n`;
}

export interface DoctorIo {
  stdout: (text: string) => void;
  style: Style;
}

export async function runDoctor(options: DoctorOptions, io: DoctorIo): Promise<number> {
  const kc = loadKubeConfig(options.context);
  const facts = await gatherFacts(kc, options);
  const checks = evaluate(facts);
  const ok = !checks.some((c) => c.status === 'fail');
  if (options.output === 'json') {
    io.stdout(`${jsonSafe(JSON.stringify({ ok, context: kc.getCurrentContext(), namespace: options.namespace ?? null, checks }, null, 2))}\n`);
  } else {
    io.stdout(formatChecks(io.style, checks));
  }
  return ok ? 0 : 1;
}
