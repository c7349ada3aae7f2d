// The chart's values, defined once: defaults, JSON schema, values.yaml comments and the README
// table are all generated from VALUES below, so helm rejects what the constructs would reject.
import { MODES } from '../app/contract.ts';
import { DEFAULT_EXCLUDED_NAMESPACES, DEFAULT_SIDECAR_RESOURCES } from '../app/config.ts';

export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

/** The values a user sets (helm --set / -f, or PANDO_VALUES for a plain cdk8s synth). */
export interface Values {
  licenseKey: string;
  defaultMode: (typeof MODES)[number];
  excludedNamespaces: string[];
  protectedNamespaces: string[];
  replicas: number;
  image: { repository: string; tag: string; digest: string; pullPolicy: 'Always' | 'IfNotPresent' | 'Never' };
  imagePullSecrets: { name: string }[];
  sidecar: { image: { repository: string; tag: string }; native: boolean; resources: ResourceRequirements };
  resources: ResourceRequirements;
  timeoutSeconds: number;
  logLevel: string;
  namespaceCheck: boolean;
  namespaceSetup: { auto: boolean };
  tls: {
    certManager: boolean;
    caValidityDays: number;
    leafValidityDays: number;
    rotateAtPercent: number;
    extraDnsNames: string[];
    extraIpAddresses: string[];
  };
  webhook: { url: string; caBundle: string };
  hpa: { enabled: boolean; maxReplicas: number; targetCPUUtilizationPercentage: number };
  podDisruptionBudget: { enabled: boolean; minAvailable: number };
  networkPolicy: { enabled: boolean; ingressFrom: unknown[] };
  secretPolicy: { enabled: boolean };
  serviceMonitor: { enabled: boolean; interval: string };
  nodeSelector: Record<string, string>;
  tolerations: unknown[];
  affinity: Record<string, unknown>;
  priorityClassName: string;
  podAnnotations: Record<string, string>;
  terminationGracePeriodSeconds: number;
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
const resourceListSchema = { type: 'object', additionalProperties: { type: 'string', pattern: QUANTITY } };
const resourcesSchema = (value: ResourceRequirements) => ({
  type: 'object',
  additionalProperties: false,
  properties: { requests: resourceListSchema, limits: resourceListSchema },
  default: value,
});
const namespaceList = (value: readonly string[]) => ({
  type: 'array',
  items: { type: 'string', pattern: DNS_LABEL },
  uniqueItems: true,
  default: [...value],
});
const leaf = (description: string, schema: Leaf['schema']): Leaf => ({ description, schema });

export const VALUES: Group = {
  properties: {
    licenseKey: leaf('PandoCore license key (required). Stored in the Secret pando-license of the release namespace, never in a pod spec.', { type: 'string', default: '' }),
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
          },
        },
        native: leaf('Inject a native sidecar (initContainer with restartPolicy Always) so Jobs complete; false appends to containers.', { type: 'boolean', default: true }),
        resources: leaf('Sidecar requests and limits (cpu and memory are required: quota namespaces reject containers without them).', {
          ...resourcesSchema({ requests: { ...DEFAULT_SIDECAR_RESOURCES.requests }, limits: { ...DEFAULT_SIDECAR_RESOURCES.limits } }),
          required: ['requests', 'limits'],
        }),
      },
    },
    resources: leaf('Requests and limits of the webhook container.', resourcesSchema({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '256Mi' } })),
    timeoutSeconds: leaf('How long the API server waits for the webhook (1-30 s); after that the pod is created without the sidecar.', { type: 'integer', minimum: 1, maximum: 30, default: 5 }),
    logLevel: leaf('Webhook log level.', { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], default: 'info' }),
    namespaceCheck: leaf('Skip injection (with a warning) in namespaces without the ServiceAccount and license Secret, instead of creating pods that cannot start.', { type: 'boolean', default: true }),
    namespaceSetup: {
      properties: {
        auto: leaf('The webhook (one replica, leader on a Lease) keeps the per-namespace setup in namespaces labelled pandocore.xyz/protect-namespace: "true"; adds the RBAC for it.', { type: 'boolean', default: false }),
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
      description: 'Out-of-cluster development only: call a webhook outside the cluster.',
      properties: {
        url: leaf('Development only: clientConfig.url instead of the Service (for example https://127.0.0.1:8443/mutate).', { type: 'string', pattern: '^(https://.+)?$', default: '' }),
        caBundle: leaf('Development only: base64 PEM CA bundle for webhook.url when the webhook does not manage it.', { type: 'string', pattern: '^[A-Za-z0-9+/=]*$', default: '' }),
      },
    },
    hpa: {
      description: 'HorizontalPodAutoscaler (autoscaling/v2); its minimum is replicas.',
      properties: {
        enabled: leaf('Create the autoscaler.', { type: 'boolean', default: true }),
        maxReplicas: leaf('Autoscaler maximum (at least replicas).', { type: 'integer', minimum: 1, maximum: 100, default: 5 }),
        targetCPUUtilizationPercentage: leaf('Average CPU utilisation the autoscaler aims at.', { type: 'integer', minimum: 1, maximum: 100, default: 75 }),
      },
    },
    podDisruptionBudget: {
      properties: {
        enabled: leaf('Create the PodDisruptionBudget.', { type: 'boolean', default: true }),
        minAvailable: leaf('Webhook pods kept through voluntary disruptions.', { type: 'integer', minimum: 0, default: 1 }),
      },
    },
    networkPolicy: {
      properties: {
        enabled: leaf('Admit only the webhook and metrics ports.', { type: 'boolean', default: true }),
        ingressFrom: leaf(
          'Sources (NetworkPolicy peers: ipBlock, namespaceSelector, podSelector) admitted to the webhook port; empty: any. Where the API server\'s source can be selected (an ipBlock of the control-plane addresses, or its namespace where it runs as pods), restrict to it.',
          { type: 'array', items: { type: 'object' }, default: [] },
        ),
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
    serviceMonitor: {
      properties: {
        enabled: leaf('Create a Prometheus Operator ServiceMonitor (needs its CRD).', { type: 'boolean', default: false }),
        interval: leaf('Scrape interval.', { type: 'string', pattern: '^[0-9]+(ms|s|m|h)$', default: '30s' }),
      },
    },
    nodeSelector: leaf('Node selector of the webhook pods.', { type: 'object', additionalProperties: { type: 'string' }, default: {} }),
    tolerations: leaf('Tolerations of the webhook pods.', { type: 'array', items: { type: 'object' }, default: [] }),
    affinity: leaf('Affinity of the webhook pods (pods are spread across nodes by a topology spread constraint already).', { type: 'object', default: {} }),
    priorityClassName: leaf('Priority class of the webhook pods.', { type: 'string', default: '' }),
    podAnnotations: leaf('Extra annotations of the webhook pods.', { type: 'object', additionalProperties: { type: 'string' }, default: {} }),
    terminationGracePeriodSeconds: leaf('Grace period of the webhook pods (the webhook drains for 3 s, then stops within 9 s).', { type: 'integer', minimum: 13, maximum: 300, default: 30 }),
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
