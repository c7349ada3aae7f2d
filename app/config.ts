// Environment -> a frozen, validated Config. A bad value names the variable and the reason;
// app/main.ts prints it and exits non-zero, so a typo in the chart never starts a half-configured
// webhook.

import { ENV, LABEL_ROLLOUT_CANARY, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, MODES, type Mode } from './contract.ts';
import { ConfigError } from './errors.ts';
import { parseStartupProbe, startupBudgetSeconds, type StartupProbe } from './startup-probe.ts';
import { builtInNamespaceSelector, DEFAULT_OBJECT_SELECTOR, SELECTOR_OPERATORS, type LabelSelector } from './pods/selection.ts';

export interface ResourceList {
  readonly cpu: string;
  readonly memory: string;
  readonly 'ephemeral-storage'?: string;
}

export interface SidecarResources {
  readonly requests: ResourceList;
  readonly limits: ResourceList;
}

export interface SidecarConfig {
  /** Full image reference injected into pods. */
  readonly image: string;
  /** Written to the pandocore.xyz/version annotation; defaults to the image tag. */
  readonly version: string;
  /** Native sidecar (initContainer with restartPolicy Always) instead of a regular container. */
  readonly native: boolean;
  readonly resources: SidecarResources;
  readonly runAsUser: number;
  readonly pullPolicy: (typeof PULL_POLICIES)[number];
  /** Secrets (names, in each protected namespace) the sidecar image is pulled with. */
  readonly imagePullSecrets: readonly string[];
  /** Pod-level resources without room for the sidecar: skip the pod, or grow them by the sidecar's. */
  readonly podResources: (typeof POD_RESOURCES_POLICIES)[number];
  /**
   * The sidecar's startup probe; undefined: none (the default). With one, the kubelet starts the
   * pod's next init container and the app only once it succeeds (native sidecar).
   */
  readonly startupProbe?: StartupProbe;
}

export const PULL_POLICIES = ['IfNotPresent', 'Always', 'Never'] as const;
export const POD_RESOURCES_POLICIES = ['skip', 'grow'] as const;

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface SelfSignedConfig {
  readonly secretName: string;
  readonly webhookConfigName: string;
  /** DNS names and IPs of the serving certificate: SERVICE.NAMESPACE.svc (+ .cluster.local) and extras. */
  readonly hosts: readonly string[];
  readonly caValidityDays: number;
  readonly leafValidityDays: number;
  /** Share of a certificate's lifetime after which it is rotated. */
  readonly rotateAt: number;
  readonly checkIntervalMs: number;
  readonly propagationMs: number;
}

export const WATCHDOG_HEAL_MODES = ['off', 'restart'] as const;

export interface WatchdogConfig {
  /** off: report only; restart: rollout-restart the owning Deployment/StatefulSet/DaemonSet. */
  readonly heal: (typeof WATCHDOG_HEAL_MODES)[number];
  /** Restart workloads whose pods run an old sidecar too (with the same limits). */
  readonly restartStale: boolean;
  readonly restartsPerMinute: number;
  /** Each workload at most once per this long. */
  readonly workloadCooldownMs: number;
  /** How often every known pod is classified again (namespace readiness may have changed). */
  readonly resyncMs: number;
  /**
   * The webhook configuration's namespaceSelector and objectSelector as the chart renders them
   * (PANDO_WEBHOOK_NAMESPACE_SELECTOR, PANDO_WEBHOOK_OBJECT_SELECTOR): pods they leave out are never
   * reviewed, so the watchdog skips them. Unset: the chart's built-in exclusions and our label.
   */
  readonly namespaceSelector?: LabelSelector;
  readonly objectSelector?: LabelSelector;
}

export interface RolloutConfig {
  /** Workloads restarted and not yet done, at once, cluster-wide. */
  readonly maxConcurrent: number;
  /** How long each new pod's sidecar must run Ready with no restart before its workload is done. */
  readonly soakMs: number;
  /** A restarted workload whose new sidecars are not all Ready by then has failed (the rollout pauses). */
  readonly readyDeadlineMs: number;
  /** Namespaces whose workloads go first (a label selector string). */
  readonly canarySelector: string;
  /** Time between the leader's passes. */
  readonly intervalMs: number;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly metricsPort: number;
  /** null: no files configured; main.ts makes a throw-away self-signed certificate. */
  readonly tls: TlsFiles | null;
  /** Set when the webhook makes and rotates its own CA and certificate (tls.certManager=false). */
  readonly selfSigned: SelfSignedConfig | null;
  /** The webhook's own namespace: never injected. */
  readonly namespace: string;
  readonly defaultMode: Mode;
  readonly excludedNamespaces: readonly string[];
  /** Check that a namespace has the sidecar's ServiceAccount and license Secret before injecting. */
  readonly namespaceCheck: boolean;
  /** Keep the per-namespace setup in namespaces labelled pandocore.xyz/protect-namespace (leader only). */
  readonly namespaceSetupAuto: boolean;
  /** A label selector on top of the label for namespaceSetupAuto (namespaceSetup.namespaceSelector); empty: none. */
  readonly namespaceSetupSelector: string;
  /** This replica's name (downward API), its Lease identity; empty: the host name. */
  readonly podName: string;
  /** The release's license Secret and key that namespace setup copies (license.existingSecret or pando-license). */
  readonly licenseSecret: { readonly name: string; readonly key: string };
  /** The webhook's Deployment, owner of the Secret and Lease it creates; empty: no owner. */
  readonly ownerDeployment: string;
  /** Namespaces to copy the license Secret into (protectedNamespaces with license.existingSecret). */
  readonly licenseCopyNamespaces: readonly string[];
  /** The watchdog (leader only): report, and optionally heal, labelled pods without the sidecar; null when off. */
  readonly watchdog: WatchdogConfig | null;
  /** The sidecar rollout (issue 24); it replaces the watchdog's restartStale. */
  readonly rollout: RolloutConfig | null;
  readonly sidecar: SidecarConfig;
  readonly bodyLimitBytes: number;
  /** Bytes of review bodies held at once, charged as they arrive; later chunks wait, first come first served. */
  readonly reviewBytesInFlight: number;
  /** A review body must arrive within this long of its headers (else 408 and the connection closed). */
  readonly bodyTimeoutMs: number;
  /** A request that sends nothing for this long is answered 408 and its connection closed. */
  readonly bodyStallMs: number;
  readonly logLevel: string;
  readonly shutdownTimeoutMs: number;
  /** After SIGTERM, how long to keep answering (unready) before closing the listener. */
  readonly shutdownDelayMs: number;
}

export const DEFAULT_SIDECAR_IMAGE = 'registry.pandocore.xyz/pandocore/sidecar:1.0.0';
export const DEFAULT_EXCLUDED_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'] as const;
export const DEFAULT_SIDECAR_RESOURCES: SidecarResources = {
  requests: { cpu: '50m', memory: '64Mi' },
  limits: { cpu: '200m', memory: '128Mi' },
};
// The API server accepts objects up to 3 MiB; a review carries the object and, on UPDATE, the old
// object too, plus the envelope. 7 MiB admits both with room to spare.
export const DEFAULT_BODY_LIMIT_BYTES = 7 * 1024 * 1024;
// Two 3 MiB pods are read and parsed at once; typical 10 KB reviews are never held back. A burst of
// 32 such pods peaked at 61 MiB (127 MiB with every body at once) in bench/overload.ts.
export const DEFAULT_REVIEW_BYTES_IN_FLIGHT = 8 * 1024 * 1024;
// The API server writes a review in one go; 2 s is well under its shortest usual timeout (the chart
// derives it from webhook.timeoutSeconds: 400 ms per second). A stall of 500 ms survives a lost
// segment's retransmission (Linux's minimum RTO is 200 ms).
export const DEFAULT_BODY_TIMEOUT_MS = 2000;
export const DEFAULT_BODY_STALL_MS = 500;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
// Kubernetes resource.Quantity, as in k8s.io/apimachinery/pkg/api/resource.
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function secretKey(env: Env, name: string, fallback: string): string {
  const value = raw(env, name) ?? fallback;
  if (!/^[-._a-zA-Z0-9]{1,253}$/.test(value)) throw new ConfigError(name, `"${value}" is not a valid Secret key`);
  return value;
}

type Env = Readonly<Record<string, string | undefined>>;

function raw(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function port(env: Env, name: string, fallback: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) {
    throw new ConfigError(name, `"${value}" is not a TCP port (1-65535)`);
  }
  return n;
}

function positiveInt(env: Env, name: string, fallback: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > max) {
    throw new ConfigError(name, `"${value}" is not a whole number from 1 to ${max}`);
  }
  return n;
}

function nonNegativeInt(env: Env, name: string, fallback: number, max: number): number {
  return raw(env, name) === '0' ? 0 : positiveInt(env, name, fallback, max);
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new ConfigError(name, `"${value}" is neither "true" nor "false"`);
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new ConfigError(name, `"${value}" is not one of ${allowed.join(', ')}`);
}

/** Comma-separated DNS-1123 subdomain names (Secret names), without duplicates. */
function secretNames(env: Env, name: string): string[] {
  const names = (raw(env, name) ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const secret of names) {
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(secret)) throw new ConfigError(name, `"${secret}" is not a valid Secret name`);
  }
  return [...new Set(names)];
}

function namespaceList(env: Env, name: string): string[] {
  const value = env[name];
  if (value === undefined) return [...DEFAULT_EXCLUDED_NAMESPACES];
  const names = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const ns of names) {
    if (!DNS1123_LABEL.test(ns)) throw new ConfigError(name, `"${ns}" is not a valid namespace name`);
  }
  return names;
}

/** A metav1.LabelSelector as JSON (the chart's toJson of the webhook's selector); unset: undefined. */
function labelSelectorJson(env: Env, name: string): LabelSelector | undefined {
  const value = raw(env, name);
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ConfigError(name, 'is not JSON (a label selector: {"matchLabels": {...}, "matchExpressions": [...]})');
  }
  const bad = (why: string) => new ConfigError(name, `is not a label selector: ${why}`);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('not an object');
  const { matchLabels, matchExpressions, ...rest } = parsed as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw bad(`unknown field ${Object.keys(rest)[0]}`);
  const selector: LabelSelector = {};
  if (matchLabels !== undefined && matchLabels !== null) {
    if (typeof matchLabels !== 'object' || Array.isArray(matchLabels) || Object.values(matchLabels).some((v) => typeof v !== 'string')) throw bad('matchLabels must map strings to strings');
    selector.matchLabels = { ...(matchLabels as Record<string, string>) };
  }
  if (matchExpressions !== undefined && matchExpressions !== null) {
    if (!Array.isArray(matchExpressions)) throw bad('matchExpressions must be a list');
    selector.matchExpressions = matchExpressions.map((e: any, i) => {
      if (typeof e?.key !== 'string' || !(SELECTOR_OPERATORS as readonly string[]).includes(e?.operator)) throw bad(`matchExpressions[${i}] needs a key and an operator (${SELECTOR_OPERATORS.join(', ')})`);
      if (e.values !== undefined && e.values !== null && (!Array.isArray(e.values) || e.values.some((v: unknown) => typeof v !== 'string'))) throw bad(`matchExpressions[${i}].values must be strings`);
      return { key: e.key, operator: e.operator, ...(Array.isArray(e.values) ? { values: [...e.values] } : {}) };
    });
  }
  return selector;
}

// A Kubernetes label selector as the API server parses it: key=value, key!=value, key, !key,
// key in (a,b), key notin (a,b), comma-separated. Checked here so a typo stops the start, not the watch.
const SELECTOR_KEY = '([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?';
const SELECTOR_VALUE = '([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?';
const SELECTOR_TERM = new RegExp(`^(!?${SELECTOR_KEY}|${SELECTOR_KEY}\\s*(=|==|!=)\\s*${SELECTOR_VALUE}|${SELECTOR_KEY}\\s+(in|notin)\\s+\\(\\s*${SELECTOR_VALUE}(\\s*,\\s*${SELECTOR_VALUE})*\\s*\\))$`);

function labelSelector(env: Env, name: string): string {
  const value = raw(env, name) ?? '';
  // Split on commas outside parentheses.
  const terms = value === '' ? [] : value.split(/,(?![^(]*\))/).map((t) => t.trim());
  for (const term of terms) if (!SELECTOR_TERM.test(term)) throw new ConfigError(name, `"${term}" is not a label selector term (key=value, key!=value, key in (a,b), key, !key)`);
  return value;
}

/** The tag of an image reference, or undefined when it has none (or only a digest). */
export function imageTag(image: string): string | undefined {
  const withoutDigest = image.split('@')[0] ?? image;
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  return colon > lastSlash ? withoutDigest.slice(colon + 1) : undefined;
}

function resourceList(name: string, where: string, value: unknown): ResourceList {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(name, `${where} must be an object with cpu and memory`);
  }
  // A number is a quantity too (`--set sidecar.resources.limits.cpu=2` arrives as one through toJson).
  const list = Object.fromEntries(Object.entries(value).map(([key, q]) => [key, typeof q === 'number' && Number.isFinite(q) ? String(q) : q]));
  for (const [key, quantity] of Object.entries(list)) {
    if (!['cpu', 'memory', 'ephemeral-storage'].includes(key)) {
      throw new ConfigError(name, `${where}.${key} is not a resource the sidecar can set`);
    }
    if (typeof quantity !== 'string' || !QUANTITY.test(quantity)) {
      throw new ConfigError(name, `${where}.${key} "${String(quantity)}" is not a Kubernetes quantity`);
    }
  }
  // Quota-limited namespaces reject containers without cpu and memory, so both are required.
  for (const key of ['cpu', 'memory']) {
    if (list[key] === undefined) throw new ConfigError(name, `${where}.${key} is required`);
  }
  return Object.freeze({ ...list }) as unknown as ResourceList;
}

function resources(env: Env, name: string): SidecarResources {
  const value = raw(env, name);
  if (value === undefined) return DEFAULT_SIDECAR_RESOURCES;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ConfigError(name, 'is not valid JSON (expected {"requests":{...},"limits":{...}})');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(name, 'must be a JSON object with requests and limits');
  }
  const { requests, limits, ...rest } = parsed as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw new ConfigError(name, `unknown field "${extra[0]}"`);
  return Object.freeze({
    requests: resourceList(name, 'requests', requests),
    limits: resourceList(name, 'limits', limits),
  });
}

function dnsName(env: Env, name: string, fallback: string): string {
  const value = raw(env, name) ?? fallback;
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(value)) throw new ConfigError(name, `"${value}" is not a valid name`);
  return value;
}

function selfSignedConfig(env: Env, namespace: string): SelfSignedConfig {
  const service = dnsName(env, ENV.serviceName, 'pando-webhook');
  const extras = (raw(env, ENV.tlsExtraSans) ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const host of extras) {
    if (!/^[A-Za-z0-9.:-]+$/.test(host)) throw new ConfigError(ENV.tlsExtraSans, `"${host}" is not a DNS name or IP`);
  }
  const caValidityDays = positiveInt(env, ENV.tlsCaValidityDays, 3650, 36500);
  const leafValidityDays = positiveInt(env, ENV.tlsLeafValidityDays, 365, 36500);
  if (leafValidityDays > caValidityDays) {
    throw new ConfigError(ENV.tlsLeafValidityDays, `${leafValidityDays} is longer than ${ENV.tlsCaValidityDays} (${caValidityDays})`);
  }
  const rotateAtPercent = positiveInt(env, ENV.tlsRotateAtPercent, 67, 95);
  if (rotateAtPercent < 10) throw new ConfigError(ENV.tlsRotateAtPercent, `${rotateAtPercent} is below 10`);
  return Object.freeze({
    secretName: dnsName(env, ENV.tlsSecretName, 'pando-webhook-tls'),
    webhookConfigName: dnsName(env, ENV.webhookConfigName, 'pando-webhook'),
    hosts: Object.freeze([`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`, ...extras]),
    caValidityDays,
    leafValidityDays,
    rotateAt: rotateAtPercent / 100,
    checkIntervalMs: positiveInt(env, ENV.tlsCheckIntervalSeconds, 60, 86400) * 1000,
    propagationMs: positiveInt(env, ENV.tlsPropagationSeconds, 15, 3600) * 1000,
  });
}

function optionalProbe(probe: StartupProbe | undefined): { startupProbe?: StartupProbe } {
  return probe ? { startupProbe: probe } : {};
}

export function loadConfig(env: Env): Config {
  const image = raw(env, ENV.sidecarImage) ?? DEFAULT_SIDECAR_IMAGE;
  if (/\s/.test(image)) throw new ConfigError(ENV.sidecarImage, `"${image}" is not an image reference`);
  const version = raw(env, ENV.sidecarVersion) ?? imageTag(image);
  if (version === undefined) {
    throw new ConfigError(ENV.sidecarVersion, `is required when ${ENV.sidecarImage} has no tag`);
  }
  const certFile = raw(env, ENV.tlsCertFile);
  const keyFile = raw(env, ENV.tlsKeyFile);
  if ((certFile === undefined) !== (keyFile === undefined)) {
    const missing = certFile === undefined ? ENV.tlsCertFile : ENV.tlsKeyFile;
    throw new ConfigError(missing, `must be set together with ${certFile === undefined ? ENV.tlsKeyFile : ENV.tlsCertFile}`);
  }
  const namespace = raw(env, ENV.namespace) ?? 'pando-system';
  if (!DNS1123_LABEL.test(namespace)) {
    throw new ConfigError(ENV.namespace, `"${namespace}" is not a valid namespace name`);
  }
  const selfSigned = bool(env, ENV.tlsSelfSigned, false) ? selfSignedConfig(env, namespace) : null;
  if (selfSigned && certFile !== undefined) {
    throw new ConfigError(ENV.tlsSelfSigned, `cannot be "true" together with ${ENV.tlsCertFile}`);
  }
  // watchdog.restartStale of earlier charts turns the rollout on: stale workloads are rolled health-gated.
  const rolloutOn = bool(env, ENV.rollout, bool(env, ENV.watchdogRestartStale, false));
  const bodyTimeoutMs = positiveInt(env, ENV.bodyTimeoutMs, DEFAULT_BODY_TIMEOUT_MS, 30000);
  const config: Config = {
    host: raw(env, ENV.host) ?? '0.0.0.0',
    port: port(env, ENV.port, 8443),
    metricsPort: port(env, ENV.metricsPort, 9090),
    tls: certFile !== undefined && keyFile !== undefined ? Object.freeze({ certFile, keyFile }) : null,
    selfSigned,
    namespace,
    defaultMode: oneOf(env, ENV.defaultMode, MODES, 'monitor'),
    excludedNamespaces: Object.freeze(namespaceList(env, ENV.excludedNamespaces)),
    namespaceCheck: bool(env, ENV.namespaceCheck, false),
    namespaceSetupAuto: bool(env, ENV.namespaceSetupAuto, false),
    namespaceSetupSelector: labelSelector(env, ENV.namespaceSetupSelector),
    podName: raw(env, ENV.podName) ?? '',
    licenseSecret: Object.freeze({ name: dnsName(env, ENV.licenseSecretName, LICENSE_SECRET_NAME), key: secretKey(env, ENV.licenseSecretKey, LICENSE_SECRET_KEY) }),
    ownerDeployment: raw(env, ENV.ownerDeployment) === undefined ? '' : dnsName(env, ENV.ownerDeployment, ''),
    licenseCopyNamespaces: Object.freeze(env[ENV.licenseCopyNamespaces] === undefined ? [] : namespaceList(env, ENV.licenseCopyNamespaces)),
    watchdog: bool(env, ENV.watchdog, false)
      ? Object.freeze({
          heal: oneOf(env, ENV.watchdogHeal, WATCHDOG_HEAL_MODES, 'off'),
          // Never both: with the rollout on, stale workloads are its alone.
          restartStale: bool(env, ENV.watchdogRestartStale, false) && !rolloutOn,
          restartsPerMinute: positiveInt(env, ENV.watchdogRestartsPerMinute, 5, 1000),
          workloadCooldownMs: positiveInt(env, ENV.watchdogCooldownSeconds, 600, 86400) * 1000,
          resyncMs: positiveInt(env, ENV.watchdogResyncSeconds, 60, 3600) * 1000,
          namespaceSelector: labelSelectorJson(env, ENV.webhookNamespaceSelector) ?? builtInNamespaceSelector(namespaceList(env, ENV.excludedNamespaces), namespace),
          objectSelector: labelSelectorJson(env, ENV.webhookObjectSelector) ?? DEFAULT_OBJECT_SELECTOR,
        })
      : null,
    rollout: rolloutOn
      ? Object.freeze({
          maxConcurrent: positiveInt(env, ENV.rolloutMaxConcurrent, 4, 1000),
          soakMs: nonNegativeInt(env, ENV.rolloutSoakSeconds, 120, 86400) * 1000,
          readyDeadlineMs: positiveInt(env, ENV.rolloutReadyDeadlineSeconds, 600, 86400) * 1000,
          canarySelector: labelSelector({ [ENV.rolloutCanarySelector]: env[ENV.rolloutCanarySelector] ?? `${LABEL_ROLLOUT_CANARY}=true` }, ENV.rolloutCanarySelector),
          intervalMs: positiveInt(env, ENV.rolloutIntervalSeconds, 10, 3600) * 1000,
        })
      : null,
    sidecar: Object.freeze({
      image,
      version,
      native: bool(env, ENV.sidecarNative, true),
      resources: resources(env, ENV.sidecarResources),
      runAsUser: positiveInt(env, ENV.sidecarRunAsUser, 65532, 2147483647),
      pullPolicy: oneOf(env, ENV.sidecarPullPolicy, PULL_POLICIES, 'IfNotPresent'),
      imagePullSecrets: Object.freeze(secretNames(env, ENV.sidecarPullSecrets)),
      podResources: oneOf(env, ENV.sidecarPodResources, POD_RESOURCES_POLICIES, 'skip'),
      ...optionalProbe(parseStartupProbe(ENV.sidecarStartupProbe, env[ENV.sidecarStartupProbe])),
    }),
    bodyLimitBytes: positiveInt(env, ENV.bodyLimitBytes, DEFAULT_BODY_LIMIT_BYTES, 64 * 1024 * 1024),
    reviewBytesInFlight: positiveInt(env, ENV.reviewBytesInFlight, DEFAULT_REVIEW_BYTES_IN_FLIGHT, 1024 * 1024 * 1024),
    bodyTimeoutMs,
    // Never longer than the whole body's deadline (timeoutSeconds 1 in the chart gives 400 ms).
    bodyStallMs: positiveInt(env, ENV.bodyStallMs, Math.min(DEFAULT_BODY_STALL_MS, bodyTimeoutMs), 30000),
    logLevel: oneOf(env, ENV.logLevel, LOG_LEVELS, 'info'),
    shutdownTimeoutMs: positiveInt(env, ENV.shutdownTimeoutMs, 9000, 60000),
    shutdownDelayMs: nonNegativeInt(env, ENV.shutdownDelayMs, 3000, 30000),
  };
  if (config.shutdownDelayMs >= config.shutdownTimeoutMs) {
    throw new ConfigError(ENV.shutdownDelayMs, `must be shorter than ${ENV.shutdownTimeoutMs} (${config.shutdownTimeoutMs})`);
  }
  if (config.bodyStallMs > config.bodyTimeoutMs) {
    throw new ConfigError(ENV.bodyStallMs, `must not be longer than ${ENV.bodyTimeoutMs} (${config.bodyTimeoutMs})`);
  }
  const probe = config.sidecar.startupProbe;
  if (probe && config.rollout && startupBudgetSeconds(probe) * 1000 >= config.rollout.readyDeadlineMs) {
    // The rollout would judge a new sidecar that is still within its probe's budget not Ready, and pause.
    throw new ConfigError(ENV.sidecarStartupProbe, `allows ${startupBudgetSeconds(probe)} s to start (initialDelaySeconds + periodSeconds x failureThreshold), not less than ${ENV.rolloutReadyDeadlineSeconds} (${config.rollout.readyDeadlineMs / 1000})`);
  }
  if (config.port === config.metricsPort) {
    throw new ConfigError(ENV.metricsPort, `must differ from ${ENV.port} (${config.port})`);
  }
  return Object.freeze(config);
}
