// `pando doctor`'s judgement, separate from fetching: (what was read from the cluster) -> one line per
// check, each failure with the command that fixes it. Pure: no I/O; the clock is an input.

import { X509Certificate } from 'node:crypto';
import type {
  V1Deployment,
  V1EndpointSlice,
  V1LabelSelector,
  V1MutatingWebhook,
  V1MutatingWebhookConfiguration,
  V1Pod,
  V1RoleBinding,
  V1Service,
} from '@kubernetes/client-node';
import { loadConfig } from '../config.ts';
import { devCaCertFile } from '../tls/dev-ca.ts';
import {
  ANNOTATION_CONFIG_HASH,
  ANNOTATION_VERSION,
  ENV,
  EVENT_SIDECAR_FAILING,
  LABEL_PROTECT,
  SIDECAR_CLUSTER_ROLE,
  SIDECAR_SERVICE_ACCOUNT,
  LICENSE_SECRET_NAME,
  LICENSE_SECRET_KEY,
} from '../contract.ts';
import type { NamespaceReadiness } from '../inject/decide.ts';
import { planInjection, type InjectionPlan } from '../inject/sidecar.ts';
import { classifyPod, isLive, slimPod, type Classification } from '../pods/classify.ts';
import { selectionSkip, selectorMatches as podsSelectorMatches } from '../pods/selection.ts';
import { nameMatches, splitPem, verifyChain, type ChainVerdict } from './certificates.ts';
import { CHART, HELM_RELEASE_ANNOTATION, deploymentInjectionEnv } from './cluster.ts';
import type { Status } from './output.ts';
import { restartCommand, restartFix, type PodOwner } from '../pods/owners.ts';

export { restartCommand, type PodOwner };

export interface Check {
  id: string;
  title: string;
  status: Status;
  message: string;
  /** Commands or steps that fix a failure, one per line. */
  fixes: string[];
}

/** The result of dialling the webhook (clientConfig.url) or reading its certificate. */
export interface Served {
  /** Where the chain came from: "https://127.0.0.1:8443" or "Secret pando-system/pando-webhook-tls". */
  source: string;
  /** PEM certificates, leaf first; absent when it could not be read. */
  chain?: string[];
  error?: string;
}

export interface ReadyzProbe {
  url: string;
  status?: number;
  error?: string;
}

/** A labelled pod created by server-side dry run: what the webhook injects right now. */
export interface InjectionProbe {
  namespace: string;
  injected: boolean;
  version?: string;
  configHash?: string;
  warnings: string[];
  error?: string;
}

export interface NamespaceFacts {
  name: string;
  exists: boolean;
  labels: Record<string, string>;
  serviceAccount: boolean;
  roleBinding: V1RoleBinding | null;
  /** null: no Secret; otherwise whether it has the key. */
  licenseSecret: { hasKey: boolean } | null;
  /** When ServiceAccount and license Secret both existed (the later creation time); unset while one is missing. */
  setupAt?: Date;
}


export interface DoctorFacts {
  now: Date;
  releaseNamespace: string;
  webhookConfiguration: V1MutatingWebhookConfiguration | null;
  deployment: V1Deployment | null;
  service?: V1Service | null;
  endpointSlices?: V1EndpointSlice[];
  readyz?: ReadyzProbe;
  served?: Served;
  namespace?: NamespaceFacts;
  probe?: InjectionProbe;
  /** Labelled pods in scope (the namespace, or every namespace). */
  pods: V1Pod[];
  /** What the readiness lookup says of each namespace with labelled pods (when the webhook checks namespaces). */
  readiness?: ReadonlyMap<string, NamespaceReadiness>;
  /** Labels of each namespace with labelled pods, for the webhook's namespaceSelector; a namespace missing here is not judged by it. */
  namespaceLabels?: ReadonlyMap<string, Record<string, string>>;
  /** Top owner of each pod by uid (pod -> ReplicaSet -> Deployment, ...). */
  owners: ReadonlyMap<string, PodOwner>;
  /** --pod: the pod, or null when it does not exist. */
  pod?: V1Pod | null;
  podName?: string;
}

const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 86_400_000;

function check(id: string, title: string, status: Status, message: string, fixes: string[] = []): Check {
  return { id, title, status, message, fixes };
}

export function findWebhook(config: V1MutatingWebhookConfiguration | null): V1MutatingWebhook | undefined {
  return config?.webhooks?.find((w) => w.name === CHART.webhookName);
}

/** The Helm release, as Helm annotated the live objects; the documented name otherwise. */
function releaseName(f: DoctorFacts): string {
  return f.deployment?.metadata?.annotations?.[HELM_RELEASE_ANNOTATION] ?? f.webhookConfiguration?.metadata?.annotations?.[HELM_RELEASE_ANNOTATION] ?? CHART.release;
}

function helmUpgrade(f: DoctorFacts, set: string): string {
  return `helm upgrade ${releaseName(f)} ${CHART.ref} -n ${f.releaseNamespace} --reuse-values ${set}`;
}

function helmInstall(f: DoctorFacts): string {
  return `helm upgrade --install ${releaseName(f)} ${CHART.ref} -n ${f.releaseNamespace} --create-namespace --set licenseKey=YOUR_LICENSE_KEY`;
}

// --- label selectors, as the API server evaluates namespaceSelector ------------------------------

/** The watchdog's selector matching (app/pods/selection.ts), for the live webhook configuration's selectors. */
export function selectorMatches(selector: V1LabelSelector | undefined, labels: Record<string, string>): boolean {
  return podsSelectorMatches(selector, labels);
}

// --- the checks ---------------------------------------------------------------------------------

function webhookConfigurationCheck(f: DoctorFacts): Check {
  const title = 'webhook configuration';
  const install = helmInstall(f);
  if (!f.webhookConfiguration) {
    return check('webhook-configuration', title, 'fail', `MutatingWebhookConfiguration ${CHART.webhookConfiguration} is missing: no pod is injected`, [install]);
  }
  const hook = findWebhook(f.webhookConfiguration);
  if (!hook) {
    return check('webhook-configuration', title, 'fail', `${CHART.webhookConfiguration} has no webhook named ${CHART.webhookName}`, [install]);
  }
  const target = hook.clientConfig.url ?? `service ${hook.clientConfig.service?.namespace}/${hook.clientConfig.service?.name}:${hook.clientConfig.service?.port ?? 443}${hook.clientConfig.service?.path ?? ''}`;
  const rules = (hook.rules ?? []).some((r) => r.resources?.includes('pods') && (r.operations ?? []).some((o) => o === 'CREATE' || o === '*'));
  if (!rules) return check('webhook-configuration', title, 'fail', `${CHART.webhookName} does not intercept pod CREATE`, [install]);
  return check('webhook-configuration', title, 'ok', `${CHART.webhookConfiguration}/${CHART.webhookName} calls ${target} (failurePolicy ${hook.failurePolicy ?? 'Fail'})`);
}

function restartWebhook(f: DoctorFacts): string[] {
  return [
    `kubectl -n ${f.releaseNamespace} rollout status deployment/${CHART.deployment}`,
    `kubectl -n ${f.releaseNamespace} logs deployment/${CHART.deployment}`,
  ];
}

function endpointCheck(f: DoctorFacts, hook: V1MutatingWebhook): Check {
  const title = 'webhook endpoint';
  const url = hook.clientConfig.url;
  if (url) {
    const r = f.readyz;
    if (r?.status === 200) return check('webhook-endpoint', title, 'ok', `${r.url} answers 200`);
    const what = r?.status !== undefined ? `answers ${r.status}` : `does not answer (${r?.error ?? 'not checked'})`;
    return check('webhook-endpoint', title, 'fail', `${r?.url ?? url} ${what}: labelled pods are created without the sidecar (failurePolicy ${hook.failurePolicy ?? 'Fail'})`, [
      `start the webhook that serves ${url} (development mode: npm start), or point the chart elsewhere: ${helmUpgrade(f, '--set webhook.url=URL')}`,
    ]);
  }
  const service = hook.clientConfig.service;
  if (!f.service) {
    return check('webhook-endpoint', title, 'fail', `Service ${service?.namespace}/${service?.name} is missing`, [helmInstall(f)]);
  }
  const ready = (f.endpointSlices ?? []).flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready !== false);
  if (ready.length === 0) {
    return check('webhook-endpoint', title, 'fail', `Service ${service?.namespace}/${service?.name} has no ready endpoint: labelled pods are created without the sidecar`, restartWebhook(f));
  }
  if (f.readyz && f.readyz.status !== 200) {
    const what = f.readyz.status !== undefined ? `answers ${f.readyz.status}` : `does not answer (${f.readyz.error})`;
    return check('webhook-endpoint', title, 'fail', `${ready.length} ready endpoint(s), but /readyz through the API server ${what}`, restartWebhook(f));
  }
  return check('webhook-endpoint', title, 'ok', `Service ${service?.namespace}/${service?.name} has ${ready.length} ready endpoint(s)${f.readyz ? ', /readyz 200' : ''}`);
}

function caBundleFixes(f: DoctorFacts, hook: V1MutatingWebhook): string[] {
  // A URL is out-of-cluster development; npm start serves from its development CA, kept in this file.
  if (hook.clientConfig.url) return [`set webhook.caBundle to the base64 PEM of the CA that signed the served certificate (npm start's is ${devCaCertFile()}): ${helmUpgrade(f, `--set webhook.caBundle=$(base64 -w0 ${devCaCertFile()})`)}`];
  const selfSigned = deploymentEnv(f)[ENV.tlsSelfSigned] === 'true';
  if (selfSigned) return [`kubectl -n ${f.releaseNamespace} rollout restart deployment/${CHART.deployment}   (the webhook re-syncs caBundle at start)`];
  return [
    `kubectl -n ${f.releaseNamespace} get certificate   (cert-manager: is the serving certificate Ready?)`,
    `kubectl -n cert-manager logs deployment/cert-manager-cainjector   (the cainjector fills caBundle)`,
  ];
}

function deploymentEnv(f: DoctorFacts): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of f.deployment?.spec?.template.spec?.containers ?? []) for (const e of c.env ?? []) if (e.value !== undefined) out[e.name] = e.value;
  return out;
}

function servedLeaf(f: DoctorFacts): X509Certificate | undefined {
  const pem = f.served?.chain?.[0];
  try {
    return pem ? new X509Certificate(pem) : undefined;
  } catch {
    return undefined;
  }
}

function caBundleCheck(f: DoctorFacts, hook: V1MutatingWebhook): Check {
  const title = 'caBundle';
  const served = f.served;
  if (!served?.chain) {
    return check('ca-bundle', title, 'warn', `cannot read the served certificate from ${served?.source ?? 'the webhook'}: ${served?.error ?? 'not checked'}`);
  }
  const raw = hook.clientConfig.caBundle ?? '';
  const bundle = splitPem(Buffer.from(raw, 'base64').toString('utf8'));
  if (bundle.length === 0) return check('ca-bundle', title, 'fail', `${CHART.webhookConfiguration} has an empty caBundle: the API server cannot trust the webhook`, caBundleFixes(f, hook));
  let verdict: ChainVerdict;
  try {
    verdict = verifyChain(served.chain, bundle);
  } catch (err) {
    return check('ca-bundle', title, 'fail', `cannot parse the certificates: ${(err as Error).message}`, caBundleFixes(f, hook));
  }
  if (!verdict.trusted) return check('ca-bundle', title, 'fail', `${verdict.reason}: the API server rejects the webhook's TLS and pods go uninjected`, caBundleFixes(f, hook));
  const leaf = servedLeaf(f)!;
  const host = hook.clientConfig.url ? new URL(hook.clientConfig.url).hostname.replace(/^\[|\]$/g, '') : `${hook.clientConfig.service?.name}.${hook.clientConfig.service?.namespace}.svc`;
  if (!nameMatches(leaf, host)) {
    return check('ca-bundle', title, 'fail', `the certificate from ${served.source} is trusted but not valid for ${host} (${leaf.subjectAltName ?? 'no subjectAltName'})`, [
      hook.clientConfig.url ? `issue the serving certificate for ${host}` : `kubectl -n ${f.releaseNamespace} rollout restart deployment/${CHART.deployment}`,
    ]);
  }
  return check('ca-bundle', title, 'ok', `the certificate from ${served.source} for ${host} verifies against caBundle (${verdict.by.subject.replace(/\n/g, ', ')})`);
}

function daysText(days: number): string {
  return `${days} day${days === 1 ? '' : 's'}`;
}

function expiryCheck(f: DoctorFacts, hook: V1MutatingWebhook): Check | undefined {
  const leaf = servedLeaf(f);
  if (!leaf) return undefined;
  const title = 'certificate expiry';
  const notAfter = new Date(leaf.validTo);
  const notBefore = new Date(leaf.validFrom);
  const days = Math.floor((notAfter.getTime() - f.now.getTime()) / DAY_MS);
  const renew = hook.clientConfig.url
    ? [`renew the certificate served at ${hook.clientConfig.url} (and webhook.caBundle if its CA changes)`]
    : deploymentEnv(f)[ENV.tlsSelfSigned] === 'true'
    ? [`kubectl -n ${f.releaseNamespace} annotate secret ${CHART.tlsSecret} pandocore.xyz/rotate=now --overwrite`]
    : [`renew the serving certificate (cert-manager: cmctl renew -n ${f.releaseNamespace} pando-webhook-serving)`];
  if (notBefore.getTime() > f.now.getTime()) return check('certificate-expiry', title, 'fail', `the certificate is not valid before ${notBefore.toISOString()} (clock skew?)`, renew);
  if (days < 0) return check('certificate-expiry', title, 'fail', `the certificate expired on ${notAfter.toISOString()}`, renew);
  if (days < EXPIRY_WARNING_DAYS) return check('certificate-expiry', title, 'warn', `the certificate expires in ${daysText(days)} (${notAfter.toISOString()})`, renew);
  return check('certificate-expiry', title, 'ok', `valid until ${notAfter.toISOString().slice(0, 10)} (${daysText(days)})`);
}

function excludedByChart(f: DoctorFacts): string[] | undefined {
  const value = deploymentEnv(f)[ENV.excludedNamespaces];
  return value === undefined ? undefined : value.split(',').map((s) => s.trim()).filter(Boolean);
}

function namespaceCheck(f: DoctorFacts, ns: NamespaceFacts, hook: V1MutatingWebhook | undefined): Check {
  const title = 'namespace';
  if (!ns.exists) return check('namespace', title, 'fail', `namespace ${ns.name} does not exist`, [`kubectl create namespace ${ns.name}`]);
  if (ns.name === f.releaseNamespace) return check('namespace', title, 'fail', `${ns.name} is the webhook's own namespace: never injected`, ['run your workloads in another namespace']);
  const excluded = excludedByChart(f);
  if (excluded?.includes(ns.name)) {
    const rest = excluded.filter((n) => n !== ns.name);
    return check('namespace', title, 'fail', `namespace ${ns.name} is excluded from injection (excludedNamespaces)`, [
      helmUpgrade(f, `--set 'excludedNamespaces={${rest.join(',')}}'`),
    ]);
  }
  if (hook && !selectorMatches(hook.namespaceSelector, ns.labels)) {
    return check('namespace', title, 'fail', `the webhook's namespaceSelector does not select namespace ${ns.name}`, [
      `compare kubectl get mutatingwebhookconfiguration ${CHART.webhookConfiguration} -o jsonpath='{.webhooks[0].namespaceSelector}' with kubectl get namespace ${ns.name} --show-labels`,
    ]);
  }
  return check('namespace', title, 'ok', `namespace ${ns.name} is not excluded`);
}

function setupCheck(ns: NamespaceFacts): Check | undefined {
  if (!ns.exists) return undefined;
  const missing: string[] = [];
  if (!ns.serviceAccount) missing.push(`ServiceAccount ${SIDECAR_SERVICE_ACCOUNT}`);
  const rb = ns.roleBinding;
  if (!rb) missing.push(`RoleBinding ${SIDECAR_SERVICE_ACCOUNT}`);
  else if (rb.roleRef.kind !== 'ClusterRole' || rb.roleRef.name !== SIDECAR_CLUSTER_ROLE || !(rb.subjects ?? []).some((s) => s.kind === 'ServiceAccount' && s.name === SIDECAR_SERVICE_ACCOUNT && (s.namespace ?? ns.name) === ns.name)) {
    missing.push(`a RoleBinding ${SIDECAR_SERVICE_ACCOUNT} from ServiceAccount ${SIDECAR_SERVICE_ACCOUNT} to ClusterRole ${SIDECAR_CLUSTER_ROLE}`);
  }
  if (!ns.licenseSecret) missing.push(`Secret ${LICENSE_SECRET_NAME}`);
  else if (!ns.licenseSecret.hasKey) missing.push(`key ${LICENSE_SECRET_KEY} in Secret ${LICENSE_SECRET_NAME}`);
  if (missing.length > 0) {
    return check('namespace-setup', 'namespace setup', 'fail', `namespace ${ns.name} lacks ${missing.join(', ')}: sidecars there cannot start (or are not injected)`, [`pando setup-namespace ${ns.name}`]);
  }
  return check('namespace-setup', 'namespace setup', 'ok', `ServiceAccount, RoleBinding and Secret ${LICENSE_SECRET_NAME} present in ${ns.name}`);
}

function probeCheck(f: DoctorFacts, probe: InjectionProbe): Check {
  const title = 'injection now';
  if (probe.error) return check('injection-probe', title, 'warn', `a dry-run pod in ${probe.namespace} could not be created: ${probe.error}`);
  if (probe.injected) return check('injection-probe', title, 'ok', `a labelled dry-run pod in ${probe.namespace} gets sidecar ${probe.version} (config ${probe.configHash})`);
  const said = probe.warnings.map((w) => w.replace(/^pandocore: /, ''));
  const fixes = said.filter((w) => w.startsWith('fix: ')).map((w) => w.slice(5));
  const reasons = said.filter((w) => !w.startsWith('fix: '));
  if (reasons.length > 0) return check('injection-probe', title, 'fail', `a labelled dry-run pod in ${probe.namespace} is not injected: ${reasons.join('; ')}`, fixes);
  return check('injection-probe', title, 'fail', `a labelled dry-run pod in ${probe.namespace} is not injected and the webhook said nothing: it did not answer (failurePolicy Ignore)`, restartWebhookOrUrl(f));
}

function restartWebhookOrUrl(f: DoctorFacts): string[] {
  const url = findWebhook(f.webhookConfiguration)?.clientConfig.url;
  return url ? [`start the webhook that serves ${url}`] : restartWebhook(f);
}

/** What the webhook injects now: from the dry-run probe, else from the Deployment's settings. */
export function currentInjection(f: DoctorFacts): { version: string; configHash: string; source: string } | undefined {
  if (f.probe?.injected && f.probe.version && f.probe.configHash) return { version: f.probe.version, configHash: f.probe.configHash, source: 'dry-run pod' };
  if (!f.deployment) return undefined;
  try {
    const plan = planInjection(loadConfig(deploymentInjectionEnv(f.deployment)));
    return { version: plan.version, configHash: plan.configHash, source: `deployment/${CHART.deployment} settings` };
  } catch {
    return undefined;
  }
}

function ownerOf(f: DoctorFacts, pod: V1Pod): PodOwner {
  const ns = pod.metadata?.namespace ?? '';
  return f.owners.get(pod.metadata?.uid ?? '') ?? { kind: 'pod', name: pod.metadata?.name ?? '', namespace: ns };
}

/** One key per owner (a bare pod is its own). */
const ownerKey = (owner: PodOwner, pod: V1Pod): string => `${owner.namespace}/${owner.kind}/${owner.kind === 'pod' ? pod.metadata?.name : owner.name}`;

/** Pods grouped by owner, each group one fix. */
function byOwner(f: DoctorFacts, pods: V1Pod[]): Array<{ owner: PodOwner; pods: V1Pod[] }> {
  const groups = new Map<string, { owner: PodOwner; pods: V1Pod[] }>();
  for (const pod of pods) {
    const owner = ownerOf(f, pod);
    const key = ownerKey(owner, pod);
    const g = groups.get(key) ?? { owner, pods: [] };
    g.pods.push(pod);
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => `${a.owner.namespace}/${a.owner.name}`.localeCompare(`${b.owner.namespace}/${b.owner.name}`));
}

function describeGroup(g: { owner: PodOwner; pods: V1Pod[] }): string {
  const names = g.pods.map((p) => p.metadata?.name).join(', ');
  return g.owner.kind === 'pod' ? `pod ${g.owner.namespace}/${names}` : `${g.owner.kind}/${g.owner.name} in ${g.owner.namespace} (${names})`;
}

/**
 * What the webhook does now: the Deployment's settings, with the version and config hash a dry-run
 * pod actually got when there was one; the defaults for the release namespace when neither is known
 * (then only "without the sidecar" is told, not "stale").
 */
function doctorPlan(f: DoctorFacts): InjectionPlan {
  let plan: InjectionPlan | undefined;
  try {
    if (f.deployment) plan = planInjection(loadConfig(deploymentInjectionEnv(f.deployment)));
  } catch {
    plan = undefined;
  }
  plan ??= planInjection(loadConfig({ [ENV.namespace]: f.releaseNamespace }));
  const current = currentInjection(f);
  return current ? { ...plan, version: current.version, configHash: current.configHash } : plan;
}

/**
 * The webhook's namespace-not-ready skip, when the namespace (-n) explains a labelled pod without the
 * sidecar: ServiceAccount or license Secret missing now, or the pod older than the namespace's setup.
 */
function notReadySkip(f: DoctorFacts, pod: V1Pod): { reason: string; fixes: string[] } | undefined {
  const ns = f.namespace;
  if (!ns?.exists || pod.metadata?.namespace !== ns.name) return undefined;
  const missing = [ns.serviceAccount ? '' : `ServiceAccount ${SIDECAR_SERVICE_ACCOUNT}`, ns.licenseSecret ? '' : `Secret ${LICENSE_SECRET_NAME}`].filter(Boolean);
  if (missing.length > 0) return { reason: `skipped for namespace-not-ready: ${ns.name} lacks ${missing.join(' and ')}`, fixes: [`pando setup-namespace ${ns.name}`] };
  const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp) : undefined;
  if (created && ns.setupAt && created < ns.setupAt) return { reason: `skipped for namespace-not-ready: created before ${ns.name} was set up (${ns.setupAt.toISOString()})`, fixes: [] };
  return undefined;
}

/** The watchdog's classification (app/pods/classify.ts) of one pod, with the namespace's readiness. */
function classify(f: DoctorFacts, plan: InjectionPlan, pod: V1Pod): Classification {
  // A pod the live webhook configuration's selectors leave out is never sent to the webhook (issue 23 item 2).
  const hook = findWebhook(f.webhookConfiguration);
  const labels = f.namespaceLabels?.get(pod.metadata?.namespace ?? '');
  if (hook && labels) {
    const skip = selectionSkip(pod.metadata?.namespace ?? '', labels, pod.metadata?.labels ?? {}, { namespaceSelector: hook.namespaceSelector ?? {}, objectSelector: hook.objectSelector ?? {} });
    if (skip) return skip;
  }
  const namespace = f.readiness?.get(pod.metadata?.namespace ?? '');
  return classifyPod(slimPod(pod), plan, namespace ? { namespace } : {});
}

/** Skips that are the configuration's intent, not a problem to report. */
const INTENDED_SKIPS = new Set(['namespace-excluded', 'own-namespace', 'not-labelled', 'namespace-not-selected']);

function uninjectedCheck(f: DoctorFacts, plan: InjectionPlan): Check {
  const title = 'labelled pods';
  const live = f.pods.filter((p) => p.metadata?.labels?.[LABEL_PROTECT] === 'true' && isLive(p));
  const judged = live.map((pod) => ({ pod, c: classify(f, plan, pod) }));
  const pods = judged.filter((j) => j.c.state === 'unprotected').map((j) => j.pod);
  const skipped = judged.filter((j) => j.c.state === 'skipped' && !INTENDED_SKIPS.has(j.c.reason));
  const skippedText = skipped.length === 0 ? '' : `${skipped.length} labelled pod(s) skipped by the webhook: ${[...new Set(skipped.map((j) => `${j.pod.metadata?.namespace}/${j.pod.metadata?.name}: ${j.c.message}`))].join('; ')}`;
  const scope = f.namespace ? `in ${f.namespace.name}` : 'in the cluster';
  if (pods.length === 0) {
    const injected = judged.filter((j) => j.c.state === 'protected' || j.c.state === 'stale').length;
    if (skipped.length > 0) return check('uninjected-pods', title, 'warn', skippedText);
    return check('uninjected-pods', title, 'ok', `every labelled pod ${scope} has the sidecar (${injected} injected)`);
  }
  const skip = pods.map((p) => notReadySkip(f, p)).find((s) => s !== undefined);
  const groups = byOwner(f, pods);
  // Owners whose other pods' sidecar cannot start: restarting them alone would not do (see sidecarFailingCheck).
  const failingReasons = new Map<string, Set<string>>();
  for (const j of judged.filter((j) => j.c.state === 'sidecar-failing')) {
    const key = ownerKey(ownerOf(f, j.pod), j.pod);
    failingReasons.set(key, (failingReasons.get(key) ?? new Set()).add(j.c.sidecar!.reason));
  }
  const fixOf = (g: { owner: PodOwner; pods: V1Pod[] }) => restartFix(g.owner, g.pods[0]!.metadata?.name ?? '', [...(failingReasons.get(ownerKey(g.owner, g.pods[0]!)) ?? [])]);
  const why = skip ? skip.reason : 'created while the webhook was down or not ready';
  return check('uninjected-pods', title, 'fail', `${pods.length} labelled pod(s) ${scope} without the sidecar (${why}): ${groups.map(describeGroup).join('; ')}${skippedText ? `; ${skippedText}` : ''}`, [...(skip?.fixes ?? []), ...groups.map(fixOf)]);
}

/**
 * Injected pods whose sidecar the kubelet cannot start (the watchdog's sidecar-failing,
 * app/pods/sidecar-state.ts): each named with the kubelet's reason, each reason with its fix. A
 * restart does not help (a new pod gets the same sidecar), so no restart is offered.
 */
function sidecarFailingCheck(f: DoctorFacts, plan: InjectionPlan): Check {
  const title = 'sidecars starting';
  const judged = f.pods.filter((p) => p.metadata?.labels?.[LABEL_PROTECT] === 'true' && isLive(p)).map((pod) => ({ pod, c: classify(f, plan, pod) }));
  const failing = judged.filter((j) => j.c.state === 'sidecar-failing');
  const scope = f.namespace ? `in ${f.namespace.name}` : 'in the cluster';
  if (failing.length === 0) return check('sidecar-failing', title, 'ok', `no injected pod ${scope} has a sidecar the kubelet cannot start`);
  const byReason = new Map<string, string[]>();
  for (const { pod, c } of failing) byReason.set(c.sidecar!.reason, [...(byReason.get(c.sidecar!.reason) ?? []), `${pod.metadata?.namespace}/${pod.metadata?.name}`]);
  const named = [...byReason].map(([reason, pods]) => `${reason}: ${pods.join(', ')}`).join('; ');
  const fixes = [...new Set(failing.map(({ c }) => `${c.sidecar!.reason}: ${c.sidecar!.fix}`))];
  return check('sidecar-failing', title, 'fail', `${failing.length} injected pod(s) ${scope} whose PandoCore sidecar cannot start (${named}); a restart does not help: a new pod gets the same sidecar`, [
    ...fixes,
    `kubectl get events -A --field-selector reason=${EVENT_SIDECAR_FAILING}`,
  ]);
}

function staleCheck(f: DoctorFacts, plan: InjectionPlan, current: ReturnType<typeof currentInjection>): Check {
  const title = 'sidecar versions';
  const judged = f.pods.filter(isLive).map((pod) => ({ pod, c: classify(f, plan, pod) }));
  const injected = judged.filter((j) => j.c.state === 'protected' || j.c.state === 'stale');
  if (!current) return check('stale-pods', title, 'warn', `cannot tell what the webhook injects now (no Deployment ${CHART.deployment} in ${f.releaseNamespace} and no dry-run result): ${injected.length} injected pod(s) not compared`);
  const stale = injected.filter((j) => j.c.state === 'stale').map((j) => j.pod);
  if (stale.length === 0) return check('stale-pods', title, 'ok', `${injected.length} injected pod(s) run sidecar ${current.version} (config ${current.configHash}, from the ${current.source})`);
  const groups = byOwner(f, stale);
  const olds = [...new Set(stale.map((p) => `${p.metadata?.annotations?.[ANNOTATION_VERSION]}/${p.metadata?.annotations?.[ANNOTATION_CONFIG_HASH]}`))].join(', ');
  return check('stale-pods', title, 'fail', `${stale.length} pod(s) run an old sidecar (${olds}; now ${current.version}/${current.configHash}): ${groups.map(describeGroup).join('; ')}`, groups.map((g) => restartCommand(g.owner, g.pods[0]!.metadata?.name ?? '')));
}

function podChecks(f: DoctorFacts, plan: InjectionPlan, current: ReturnType<typeof currentInjection>): Check[] {
  const name = f.podName!;
  const ns = f.namespace?.name ?? '';
  const pod = f.pod;
  if (!pod) return [check('pod', 'pod', 'fail', `pod ${ns}/${name} does not exist`, [`kubectl get pods -n ${ns}`])];
  const owner = ownerOf(f, pod);
  const label = pod.metadata?.labels?.[LABEL_PROTECT];
  const where = owner.kind === 'pod' ? `the pod's manifest` : `the pod template of ${owner.kind}/${owner.name}`;
  if (label !== 'true') {
    return [check('pod-labelled', 'pod label', 'fail', `pod ${name} is ${label === undefined ? 'not labelled' : `labelled ${LABEL_PROTECT}=${JSON.stringify(label)}`}; only "true" asks for the sidecar`, [
      `add ${LABEL_PROTECT}: "true" to the labels of ${where}${owner.kind === 'pod' ? ' and create the pod again' : ' (that rolls the pods)'}`,
    ])];
  }
  const checks = [check('pod-labelled', 'pod label', 'ok', `pod ${name} is labelled ${LABEL_PROTECT}="true"`)];
  const annotations = pod.metadata?.annotations ?? {};
  const c = classify(f, plan, pod);
  if (c.state === 'unprotected') {
    const skip = notReadySkip(f, pod);
    const why = skip ? skip.reason : 'it was created while the webhook was down or not ready';
    checks.push(check('pod-injection', 'pod injection', 'fail', `pod ${name} has no sidecar: ${why}`, [...(skip?.fixes ?? []), restartCommand(owner, name)]));
  } else if (c.state === 'skipped') {
    const fixes = c.reason === 'namespace-not-ready' ? [`pando setup-namespace ${ns}`, restartCommand(owner, name)] : [];
    checks.push(check('pod-injection', 'pod injection', 'fail', `pod ${name} has no current sidecar: the webhook skips it (${c.reason}: ${c.message})`, fixes));
  } else if (c.state === 'sidecar-failing') {
    checks.push(check('pod-injection', 'pod injection', 'fail', `pod ${name} has the sidecar ${annotations[ANNOTATION_VERSION]}, but ${c.sidecar!.cause}`, [c.sidecar!.fix]));
  } else if (c.state === 'stale' && current) {
    checks.push(check('pod-injection', 'pod injection', 'fail', `pod ${name} runs sidecar ${annotations[ANNOTATION_VERSION]} (config ${annotations[ANNOTATION_CONFIG_HASH]}); the webhook now injects ${current.version} (config ${current.configHash})`, [restartCommand(owner, name)]));
  } else {
    checks.push(check('pod-injection', 'pod injection', 'ok', `pod ${name} runs sidecar ${annotations[ANNOTATION_VERSION]} (config ${annotations[ANNOTATION_CONFIG_HASH]})${current ? ', current' : ''}`));
  }
  return checks;
}

export function evaluate(f: DoctorFacts): Check[] {
  const checks: Check[] = [webhookConfigurationCheck(f)];
  const hook = findWebhook(f.webhookConfiguration);
  if (hook) {
    checks.push(endpointCheck(f, hook));
    checks.push(caBundleCheck(f, hook));
    const expiry = expiryCheck(f, hook);
    if (expiry) checks.push(expiry);
  }
  // In a namespace that is not injected at all, its setup and a dry-run pod tell nothing more.
  let injectable = true;
  if (f.namespace) {
    const ns = namespaceCheck(f, f.namespace, hook);
    checks.push(ns);
    injectable = ns.status !== 'fail';
    const setup = injectable ? setupCheck(f.namespace) : undefined;
    if (setup) checks.push(setup);
  }
  if (f.probe && injectable) checks.push(probeCheck(f, f.probe));
  const current = currentInjection(f);
  // The pods are judged as the watchdog judges them (app/pods/classify.ts).
  const plan = doctorPlan(f);
  if (f.podName !== undefined) checks.push(...podChecks(f, plan, current));
  checks.push(uninjectedCheck(f, plan));
  checks.push(sidecarFailingCheck(f, plan));
  checks.push(staleCheck(f, plan, current));
  return checks;
}
