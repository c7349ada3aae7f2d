// What state a labelled pod is in, judged by the webhook's own core: decide() on the pod as if it
// were created now, with the namespace's readiness. The watchdog (app/controllers/) and
// `pando doctor` (app/cli/) both import this, so they and the webhook can never disagree.
// Pure: no I/O, no clock, no logger.

import type { AdmissionRequest, Container, Pod } from '../admission/types.ts';
import { DOMAIN, LABEL_PROTECT, SIDECAR_NAME } from '../contract.ts';
import { decideWith, type NamespaceReadiness, type ReviewContext } from '../inject/decide.ts';
import type { Reason } from '../inject/reasons.ts';
import type { InjectionPlan } from '../inject/sidecar.ts';
import type { NamespaceLookup } from '../kube/namespaces.ts';
import { NODE_OS_LABELS } from '../inject/os.ts';
import { sidecarContainerStatus, sidecarFailure, sidecarStatus, type ContainerStatusLike, type PodStatusLike, type SidecarFailure } from './sidecar-state.ts';

export const POD_STATES = ['protected', 'stale', 'unprotected', 'skipped', 'sidecar-failing'] as const;
export type PodState = (typeof POD_STATES)[number];

export interface Classification {
  state: PodState;
  /** decide()'s reason key: why a pod is skipped, or what the webhook would do with it now. */
  reason: Reason;
  /** decide()'s sentence, for logs, Events and doctor. */
  message: string;
  /** sidecar-failing: why the injected sidecar cannot start, in the kubelet's words. */
  sidecar?: SidecarFailure;
}

/**
 * protected: the webhook would change nothing (already-injected);
 * stale: it would replace the sidecar (reinjected: older version, config hash or mode);
 * unprotected: no sidecar, and it would inject one now;
 * skipped: it would leave the pod as it is for a reason (excluded namespace, namespace not set up,
 * pod resources, a hand-added sidecar, ...): reported with that reason, never healed, because a
 * new pod would come out the same (or, for an injected pod, lose its sidecar);
 * sidecar-failing: injected (protected or stale), but the kubelet cannot start the sidecar
 * (ErrImagePull, CrashLoopBackOff, CreateContainerConfigError, ...: app/pods/sidecar-state.ts);
 * never healed either: a new pod would get the same sidecar and fail the same way.
 */
export function classifyPod(pod: Pod, plan: InjectionPlan, context: ReviewContext = {}): Classification {
  const namespace = pod.metadata?.namespace;
  const request: AdmissionRequest = {
    uid: 'classification',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    operation: 'CREATE',
    ...(namespace ? { namespace } : {}),
    object: pod,
  } as AdmissionRequest;
  const decision = decideWith(request, plan, context);
  if (decision.action === 'inject') {
    if (decision.reason === 'reinjected') return withSidecarHealth(pod, { state: 'stale', reason: decision.reason, message: decision.message });
    return { state: 'unprotected', reason: decision.reason, message: decision.message };
  }
  if (decision.reason === 'already-injected') return withSidecarHealth(pod, { state: 'protected', reason: decision.reason, message: decision.message });
  return { state: 'skipped', reason: decision.reason, message: decision.message };
}

/** An injected pod whose sidecar the kubelet cannot start is sidecar-failing, with the kubelet's reason. */
function withSidecarHealth(pod: Pod, injected: Classification): Classification {
  const status = (pod as { status?: PodStatusLike }).status;
  if (!status?.initContainerStatuses && !status?.containerStatuses) return injected;
  const failure = sidecarFailure(sidecarStatus(status, SIDECAR_NAME), { name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '' }, SIDECAR_NAME);
  return failure ? { ...injected, state: 'sidecar-failing', sidecar: failure } : injected;
}

/** A pod the watchdog and doctor look at: not being deleted and not finished. */
export function isLive(pod: { metadata?: { deletionTimestamp?: unknown }; status?: { phase?: string } }): boolean {
  const phase = pod.status?.phase;
  return !pod.metadata?.deletionTimestamp && phase !== 'Succeeded' && phase !== 'Failed';
}

/** The controller that owns a pod (ReplicaSet, StatefulSet, DaemonSet, Job, ...), if any. */
export interface ControllerRef {
  kind: string;
  name: string;
  uid?: string;
}

/** Only what classification, reporting and healing read of a pod: memory stays small with many pods. */
export interface SlimPod extends Pod {
  metadata: { name: string; namespace: string; uid: string; labels: Record<string, string>; annotations: Record<string, string>; controller?: ControllerRef; deletionTimestamp?: string };
  /** The sidecar's container status, only while it is not running (what sidecar-failing reads). */
  status: { phase?: string; initContainerStatuses?: ContainerStatusLike[]; containerStatuses?: ContainerStatusLike[] };
}

// The replicas of a workload have the same containers: one frozen copy serves them all.
const sharedContainers = new Map<string, Container>();
const SHARED_LIMIT = 20_000;

function slimContainer(c: Container): Container {
  const out: Container = { name: c.name };
  if (c.restartPolicy !== undefined) out.restartPolicy = c.restartPolicy;
  if (c.resources !== undefined) out.resources = c.resources;
  // decide() reads the sidecar's mode from its env; other containers' env is not needed.
  if (c.name === SIDECAR_NAME && c.env) out.env = c.env.map((e) => ({ name: e.name, ...(e.value !== undefined ? { value: e.value } : {}) }));
  const key = JSON.stringify(out);
  const shared = sharedContainers.get(key);
  if (shared) return shared;
  if (sharedContainers.size >= SHARED_LIMIT) sharedContainers.clear();
  const frozen = Object.freeze(structuredClone(out));
  sharedContainers.set(key, frozen);
  return frozen;
}

/**
 * The fields of a pod (from a list or a watch event) that decide() and the watchdog read: our label
 * and annotations, the controller reference, container names, resources and restart policies, the
 * service account, pod-level resources, the OS (spec.os, the OS node selectors and required node
 * affinity). A field decide() starts to read must be kept here
 * too: test/pods/classify.test.ts classifies every golden pod both whole and slim and compares.
 */
export function slimPod(raw: any): SlimPod {
  const meta = raw?.metadata ?? {};
  const spec = raw?.spec ?? {};
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries((meta.annotations ?? {}) as Record<string, string>)) if (k.startsWith(`${DOMAIN}/`)) annotations[k] = v;
  const labels: Record<string, string> = {};
  const protect = meta.labels?.[LABEL_PROTECT];
  if (protect !== undefined) labels[LABEL_PROTECT] = protect;
  const ref = ((meta.ownerReferences ?? []) as Array<{ controller?: boolean; kind: string; name: string; uid?: string }>).find((r) => r.controller);
  const slimSpec: SlimPod['spec'] = { containers: ((spec.containers ?? []) as Container[]).map(slimContainer) };
  if (spec.initContainers) slimSpec.initContainers = (spec.initContainers as Container[]).map(slimContainer);
  for (const key of ['serviceAccountName', 'serviceAccount', 'resources', 'os'] as const) if (spec[key] !== undefined) slimSpec[key] = spec[key];
  // The OS rule (app/inject/os.ts) reads the OS node selectors (kubernetes.io/os and its beta
  // twin) and required node affinity.
  const osSelectors = NODE_OS_LABELS.filter((label) => spec.nodeSelector?.[label] !== undefined);
  if (osSelectors.length > 0) slimSpec.nodeSelector = Object.fromEntries(osSelectors.map((label) => [label, spec.nodeSelector[label]]));
  const requiredNodes = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (requiredNodes !== undefined) slimSpec.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: requiredNodes } };
  return {
    metadata: {
      name: meta.name ?? '',
      namespace: meta.namespace ?? '',
      uid: meta.uid ?? '',
      labels,
      annotations,
      ...(ref ? { controller: { kind: ref.kind, name: ref.name, ...(ref.uid ? { uid: ref.uid } : {}) } } : {}),
      ...(meta.deletionTimestamp ? { deletionTimestamp: String(meta.deletionTimestamp) } : {}),
    },
    spec: slimSpec,
    status: { ...(raw?.status?.phase ? { phase: raw.status.phase } : {}), ...slimSidecarStatus(raw?.status) },
  };
}

/**
 * The sidecar's status, in the same place (init or regular containers) and only while it is down:
 * a running sidecar is never sidecar-failing, so 10,000 healthy pods keep nothing of it.
 */
function slimSidecarStatus(status: PodStatusLike | undefined): Pick<SlimPod['status'], 'initContainerStatuses' | 'containerStatuses'> {
  const c = sidecarContainerStatus(status, SIDECAR_NAME);
  if (!c || c.state?.running !== undefined) return {};
  const { waiting, terminated } = c.state ?? {};
  const last = c.lastState?.terminated;
  const slim: ContainerStatusLike = {
    name: SIDECAR_NAME,
    ...(c.ready !== undefined ? { ready: c.ready } : {}),
    ...(c.restartCount !== undefined ? { restartCount: c.restartCount } : {}),
    state: {
      ...(waiting ? { waiting: pick(waiting, ['reason', 'message']) } : {}),
      ...(terminated ? { terminated: pick(terminated, ['reason', 'exitCode', 'message']) } : {}),
    },
    ...(last ? { lastState: { terminated: pick(last, ['reason', 'exitCode']) } } : {}),
  };
  const native = (status?.initContainerStatuses ?? []).includes(c);
  return native ? { initContainerStatuses: [slim] } : { containerStatuses: [slim] };
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** Where a namespace's readiness comes from (app/kube/namespaces.ts's cache, shared with the server). */
export interface ReadinessSource {
  get(namespace: string): Promise<NamespaceLookup>;
}

/**
 * classifyPod with the namespace's readiness looked up exactly when the server looks it up: only
 * for a pod that would otherwise be injected (app/server/server.ts's safeReview).
 */
export async function classifyWithReadiness(pod: Pod, plan: InjectionPlan, readiness: ReadinessSource | undefined): Promise<Classification> {
  const first = classifyPod(pod, plan);
  const namespace = pod.metadata?.namespace;
  if (!readiness || !namespace || (first.state !== 'unprotected' && first.state !== 'stale')) return first;
  const lookup = await readiness.get(namespace);
  // As app/server/server.ts's safeReview: a failed lookup is the webhook's namespace-check-failed skip.
  return classifyPod(pod, plan, lookup.ok ? { namespace: lookup.facts } : { namespaceLookupFailed: lookup.reason });
}
