// The benchmark's AdmissionReviews, generated: a small pod (about 2 KB), a typical one (about 12 KB:
// 5 containers with env, volumes and probes) and a large one (about 1 MiB), each shaped as the API
// server sends them after defaulting (token volume, tolerations, ...). Each comes as a labelled
// CREATE (full injection) and as the reinvocation of the same request after our patch was applied
// (reinvocationPolicy IfNeeded: the answer must be no patch).

import fastJsonPatch from 'fast-json-patch';
import type { AdmissionReview, Pod, VolumeMount } from '../app/admission/types.ts';
import { loadConfig, type Config } from '../app/config.ts';
import { review } from '../app/inject/review.ts';
import { planInjection, type InjectionPlan } from '../app/inject/sidecar.ts';

export type Size = 'small' | 'typical' | 'large';
export type Phase = 'create' | 'reinvocation';

export interface Load {
  /** e.g. typical-create */
  id: string;
  size: Size;
  phase: Phase;
  /** The review as sent, JSON. */
  body: Buffer;
  /** The pod in the request. */
  pod: Pod;
  /** What the pod must look like after the answer's patch (for the sanity check). */
  expectedPod: Pod;
  /** Whether the webhook answers with a patch. */
  patched: boolean;
}

const NAMESPACE = 'shop';

/** The environment the benchmarked webhook runs with (besides ports and certificate files). */
export const BENCH_ENV = {
  PANDO_NAMESPACE: 'pando-system',
  PANDO_NAMESPACE_CHECK: 'false',
  PANDO_SHUTDOWN_DELAY_MS: '0',
} as const;

export function benchConfig(): Config {
  return loadConfig({ ...BENCH_ENV });
}

function tokenVolume(suffix: string) {
  return {
    name: `kube-api-access-${suffix}`,
    projected: {
      defaultMode: 420,
      sources: [
        { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
}

function probe(path: string, port: number, period: number) {
  return {
    httpGet: { path, port, scheme: 'HTTP' },
    initialDelaySeconds: 5,
    timeoutSeconds: 1,
    periodSeconds: period,
    successThreshold: 1,
    failureThreshold: 3,
  };
}

function container(name: string, image: string, envCount: number, extraMounts: VolumeMount[], probes: boolean, tokenSuffix: string) {
  const env = Array.from({ length: envCount }, (_, i) =>
    i % 4 === 3
      ? { name: `${name.toUpperCase().replace(/-/g, '_')}_SECRET_${i}`, valueFrom: { secretKeyRef: { name: `${name}-secrets`, key: `key-${i}` } } }
      : { name: `${name.toUpperCase().replace(/-/g, '_')}_SETTING_${i}`, value: `value-${i}-${'x'.repeat(i % 7 * 4)}` },
  );
  return {
    name,
    image,
    ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
    env,
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
    volumeMounts: [...extraMounts, { name: `kube-api-access-${tokenSuffix}`, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
    ...(probes ? { livenessProbe: probe('/healthz', 8080, 10), readinessProbe: probe('/readyz', 8080, 5), startupProbe: probe('/healthz', 8080, 2) } : {}),
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
    securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
  };
}

interface PodShape {
  name: string;
  containers: number;
  envPerContainer: number;
  probes: boolean;
  extraVolumes: boolean;
  annotationBytes: number;
}

function pod(shape: PodShape): Pod {
  const tokenSuffix = 'x7k2p';
  const mounts = shape.extraVolumes
    ? [
        { name: 'config', mountPath: '/etc/app', readOnly: true },
        { name: 'tls', mountPath: '/etc/tls', readOnly: true },
        { name: 'cache', mountPath: '/var/cache/app' },
      ]
    : [];
  const volumes = shape.extraVolumes
    ? [
        { name: 'config', configMap: { name: `${shape.name}-config`, defaultMode: 420 } },
        { name: 'tls', secret: { secretName: `${shape.name}-tls`, defaultMode: 420 } },
        { name: 'cache', emptyDir: { sizeLimit: '1Gi' } },
      ]
    : [];
  const names = ['app', 'envoy', 'log-shipper', 'metrics-exporter', 'config-reloader', 'cache', 'worker', 'scheduler'];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${shape.name}-7d9f8b6c5-`,
      namespace: NAMESPACE,
      labels: { app: shape.name, 'pod-template-hash': '7d9f8b6c5', 'pandocore.xyz/protect': 'true' },
      annotations: {
        'kubectl.kubernetes.io/restartedAt': '2026-11-20T10:00:00Z',
        ...(shape.annotationBytes > 0 ? { 'example.com/blob': 'b'.repeat(shape.annotationBytes) } : {}),
      },
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${shape.name}-7d9f8b6c5`, uid: '9b2f6a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b', controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      volumes: [...volumes, tokenVolume(tokenSuffix)],
      containers: Array.from({ length: shape.containers }, (_, i) => {
        const name = names[i % names.length]! + (i >= names.length ? `-${i}` : '');
        return container(name, `registry.example.com/${shape.name}/${name}:2.14.${i}`, shape.envPerContainer, mounts, shape.probes, tokenSuffix);
      }),
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
  };
}

const SHAPES: Record<Size, PodShape> = {
  small: { name: 'hello', containers: 1, envPerContainer: 0, probes: false, extraVolumes: false, annotationBytes: 0 },
  typical: { name: 'checkout', containers: 5, envPerContainer: 10, probes: true, extraVolumes: true, annotationBytes: 0 },
  // Many containers with long env lists: the shape of the largest pods seen in practice.
  large: { name: 'monolith', containers: 16, envPerContainer: 830, probes: true, extraVolumes: true, annotationBytes: 0 },
};

function admissionReview(object: Pod, uid: string): AdmissionReview {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: '',
      namespace: NAMESPACE,
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: '3f1c2b4a-5d6e-4f70-8a1b-2c3d4e5f6a7b',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

/** The six loads, and the plan they were computed with. */
export function generateLoads(config: Config = benchConfig()): { loads: Load[]; plan: InjectionPlan } {
  const plan = planInjection(config);
  const loads: Load[] = [];
  for (const size of ['small', 'typical', 'large'] as const) {
    const original = pod(SHAPES[size]);
    const create = admissionReview(original, `7b0c5a3e-0000-4000-8000-00000000${size.length}0a1`);
    // The webhook's own answer, applied once, gives the pod of the reinvocation.
    const outcome = review(create.request!, plan);
    if (outcome.patch.length === 0) throw new Error(`bench: the ${size} pod was not injected (${outcome.reason})`);
    const injected = fastJsonPatch.applyPatch(structuredClone(original), outcome.patch, true, false).newDocument;
    const again = admissionReview(injected, `7b0c5a3e-0000-4000-8000-00000000${size.length}0a1`);
    const second = review(again.request!, plan);
    if (second.patch.length !== 0) throw new Error(`bench: reinvocation of the ${size} pod was not a no-op (${second.reason})`);
    loads.push({ id: `${size}-create`, size, phase: 'create', body: Buffer.from(JSON.stringify(create)), pod: original, expectedPod: injected, patched: true });
    loads.push({ id: `${size}-reinvocation`, size, phase: 'reinvocation', body: Buffer.from(JSON.stringify(again)), pod: injected, expectedPod: injected, patched: false });
  }
  return { loads, plan };
}

/**
 * A labelled CREATE of at least `bytes` (the large shape with longer env lists), for the overload
 * burst: 3 MiB is the largest object the API server stores.
 */
export function sizedCreate(bytes: number, uid: string): Buffer {
  // The pod's size grows about linearly with the env lists: a line through two samples.
  const size = (env: number) => JSON.stringify(pod({ ...SHAPES.large, envPerContainer: env })).length;
  const perHundred = size(200) - size(100);
  const envPerContainer = Math.ceil(100 + ((bytes - size(100)) / perHundred) * 100);
  return Buffer.from(JSON.stringify(admissionReview(pod({ ...SHAPES.large, envPerContainer }), uid)));
}

if (import.meta.main) {
  // node bench/reviews.ts: print the loads and their sizes.
  for (const load of generateLoads().loads) {
    process.stdout.write(`${load.id.padEnd(22)} ${String(load.body.length).padStart(8)} bytes  ${load.patched ? 'patch' : 'no patch'}\n`);
  }
}
