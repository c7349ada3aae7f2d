// The one place where the names that the webhook, the chart, the CLI and users share are spelled.
// The chart (charts-src/) imports these, so a rename cannot drift between server and chart.

export const DOMAIN = 'pandocore.xyz';

/** Pod label that asks for injection. Only the exact value "true" counts. */
export const LABEL_PROTECT = `${DOMAIN}/protect`;
/** Namespace label that asks the webhook to keep the per-namespace setup (namespaceSetup.auto). */
export const LABEL_PROTECT_NAMESPACE = `${DOMAIN}/protect-namespace`;

/** Namespace label that opts a namespace out of injection (value "disabled"); the chart's namespaceSelector honours it. */
export const LABEL_INJECTION = `${DOMAIN}/injection`;

/** Pod annotation that overrides the operating mode for one pod. */
export const ANNOTATION_MODE = `${DOMAIN}/mode`;
/** Written by the webhook: "injected" once the sidecar is in the pod. */
export const ANNOTATION_STATUS = `${DOMAIN}/status`;
/** Written by the webhook: the sidecar version that was injected. */
export const ANNOTATION_VERSION = `${DOMAIN}/version`;
/** Written by the webhook: short hash of the injection config, to find stale pods after upgrades. */
export const ANNOTATION_CONFIG_HASH = `${DOMAIN}/config-hash`;
export const STATUS_INJECTED = 'injected';

/**
 * The only pod-template annotations the webhook's ServiceAccount may change on a Deployment,
 * StatefulSet or DaemonSet (the chart's ValidatingAdmissionPolicy pando-webhook-workloads): the
 * stamp `kubectl rollout restart` writes (the watchdog's heal) and the health-gated rollout's target
 * (the target a restart was for, written beside restartedAt).
 */
export const ANNOTATION_RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';
export const ANNOTATION_ROLLOUT_TARGET = `${DOMAIN}/rollout-target`;

export const MODES = ['monitor', 'enforce', 'debug'] as const;
export type Mode = (typeof MODES)[number];

/** The injected container. */
export const SIDECAR_NAME = 'pando-sidecar';
/** ServiceAccount a protected namespace provides, bound to the ClusterRole of the same name. */
export const SIDECAR_SERVICE_ACCOUNT = 'pando-sidecar';
export const SIDECAR_CLUSTER_ROLE = 'pando-sidecar';
/** Secret (and key) a protected namespace provides, holding the license key. */
export const LICENSE_SECRET_NAME = 'pando-license';
export const LICENSE_SECRET_KEY = 'license-key';

/** Env vars of the injected sidecar. */
export const SIDECAR_ENV_MODE = 'PANDO_MODE';
export const SIDECAR_ENV_LICENSE = 'PANDO_LICENSE_KEY';

/** HTTP paths of the webhook server. */
export const PATH_MUTATE = '/mutate';
export const PATH_HEALTHZ = '/healthz';
export const PATH_READYZ = '/readyz';
export const PATH_METRICS = '/metrics';

/** Environment variables the webhook server reads (see app/config.ts for defaults and validation). */
export const ENV = {
  port: 'PANDO_PORT',
  host: 'PANDO_HOST',
  metricsPort: 'PANDO_METRICS_PORT',
  tlsCertFile: 'PANDO_TLS_CERT_FILE',
  tlsKeyFile: 'PANDO_TLS_KEY_FILE',
  namespace: 'PANDO_NAMESPACE',
  defaultMode: 'PANDO_DEFAULT_MODE',
  excludedNamespaces: 'PANDO_EXCLUDED_NAMESPACES',
  sidecarImage: 'PANDO_SIDECAR_IMAGE',
  sidecarVersion: 'PANDO_SIDECAR_VERSION',
  sidecarNative: 'PANDO_SIDECAR_NATIVE',
  sidecarResources: 'PANDO_SIDECAR_RESOURCES',
  sidecarRunAsUser: 'PANDO_SIDECAR_RUN_AS_USER',
  sidecarPullPolicy: 'PANDO_SIDECAR_IMAGE_PULL_POLICY',
  sidecarPullSecrets: 'PANDO_SIDECAR_IMAGE_PULL_SECRETS',
  sidecarPodResources: 'PANDO_SIDECAR_POD_RESOURCES',
  /** The sidecar's startup probe as JSON (the chart's sidecar.startupProbe); unset or {}: none. */
  sidecarStartupProbe: 'PANDO_SIDECAR_STARTUP_PROBE',
  bodyLimitBytes: 'PANDO_BODY_LIMIT_BYTES',
  reviewBytesInFlight: 'PANDO_REVIEW_BYTES_IN_FLIGHT',
  bodyTimeoutMs: 'PANDO_BODY_TIMEOUT_MS',
  bodyStallMs: 'PANDO_BODY_STALL_MS',
  logLevel: 'PANDO_LOG_LEVEL',
  namespaceCheck: 'PANDO_NAMESPACE_CHECK',
  tlsSelfSigned: 'PANDO_TLS_SELF_SIGNED',
  tlsSecretName: 'PANDO_TLS_SECRET_NAME',
  webhookConfigName: 'PANDO_WEBHOOK_CONFIG_NAME',
  serviceName: 'PANDO_SERVICE_NAME',
  tlsExtraSans: 'PANDO_TLS_EXTRA_SANS',
  tlsCaValidityDays: 'PANDO_TLS_CA_VALIDITY_DAYS',
  tlsLeafValidityDays: 'PANDO_TLS_LEAF_VALIDITY_DAYS',
  tlsRotateAtPercent: 'PANDO_TLS_ROTATE_AT_PERCENT',
  tlsCheckIntervalSeconds: 'PANDO_TLS_CHECK_INTERVAL_SECONDS',
  tlsPropagationSeconds: 'PANDO_TLS_PROPAGATION_SECONDS',
  shutdownTimeoutMs: 'PANDO_SHUTDOWN_TIMEOUT_MS',
  shutdownDelayMs: 'PANDO_SHUTDOWN_DELAY_MS',
  namespaceSetupAuto: 'PANDO_NAMESPACE_SETUP_AUTO',
  namespaceSetupSelector: 'PANDO_NAMESPACE_SETUP_SELECTOR',
  podName: 'PANDO_POD_NAME',
  /** The release's license Secret and key to copy into namespaces (the chart's license.existingSecret, else pando-license). */
  licenseSecretName: 'PANDO_LICENSE_SECRET_NAME',
  licenseSecretKey: 'PANDO_LICENSE_SECRET_KEY',
  /** The webhook's own Deployment: what it creates at run time (TLS Secret, Lease) is owned by it, so uninstall removes it. */
  ownerDeployment: 'PANDO_OWNER_DEPLOYMENT',
  /** Namespaces every replica copies the license Secret into (the chart's protectedNamespaces with license.existingSecret). */
  licenseCopyNamespaces: 'PANDO_LICENSE_COPY_NAMESPACES',
  watchdog: 'PANDO_WATCHDOG',
  watchdogHeal: 'PANDO_WATCHDOG_HEAL',
  watchdogRestartStale: 'PANDO_WATCHDOG_RESTART_STALE',
  watchdogRestartsPerMinute: 'PANDO_WATCHDOG_RESTARTS_PER_MINUTE',
  watchdogCooldownSeconds: 'PANDO_WATCHDOG_WORKLOAD_COOLDOWN_SECONDS',
  watchdogResyncSeconds: 'PANDO_WATCHDOG_RESYNC_SECONDS',
  webhookNamespaceSelector: 'PANDO_WEBHOOK_NAMESPACE_SELECTOR',
  /** The sidecar rollout (issue 24); defaults to PANDO_WATCHDOG_RESTART_STALE, which it replaces. */
  rollout: 'PANDO_ROLLOUT',
  rolloutMaxConcurrent: 'PANDO_ROLLOUT_MAX_CONCURRENT',
  rolloutSoakSeconds: 'PANDO_ROLLOUT_SOAK_SECONDS',
  rolloutReadyDeadlineSeconds: 'PANDO_ROLLOUT_READY_DEADLINE_SECONDS',
  rolloutCanarySelector: 'PANDO_ROLLOUT_CANARY_SELECTOR',
  rolloutIntervalSeconds: 'PANDO_ROLLOUT_INTERVAL_SECONDS',
  webhookObjectSelector: 'PANDO_WEBHOOK_OBJECT_SELECTOR',
} as const;

/** Leases in the webhook's namespace that elect the one replica running a controller; the chart's RBAC names them. */
export const LEASE_NAMESPACE_SETUP = 'pando-webhook-namespace-setup';
export const LEASE_WATCHDOG = 'pando-webhook-watchdog';
export const LEASE_LICENSE_COPY = 'pando-webhook-license-copy';
export const LEASE_ROLLOUT = 'pando-webhook-rollout';

/** The ConfigMap (release namespace, created by the chart) holding the rollout's target, paused flag and failure. */
export const ROLLOUT_CONFIGMAP = 'pando-webhook-rollout';
/** Workload label or annotation: `manual` opts the workload out of the rollout (reported only). */
export const LABEL_ROLLOUT = `${DOMAIN}/rollout`;
export const ROLLOUT_MANUAL = 'manual';
/** Namespace label: its workloads are the rollout's canary. */
export const LABEL_ROLLOUT_CANARY = `${DOMAIN}/rollout-canary`;

/** Event reasons the watchdog records. */
export const EVENT_SIDECAR_MISSING = 'SidecarMissing';
export const EVENT_SIDECAR_RESTART = 'SidecarRestart';
/** On an injected pod (and its workload) whose sidecar the kubelet cannot start. */
export const EVENT_SIDECAR_FAILING = 'SidecarFailing';
/** Event reasons the rollout records on workloads. */
export const EVENT_ROLLOUT_RESTART = 'RolloutRestart';
export const EVENT_ROLLOUT_PAUSED = 'RolloutPaused';
