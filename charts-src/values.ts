// The chart's values, defined once: defaults, JSON schema, values.yaml comments and the README
// table are all generated from VALUES below, so helm rejects what the constructs would reject.
import { MODES } from '../app/contract.ts';
import { DEFAULT_EXCLUDED_NAMESPACES, DEFAULT_SIDECAR_RESOURCES, WATCHDOG_HEAL_MODES } from '../app/config.ts';
import { STARTUP_PROBE_SCHEMA } from '../app/startup-probe.ts';

export interface ResourceRequirements {
  requests?: Record<string, string | number>;
  limits?: Record<string, string | number>;
}

/** A label selector requirement (webhook.namespaceSelector). */
export interface SelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

/** The values a user sets (helm --set / -f, or PANDO_VALUES for a plain cdk8s synth). */
export interface Values {
  licenseKey: string;
  license: { existingSecret: { name: string; key: string } };
  global: Record<string, unknown>;
  commonLabels: Record<string, string>;
  podLabels: Record<string, string>;
  serviceAccount: { annotations: Record<string, string> };
  extraEnv: { name: string; value?: string; valueFrom?: Record<string, unknown> }[];
  podSecurityContext: Record<string, unknown>;
  containerSecurityContext: Record<string, unknown>;
  topologySpreadConstraints: Record<string, unknown>[];
  defaultMode: (typeof MODES)[number];
  excludedNamespaces: string[];
  protectedNamespaces: string[];
  replicas: number;
  image: { repository: string; tag: string; digest: string; pullPolicy: 'Always' | 'IfNotPresent' | 'Never' };
  imagePullSecrets: { name: string }[];
  sidecar: {
    image: { registry: string; repository: string; tag: string; digest: string; pullPolicy: 'Always' | 'IfNotPresent' | 'Never' };
    imagePullSecrets: string[];
    native: boolean;
    resources: ResourceRequirements;
    podResources: 'skip' | 'grow';
    startupProbe: Record<string, unknown>;
  };
  resources: ResourceRequirements;
  timeoutSeconds: number;
  logLevel: string;
  namespaceCheck: boolean;
  namespaceSetup: { auto: boolean; namespaceSelector: string };
  tls: {
    certManager: boolean;
    caValidityDays: number;
    leafValidityDays: number;
    rotateAtPercent: number;
    extraDnsNames: string[];
    extraIpAddresses: string[];
  };
  webhook: {
    url: string;
    caBundle: string;
    failurePolicy: 'Ignore' | 'Fail';
    namespaceSelector: { matchLabels: Record<string, string>; matchExpressions: SelectorRequirement[] };
  };
  hpa: { enabled: boolean; maxReplicas: number; targetCPUUtilizationPercentage: number };
  podDisruptionBudget: { enabled: boolean; minAvailable: number | string; maxUnavailable: number | string };
  networkPolicy: {
    enabled: boolean;
    ingressFrom: unknown[];
    egress: { enabled: boolean; apiServerTo: unknown[]; apiServerPorts: { port: number | string; protocol?: string; endPort?: number }[]; dnsTo: unknown[] };
  };
  secretPolicy: { enabled: boolean };
  workloadPolicy: { enabled: boolean };
  serviceMonitor: { enabled: boolean; interval: string; scrapeTimeout: string; labels: Record<string, string> };
  watchdog: { enabled: boolean; heal: (typeof WATCHDOG_HEAL_MODES)[number]; restartStale: boolean; restartsPerMinute: number };
  rollout: { enabled: boolean; maxConcurrent: number; soakSeconds: number; readyDeadlineSeconds: number; canary: string };
  prometheusRule: { enabled: boolean; labels: Record<string, string> };
  nodeSelector: Record<string, string>;
  tolerations: unknown[];
  affinity: Record<string, unknown>;
  priorityClassName: string;
  podAnnotations: Record<string, string>;
  terminationGracePeriodSeconds: number;
  hostNetwork: boolean;
  securePort: number;
  metricsPort: number;
  schedulerName: string;
}

/** One value: its JSON schema (with the default) and the sentence values.yaml and the README show. */
interface Leaf {
  description: string;
  schema: Record<string, unknown> & { default: unknown };
}
interface Group {
  description?: string;
  properties: Record<string, Spec>;
}
type Spec = Leaf | Group;

const isGroup = (spec: Spec): spec is Group => 'properties' in spec;

const DNS_LABEL = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
const QUANTITY = '^[0-9]+(\\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$';
// `--set resources.limits.cpu=2` arrives as a number; Kubernetes takes a number as a quantity.
const quantityListSchema = { type: 'object', additionalProperties: { anyOf: [{ type: 'string', pattern: QUANTITY }, { type: 'number', minimum: 0 }] } };
const resourcesSchema = (value: ResourceRequirements, list: object = quantityListSchema) => ({
  type: 'object',
  additionalProperties: false,
  properties: { requests: list, limits: list },
  default: value,
});
/** Labels a user adds may not replace the chart's own (they are the selectors). */
const userLabels = { type: 'object', additionalProperties: { type: 'string' }, propertyNames: { not: { pattern: '^app\\.kubernetes\\.io/(name|component|part-of|version)$' } }, default: {} };
/** An int or a percentage, as a PodDisruptionBudget takes them; '' means unset where allowed. */
// 0 is refused: minAvailable 0 is no budget, maxUnavailable 0 blocks every drain.
const intOrPercent = (value: number | string, unset: boolean) => ({
  anyOf: [{ type: 'integer', minimum: 1 }, { type: 'string', pattern: unset ? '^([1-9][0-9]*%)?$' : '^[1-9][0-9]*%$' }],
  default: value,
});
/** The chart's restricted defaults; a key set to null in values removes it (helm's rule, kept by a plain synth). */
export const POD_SECURITY_CONTEXT = { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } };
export const CONTAINER_SECURITY_CONTEXT = {
  allowPrivilegeEscalation: false,
  privileged: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};
/** Webhook pods spread over nodes and zones; ScheduleAnyway, so a small cluster still schedules them. */
export const SELECTOR_LABELS = { 'app.kubernetes.io/name': 'pando-webhook', 'app.kubernetes.io/component': 'webhook' } as const;
const spread = (topologyKey: string) => ({ maxSkew: 1, topologyKey, whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { ...SELECTOR_LABELS } } });
export const TOPOLOGY_SPREAD = [spread('kubernetes.io/hostname'), spread('topology.kubernetes.io/zone')];
/**
 * Soft (preferred) anti-affinity on the node: two replicas go to two nodes where there are two, and a
 * one-node cluster still schedules both (a required term would leave the second Pending there).
 */
export const POD_ANTI_AFFINITY = {
  podAntiAffinity: {
    preferredDuringSchedulingIgnoredDuringExecution: [
      { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { ...SELECTOR_LABELS } } } },
    ],
  },
};
/** The webhook container's requests and limits (ephemeral storage: see the description of resources). */
export const WEBHOOK_RESOURCES = {
  requests: { cpu: '100m', memory: '128Mi', 'ephemeral-storage': '64Mi' },
  limits: { cpu: '1', memory: '256Mi', 'ephemeral-storage': '256Mi' },
};
/** Where the webhook connects: the API server. DNS is allowed beside it for names, not needed today. */
export const API_SERVER_PORTS = [{ port: 443, protocol: 'TCP' }, { port: 6443, protocol: 'TCP' }];
export const INJECTION_OPT_OUT_VALUE = 'disabled';
const namespaceList = (value: readonly string[]) => ({
  type: 'array',
  items: { type: 'string', pattern: DNS_LABEL },
  uniqueItems: true,
  default: [...value],
});
const leaf = (description: string, schema: Leaf['schema']): Leaf => ({ description, schema });

export const VALUES: Group = {
  properties: {
    licenseKey: leaf('PandoCore license key (this or license.existingSecret.name is required). Stored in the Secret pando-license of the release namespace, never in a pod spec.', { type: 'string', default: '' }),
    license: {
      description: 'The license from a Secret you manage (External Secrets, Vault, ...): the chart then renders no Secret with the key.',
      properties: {
        existingSecret: {
          properties: {
            name: leaf('Secret in the release namespace that holds the license key (instead of licenseKey).', { type: 'string', pattern: '^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$', default: '' }),
            key: leaf('Key of the license in that Secret.', { type: 'string', pattern: '^[-._a-zA-Z0-9]+$', default: 'license-key' }),
          },
        },
      },
    },
    global: leaf('Accepted and ignored: what umbrella and Argo CD wrapper charts pass to every subchart.', { type: 'object', default: {} }),
    commonLabels: leaf('Labels added to every object of the chart.', userLabels),
    podLabels: leaf('Extra labels of the webhook pods.', userLabels),
    serviceAccount: {
      properties: {
        annotations: leaf('Annotations of the webhook ServiceAccount (workload identity).', { type: 'object', additionalProperties: { type: 'string' }, default: {} }),
      },
    },
    extraEnv: leaf('Extra environment variables of the webhook container (name with value or valueFrom).', {
      type: 'array',
      items: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', minLength: 1 }, value: { type: 'string' }, valueFrom: { type: 'object' } } },
      default: [],
    }),
    podSecurityContext: leaf('Pod securityContext of the webhook (restricted by default); set a key to null to remove it, e.g. runAsUser where the platform assigns UIDs.', { type: 'object', default: POD_SECURITY_CONTEXT }),
    containerSecurityContext: leaf('Container securityContext of the webhook (restricted by default); a key set to null is removed.', { type: 'object', default: CONTAINER_SECURITY_CONTEXT }),
    topologySpreadConstraints: leaf('Topology spread of the webhook pods; the default spreads across nodes and zones (ScheduleAnyway).', { type: 'array', items: { type: 'object' }, default: TOPOLOGY_SPREAD }),
    defaultMode: leaf('Mode of sidecars whose pod has no valid pandocore.xyz/mode annotation.', { type: 'string', enum: [...MODES], default: 'monitor' }),
    excludedNamespaces: leaf('Namespaces never injected (the release namespace is always excluded too).', namespaceList(DEFAULT_EXCLUDED_NAMESPACES)),
    protectedNamespaces: leaf('Namespaces that get the per-namespace setup from the chart: ServiceAccount and RoleBinding pando-sidecar, license Secret.', namespaceList([])),
    replicas: leaf('Webhook replicas (also the autoscaler minimum).', { type: 'integer', minimum: 1, maximum: 50, default: 2 }),
    image: {
      description: 'The webhook image.',
      properties: {
        repository: leaf('Image repository.', { type: 'string', minLength: 1, default: 'registry.pandocore.xyz/pandocore/pando-webhook' }),
        tag: leaf('Image tag; empty means the chart appVersion.', { type: 'string', default: '' }),
        digest: leaf('Image digest (sha256:...); when set it pins the image instead of the tag.', { type: 'string', pattern: '^(sha256:[a-f0-9]{64})?$', default: '' }),
        pullPolicy: leaf('Image pull policy.', { type: 'string', enum: ['Always', 'IfNotPresent', 'Never'], default: 'IfNotPresent' }),
      },
    },
    imagePullSecrets: leaf('Pull secrets of the webhook pods.', {
      type: 'array',
      items: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', minLength: 1 } } },
      default: [],
    }),
    sidecar: {
      description: 'The injected PandoCore sidecar.',
      properties: {
        image: {
          properties: {
            repository: leaf('Sidecar image repository.', { type: 'string', minLength: 1, default: 'registry.pandocore.xyz/pandocore/sidecar' }),
            tag: leaf('Sidecar image tag; written to the pods as pandocore.xyz/version.', { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$', default: '1.0.0' }),
            registry: leaf('Registry host (and path) put before repository, e.g. a mirror; empty: repository as is.', { type: 'string', pattern: '^([A-Za-z0-9.:-]+(/[a-z0-9._-]+)*)?$', default: '' }),
            digest: leaf('Sidecar image digest (sha256:...); when set the pods pull by digest (the tag still names the version).', { type: 'string', pattern: '^(sha256:[a-f0-9]{64})?$', default: '' }),
            pullPolicy: leaf('imagePullPolicy of the injected sidecar.', { type: 'string', enum: ['IfNotPresent', 'Always', 'Never'], default: 'IfNotPresent' }),
          },
        },
        imagePullSecrets: leaf('Names of Secrets the sidecar image is pulled with: added to injected pods, checked by namespaceCheck, copied by the namespace setup.', {
          type: 'array', items: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' }, uniqueItems: true, default: [],
        }),
        native: leaf('Inject a native sidecar (initContainer with restartPolicy Always) so Jobs complete; false appends to containers.', { type: 'boolean', default: true }),
        resources: leaf('Sidecar requests and limits (cpu and memory are required: quota namespaces reject containers without them).', {
          ...resourcesSchema({ requests: { ...DEFAULT_SIDECAR_RESOURCES.requests }, limits: { ...DEFAULT_SIDECAR_RESOURCES.limits } }),
          required: ['requests', 'limits'],
        }),
        startupProbe: leaf('Opt-in startup probe of the sidecar (a Kubernetes probe: exactly one of exec, httpGet, tcpSocket, grpc, with initialDelaySeconds, periodSeconds, timeoutSeconds, failureThreshold; no host). Empty: none, and the kubelet starts the app as soon as the sidecar runs. Set: it starts the app only once the probe succeeds, so a sidecar that never gets ready keeps the app from starting (Init:0/1, then restarts: the watchdog reports sidecar-failing). Pods injected without it count as stale.', { ...STARTUP_PROBE_SCHEMA, default: {} }),
        podResources: leaf('Pods with pod-level resources that leave no room for the sidecar: skip them (with a warning), or grow grows the pod-level requests and limits by the sidecar\'s.', { type: 'string', enum: ['skip', 'grow'], default: 'skip' }),
      },
    },
    resources: leaf('Requests and limits of the webhook container, from bench/RESULTS.md: RSS 82 MiB idle and about 110 MiB under 32 connections of typical reviews (128Mi request); a burst of 32 reviews of 3 MiB peaks at 61-85 MiB inside a 256Mi limit (without the review gate it reached 256Mi and was OOM-killed); with the watchdog and 10,000 labelled pods the leader peaks at about 97 MiB inside 256Mi (bench/watchdog.ts --cgroup-mib 256); 100m covers a few hundred reviews/s (about 0.12 ms CPU each). ephemeral-storage: the root filesystem is read-only and /tmp is an emptyDir of at most 16Mi, so what grows is the container log the kubelet keeps and rotates (by default up to 5 files of 10Mi, the current one and the newest rotated one uncompressed), which counts against this limit: 64Mi request, 256Mi limit (room for a larger containerLogMaxSize); the kubelet evicts a pod above it.', resourcesSchema(WEBHOOK_RESOURCES)),
    timeoutSeconds: leaf('How long the API server waits for the webhook (1-30 s); after that the pod is created without the sidecar. A review body that has not arrived within 40 % of it is refused (PANDO_BODY_TIMEOUT_MS), so a slow client never holds up the others.', { type: 'integer', minimum: 1, maximum: 30, default: 5 }),
    logLevel: leaf('Webhook log level.', { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], default: 'info' }),
    namespaceCheck: leaf('Skip injection (with a warning) in namespaces without the ServiceAccount and license Secret, instead of creating pods that cannot start.', { type: 'boolean', default: true }),
    namespaceSetup: {
      properties: {
        auto: leaf('The webhook (one replica, leader on a Lease) keeps the per-namespace setup in namespaces labelled pandocore.xyz/protect-namespace: "true"; adds the RBAC for it.', { type: 'boolean', default: false }),
        namespaceSelector: leaf('With auto: a label selector a namespace must match too (for example team in (payments,web)), so not everyone who can label a namespace gets the license copied into it; empty: the label alone.', { type: 'string', pattern: '^[A-Za-z0-9_./!=(), -]*$', default: '' }),
      },
    },
    tls: {
      description: 'Serving certificate of the webhook.',
      properties: {
        certManager: leaf('true: cert-manager issues the certificate and injects caBundle; false: the webhook keeps its own CA in the Secret pando-webhook-tls.', { type: 'boolean', default: false }),
        caValidityDays: leaf('Self-signed mode: CA lifetime in days.', { type: 'integer', minimum: 1, maximum: 36500, default: 3650 }),
        leafValidityDays: leaf('Serving certificate lifetime in days.', { type: 'integer', minimum: 1, maximum: 36500, default: 365 }),
        rotateAtPercent: leaf('Self-signed mode: rotate when this share of a lifetime has passed.', { type: 'integer', minimum: 10, maximum: 95, default: 67 }),
        extraDnsNames: leaf('Extra DNS names in the serving certificate.', { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9.-]+$' }, default: [] }),
        extraIpAddresses: leaf('Extra IP addresses in the serving certificate (out-of-cluster development).', { type: 'array', items: { type: 'string', pattern: '^[0-9a-fA-F.:]+$' }, default: [] }),
      },
    },
    webhook: {
      description: 'The MutatingWebhookConfiguration.',
      properties: {
        failurePolicy: leaf('Ignore: a pod is created without the sidecar when the webhook cannot answer. Fail: such a pod is refused, for teams that prefer a refused pod to an unprotected one.', { type: 'string', enum: ['Ignore', 'Fail'], default: 'Ignore' }),
        namespaceSelector: leaf('More namespace selection, ANDed with the built-in exclusions (excludedNamespaces, the release namespace, namespaces labelled pandocore.xyz/injection: disabled).', {
          type: 'object',
          additionalProperties: false,
          properties: {
            matchLabels: { type: 'object', additionalProperties: { type: 'string' } },
            matchExpressions: {
              type: 'array',
              items: {
                type: 'object',
                required: ['key', 'operator'],
                additionalProperties: false,
                properties: { key: { type: 'string', minLength: 1 }, operator: { type: 'string', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }, values: { type: 'array', items: { type: 'string' } } },
              },
            },
          },
          default: { matchLabels: {}, matchExpressions: [] },
        }),
        url: leaf('Out-of-cluster development only: clientConfig.url instead of the Service (for example https://127.0.0.1:8443/mutate).', { type: 'string', pattern: '^(https://.+)?$', default: '' }),
        caBundle: leaf('Development only: base64 PEM CA bundle for webhook.url when the webhook does not manage it.', { type: 'string', pattern: '^[A-Za-z0-9+/=]*$', default: '' }),
      },
    },
    hpa: {
      description: 'HorizontalPodAutoscaler (autoscaling/v2); its minimum is replicas. While it is on, the Deployment has no replicas field, so helm upgrade keeps what the autoscaler chose.',
      properties: {
        enabled: leaf('Create the autoscaler.', { type: 'boolean', default: true }),
        maxReplicas: leaf('Autoscaler maximum (at least replicas).', { type: 'integer', minimum: 1, maximum: 100, default: 5 }),
        targetCPUUtilizationPercentage: leaf('Average CPU utilisation the autoscaler aims at.', { type: 'integer', minimum: 1, maximum: 100, default: 75 }),
      },
    },
    podDisruptionBudget: {
      description: 'Not rendered with one replica, where any budget would block every node drain.',
      properties: {
        enabled: leaf('Create the PodDisruptionBudget.', { type: 'boolean', default: true }),
        minAvailable: leaf('Webhook pods kept through voluntary disruptions (a number or a percentage).', intOrPercent(1, false)),
        maxUnavailable: leaf('Webhook pods that may be down at once (a number or a percentage); when set it replaces minAvailable.', intOrPercent('', true)),
      },
    },
    networkPolicy: {
      properties: {
        enabled: leaf('Admit only the webhook and metrics ports.', { type: 'boolean', default: true }),
        ingressFrom: leaf(
          'Sources (NetworkPolicy peers: ipBlock, namespaceSelector, podSelector) admitted to the webhook port; empty: any. Where the API server\'s source can be selected (an ipBlock of the control-plane addresses, or its namespace where it runs as pods), restrict to it.',
          { type: 'array', items: { type: 'object' }, default: [] },
        ),
        egress: {
          description: 'The NetworkPolicy pando-webhook-egress: the webhook pods may then open connections only to DNS and to the API server. Off by default: the API server is not a pod, its address and port differ by distribution (443 on managed clusters, 6443 kubeadm, k3s and OpenShift, 8443 minikube, 16443 MicroK8s), and a webhook that cannot reach it has no TLS Secret, no namespace lookups and no watchdog.',
          properties: {
            enabled: leaf('Render the egress policy (independent of networkPolicy.enabled, which is the ingress one). Check apiServerPorts against kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes first.', { type: 'boolean', default: false }),
            apiServerTo: leaf(
              'Destinations (NetworkPolicy peers) of the API server rule; empty: any address on apiServerPorts. The API server runs outside the pod network on most clusters, so no podSelector reaches it: name it by an ipBlock of the kubernetes Service\'s endpoint addresses (for example [{ipBlock: {cidr: 10.0.0.10/32}}]), which managed control planes may change.',
              { type: 'array', items: { type: 'object' }, default: [] },
            ),
            apiServerPorts: leaf(
              'Ports (NetworkPolicy ports) of the API server rule: the kubernetes Service\'s port (443) and its endpoints\' port, which is what most network plugins see after the Service address is translated (6443 on kubeadm; add 8443 for minikube, 16443 for MicroK8s).',
              {
                type: 'array',
                minItems: 1,
                items: { type: 'object', required: ['port'], additionalProperties: false, properties: { port: { anyOf: [{ type: 'integer', minimum: 1, maximum: 65535 }, { type: 'string', minLength: 1 }] }, protocol: { type: 'string', enum: ['TCP', 'UDP', 'SCTP'] }, endPort: { type: 'integer', minimum: 1, maximum: 65535 } } },
                default: API_SERVER_PORTS,
              },
            ),
            dnsTo: leaf(
              'Destinations of the DNS rule (UDP and TCP 53); empty: any. For the cluster DNS pods only: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}] (not with NodeLocal DNSCache, which answers on a node address no selector reaches).',
              { type: 'array', items: { type: 'object' }, default: [] },
            ),
          },
        },
      },
    },
    secretPolicy: {
      properties: {
        enabled: leaf(
          'Ship a ValidatingAdmissionPolicy (Kubernetes 1.30+) that lets the webhook\'s ServiceAccount write only its own Secrets: Opaque pando-license, its TLS Secret, no service-account annotations.',
          { type: 'boolean', default: true },
        ),
      },
    },
    workloadPolicy: {
      properties: {
        enabled: leaf(
          'With watchdog.heal=restart or restartStale (which grant patch of every Deployment, StatefulSet and DaemonSet): ship a ValidatingAdmissionPolicy that lets the webhook\'s ServiceAccount change only the restart annotations of their pod templates (kubectl.kubernetes.io/restartedAt, pandocore.xyz/rollout-target), and only in namespaces the webhook\'s namespaceSelector selects.',
          { type: 'boolean', default: true },
        ),
      },
    },
    serviceMonitor: {
      properties: {
        enabled: leaf('Create a Prometheus Operator ServiceMonitor (needs its CRD).', { type: 'boolean', default: false }),
        interval: leaf('Scrape interval.', { type: 'string', pattern: '^[0-9]+(ms|s|m|h)$', default: '30s' }),
        scrapeTimeout: leaf('Scrape timeout (at most the interval).', { type: 'string', pattern: '^[0-9]+(ms|s|m|h)$', default: '10s' }),
        labels: leaf('Extra labels of the ServiceMonitor: a Prometheus selects monitors by label (for example release: prometheus).', { type: 'object', additionalProperties: { type: 'string' }, default: {} }),
      },
    },
    watchdog: {
      description: 'Finds labelled pods running without the sidecar (created while the webhook was unreachable): one replica, leader on a Lease.',
      properties: {
        enabled: leaf('Run the watchdog: gauges pandocore_pods, pandocore_unprotected_pods and pandocore_sidecar_failing_pods, SidecarMissing and SidecarFailing Events, log lines; adds list/watch of pods and create of Events.', { type: 'boolean', default: true }),
        heal: leaf('off: report only. restart: rollout-restart the Deployment, StatefulSet or DaemonSet of an unprotected pod (never bare pods or Jobs); adds get/patch of those.', { type: 'string', enum: [...WATCHDOG_HEAL_MODES], default: 'off' }),
        restartStale: leaf('Kept so values of earlier releases keep working: true turns on rollout.enabled (the health-gated sidecar rollout), which then alone restarts workloads whose pods run an older sidecar.', { type: 'boolean', default: false }),
        restartsPerMinute: leaf('At most this many workload restarts a minute (each workload at most once per 10 minutes).', { type: 'integer', minimum: 1, maximum: 1000, default: 5 }),
      },
    },
    rollout: {
      description: 'After an upgrade changes the sidecar (version or config), restart the workloads whose pods run an older one as a health-gated rollout: canary first, growing waves, pause cluster-wide on the first failing new sidecar (pando rollout status | pause | resume). One replica, leader on a Lease.',
      properties: {
        enabled: leaf('Run the rollout (also on with watchdog.restartStale=true); adds list of workloads, ReplicaSets, pods and namespaces, get/patch of Deployments, StatefulSets and DaemonSets (the restart stamp only), and the ConfigMap pando-webhook-rollout that holds its state.', { type: 'boolean', default: false }),
        maxConcurrent: leaf('Workloads restarted and not yet done at once, cluster-wide (waves grow 1, 2, 4, ... up to this); always one at a time per namespace.', { type: 'integer', minimum: 1, maximum: 1000, default: 4 }),
        soakSeconds: leaf('A restarted workload is done once every new pod has run the sidecar Ready with no restart this long.', { type: 'integer', minimum: 0, maximum: 86400, default: 120 }),
        readyDeadlineSeconds: leaf('A restarted workload whose new sidecars are not all Ready this long after its restart has failed: the rollout pauses.', { type: 'integer', minimum: 1, maximum: 86400, default: 600 }),
        canary: leaf('Label selector of the namespaces whose workloads go first; none match (or empty): the smallest stale workload is the canary.', { type: 'string', default: 'pandocore.xyz/rollout-canary=true' }),
      },
    },
    prometheusRule: {
      properties: {
        enabled: leaf('Create a Prometheus Operator PrometheusRule with the alerts of the README (needs its CRD).', { type: 'boolean', default: false }),
        labels: leaf('Extra labels of the PrometheusRule (a Prometheus selects rules by label).', { type: 'object', additionalProperties: { type: 'string' }, default: {} }),
      },
    },
    nodeSelector: leaf('Node selector of the webhook pods.', { type: 'object', additionalProperties: { type: 'string' }, default: {} }),
    tolerations: leaf('Tolerations of the webhook pods.', { type: 'array', items: { type: 'object' }, default: [] }),
    affinity: leaf('Affinity of the webhook pods. Default: a preferred (soft) podAntiAffinity on kubernetes.io/hostname, so replicas land on different nodes where there are several and a one-node cluster still schedules them all. Helm merges what you set with it (nodeAffinity adds to it); set affinity.podAntiAffinity to null to drop it.', { type: 'object', default: POD_ANTI_AFFINITY }),
    priorityClassName: leaf('Priority class of the webhook pods.', { type: 'string', default: '' }),
    podAnnotations: leaf('Extra annotations of the webhook pods.', { type: 'object', additionalProperties: { type: 'string' }, default: {} }),
    terminationGracePeriodSeconds: leaf('Grace period of the webhook pods (the webhook drains for 3 s, then stops within 9 s).', { type: 'integer', minimum: 13, maximum: 300, default: 30 }),
    hostNetwork: leaf('Run the webhook pods in the node\'s network namespace (dnsPolicy ClusterFirstWithHostNet), for clusters whose API server cannot reach the pod network (a custom CNI on EKS, for example): the API server then reaches the webhook on the node\'s address, so pick a securePort (and metricsPort) free on every node, and keep the default podAntiAffinity (two replicas on one node would clash on the port). The webhook listens on every address of the node (PANDO_HOST, settable with extraEnv). The NetworkPolicy does not apply to such pods.', { type: 'boolean', default: false }),
    securePort: leaf('Port the webhook serves HTTPS (reviews, /readyz) on, the Service\'s target port; with hostNetwork a port of the node, so one free on every node (not the kubelet\'s 10250).', { type: 'integer', minimum: 1, maximum: 65535, default: 8443 }),
    metricsPort: leaf('Port of the plain-HTTP metrics and /healthz listener (the Service keeps 9090 as its own port); must differ from securePort.', { type: 'integer', minimum: 1, maximum: 65535, default: 9090 }),
    schedulerName: leaf('Scheduler of the webhook pods (a custom scheduler profile); empty: the default scheduler.', { type: 'string', pattern: '^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$', default: '' }),
  },
};

function walk<T>(group: Group, onLeaf: (path: string[], spec: Leaf) => T, onGroup: (path: string[], spec: Group, children: Record<string, T>) => T, path: string[] = []): T {
  const children: Record<string, T> = {};
  for (const [key, spec] of Object.entries(group.properties)) {
    children[key] = isGroup(spec) ? walk(spec, onLeaf, onGroup, [...path, key]) : onLeaf([...path, key], spec);
  }
  return onGroup(path, group, children);
}

/** The defaults, as a fresh object. */
export function defaultValues(): Values {
  return walk<unknown>(VALUES, (_p, leaf) => structuredClone(leaf.schema.default), (_p, _g, children) => children) as Values;
}

/** values.schema.json: every group closed (a typo in --set is an error), every leaf typed. */
export function valuesSchema(): Record<string, unknown> {
  const root = walk<Record<string, unknown>>(
    VALUES,
    (_p, leaf) => ({ description: leaf.description, ...leaf.schema }),
    (_p, group, children) => ({
      type: 'object',
      ...(group.description ? { description: group.description } : {}),
      additionalProperties: false,
      properties: children,
    }),
  );
  return { $schema: 'https://json-schema.org/draft-07/schema#', title: 'pando-webhook values', ...root };
}

/** Rows for the README table: dotted name, default (JSON), description. */
export function valueRows(): { name: string; default: string; description: string }[] {
  const rows: { name: string; default: string; description: string }[] = [];
  walk<void>(VALUES, (path, leaf) => void rows.push({ name: path.join('.'), default: JSON.stringify(leaf.schema.default), description: leaf.description }), () => undefined);
  return rows;
}

/** Group descriptions by dotted path, for comments in values.yaml. */
export function describe(path: string[]): string | undefined {
  let spec: Spec = VALUES;
  for (const key of path) {
    if (!isGroup(spec)) return undefined;
    const next: Spec | undefined = spec.properties[key];
    if (!next) return undefined;
    spec = next;
  }
  return isGroup(spec) ? spec.description : spec.description;
}
