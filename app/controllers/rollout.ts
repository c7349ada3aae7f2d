// The sidecar rollout (issue 24): after an upgrade changes the injected sidecar (version or config
// hash), the leader of the Lease `pando-webhook-rollout` restarts the workloads whose pods carry an
// older one, canary first, then in growing waves, and pauses cluster-wide at the first failing new
// sidecar. Each pass reads the cluster (workloads, their ReplicaSets, the labelled pods, the canary
// namespaces) and the persisted state (app/controllers/rollout-state.ts), asks the pure planner
// (app/controllers/rollout-plan.ts) and applies its answer: a restart stamps the pod template the
// way `kubectl rollout restart` does plus the target it was for, so a new leader knows.
import type { KubeConfig, V1OwnerReference } from '@kubernetes/client-node';
import { KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { RolloutConfig } from '../config.ts';
import { ANNOTATION_CONFIG_HASH, ANNOTATION_ROLLOUT_TARGET, ANNOTATION_STATUS, ANNOTATION_VERSION, EVENT_ROLLOUT_PAUSED, EVENT_ROLLOUT_RESTART, LABEL_PROTECT, LABEL_ROLLOUT, LEASE_ROLLOUT, ROLLOUT_CONFIGMAP, ROLLOUT_MANUAL, SIDECAR_NAME } from '../contract.ts';
import { statusOf } from '../kube/errors.ts';
import { RESTARTED_AT_ANNOTATION } from './heal.ts';
import { rawList } from './informer.ts';
import { startLeaderLoop, type ControllerLog, type LeaderLoop } from './loop.ts';
import {
  ROLLOUT_KINDS, WORKLOAD_STATES, planRollout, podHealth, progressDeadlineExceeded, rolloutComplete, targetKey, workloadKeyOf, workloadSize,
  type PodHealth, type RolloutKind, type RolloutPlan, type Target, type WorkloadView,
} from './rollout-plan.ts';
import { kubeRolloutStore, sameState, type RolloutStore } from './rollout-state.ts';
import { eventName, kubeEvents, type EventSink } from './watchdog.ts';

const COMPONENT = 'pando-webhook';

/** Only what the rollout reads of a Deployment, StatefulSet or DaemonSet. */
export interface SlimWorkload {
  kind: RolloutKind;
  metadata: { name: string; namespace: string; uid?: string; generation?: number; resourceVersion?: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: { replicas?: number; updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } }; templateAnnotations: Record<string, string> };
  status: Record<string, unknown>;
}

/** Only what the rollout reads of a pod: our annotations, its controller, the sidecar's status. */
export interface SlimRolloutPod {
  metadata: { name: string; namespace: string; annotations: Record<string, string>; controller?: { kind: string; name: string } };
  status: { initContainerStatuses?: unknown[]; containerStatuses?: unknown[] };
}

export interface ClusterSnapshot {
  workloads: SlimWorkload[];
  pods: SlimRolloutPod[];
  /** `namespace/name` of a ReplicaSet -> its Deployment's name. */
  replicaSetOwners: Map<string, string>;
  canaryNamespaces: Set<string>;
}

const OUR_ANNOTATIONS = [ANNOTATION_STATUS, ANNOTATION_VERSION, ANNOTATION_CONFIG_HASH];

function pick(from: Record<string, string> | undefined, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) if (from?.[k] !== undefined) out[k] = from[k];
  return out;
}

export function slimWorkload(kind: RolloutKind, raw: any): SlimWorkload {
  const m = raw?.metadata ?? {};
  const spec = raw?.spec ?? {};
  const status = raw?.status ?? {};
  return {
    kind,
    metadata: { name: m.name, namespace: m.namespace, uid: m.uid, generation: m.generation, resourceVersion: m.resourceVersion, labels: pick(m.labels, [LABEL_ROLLOUT]), annotations: pick(m.annotations, [LABEL_ROLLOUT]) },
    spec: { replicas: spec.replicas, updateStrategy: spec.updateStrategy, templateAnnotations: pick(spec.template?.metadata?.annotations, [RESTARTED_AT_ANNOTATION, ANNOTATION_ROLLOUT_TARGET]) },
    status: {
      observedGeneration: status.observedGeneration, replicas: status.replicas, updatedReplicas: status.updatedReplicas, availableReplicas: status.availableReplicas, readyReplicas: status.readyReplicas,
      currentRevision: status.currentRevision, updateRevision: status.updateRevision, desiredNumberScheduled: status.desiredNumberScheduled, updatedNumberScheduled: status.updatedNumberScheduled,
      numberAvailable: status.numberAvailable, conditions: (status.conditions ?? []).map((c: any) => ({ type: c.type, status: c.status, reason: c.reason })),
    },
  };
}

export function slimRolloutPod(raw: any): SlimRolloutPod {
  const m = raw?.metadata ?? {};
  const owner = (m.ownerReferences ?? []).find((r: any) => r.controller);
  const sidecar = (list: any[] | undefined) => (list ?? []).filter((c) => c?.name === SIDECAR_NAME);
  return {
    metadata: { name: m.name, namespace: m.namespace, annotations: pick(m.annotations, OUR_ANNOTATIONS), ...(owner ? { controller: { kind: owner.kind, name: owner.name } } : {}) },
    status: { initContainerStatuses: sidecar(raw?.status?.initContainerStatuses), containerStatuses: sidecar(raw?.status?.containerStatuses) },
  };
}

/** The planner's view of each workload that has injected pods or was restarted by the rollout. Pure. */
export function buildViews(snapshot: ClusterSnapshot, target: Target, skipNamespace: (namespace: string) => string | undefined): WorkloadView[] {
  const podsOf = new Map<string, PodHealth[]>();
  for (const pod of snapshot.pods) {
    if (pod.metadata.annotations[ANNOTATION_STATUS] === undefined) continue;
    const ref = pod.metadata.controller;
    if (!ref) continue;
    let kind = ref.kind;
    let name = ref.name;
    if (kind === 'ReplicaSet') {
      const deployment = snapshot.replicaSetOwners.get(`${pod.metadata.namespace}/${ref.name}`);
      if (!deployment) continue;
      kind = 'Deployment';
      name = deployment;
    }
    const key = workloadKeyOf({ namespace: pod.metadata.namespace, kind, name });
    const list = podsOf.get(key) ?? [];
    list.push(podHealth(pod as never, target, SIDECAR_NAME));
    podsOf.set(key, list);
  }
  const views: WorkloadView[] = [];
  for (const w of snapshot.workloads) {
    const key = workloadKeyOf({ namespace: w.metadata.namespace, kind: w.kind, name: w.metadata.name });
    const pods = podsOf.get(key);
    const restartedFor = w.spec.templateAnnotations[ANNOTATION_ROLLOUT_TARGET];
    if (!pods && !restartedFor) continue;
    const stamp = w.spec.templateAnnotations[RESTARTED_AT_ANNOTATION];
    const restartedAt = stamp ? Date.parse(stamp) : Number.NaN;
    const object = { metadata: { generation: w.metadata.generation }, spec: w.spec, status: w.status } as Parameters<typeof rolloutComplete>[1];
    const skip = skipNamespace(w.metadata.namespace);
    views.push({
      kind: w.kind,
      namespace: w.metadata.namespace,
      name: w.metadata.name,
      ...(w.metadata.uid ? { uid: w.metadata.uid } : {}),
      size: workloadSize(w.kind, object),
      manual: w.metadata.labels[LABEL_ROLLOUT] === ROLLOUT_MANUAL || w.metadata.annotations[LABEL_ROLLOUT] === ROLLOUT_MANUAL,
      canary: snapshot.canaryNamespaces.has(w.metadata.namespace),
      ...(skip ? { skip } : {}),
      ...(restartedFor ? { restartedFor } : {}),
      ...(restartedFor && !Number.isNaN(restartedAt) ? { restartedAt } : {}),
      complete: rolloutComplete(w.kind, object),
      progressDeadlineExceeded: progressDeadlineExceeded(object),
      pods: pods ?? [],
    });
  }
  return views;
}

export interface RolloutMetrics {
  workloads: Gauge<'state'>;
  paused: Gauge;
  restarts: Counter<'kind'>;
  /** The planner's own CPU per pass (buildViews + planRollout), the lists excluded: the issue's 50 ms. */
  passSeconds: Histogram;
}

export function createRolloutMetrics(registry: Registry): RolloutMetrics {
  return {
    workloads: new Gauge({ name: 'pandocore_rollout_workloads', help: 'Workloads of the sidecar rollout by state (done, in-progress, waiting, failed, manual, skipped); set by the rollout leader only.', labelNames: ['state'], registers: [registry] }),
    paused: new Gauge({ name: 'pandocore_rollout_paused', help: '1 while the sidecar rollout is paused (a failing new sidecar, or pando rollout pause); set by the rollout leader only.', registers: [registry] }),
    restarts: new Counter({ name: 'pandocore_rollout_restarts_total', help: 'Workloads restarted by the sidecar rollout, by kind.', labelNames: ['kind'], registers: [registry] }),
    passSeconds: new Histogram({
      name: 'pandocore_rollout_pass_seconds',
      help: 'CPU seconds the rollout leader spends planning one pass (building its view of the workloads and planning), after the lists and before any write.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}

export interface WorkloadPatcher {
  /**
   * Restarts the workload for `target` unless its template already names that target: reads it,
   * then a merge patch with the resourceVersion read (a 409 means it changed: not restarted now).
   */
  restart(w: WorkloadView, target: string, at: Date): Promise<'restarted' | 'already' | 'conflict'>;
}

/** RFC 3339 seconds, as kubectl rollout restart writes it. */
export function restartStamp(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The patch: exactly the two template annotations (the admission policy allows these and nothing else). */
export function restartPatch(w: { kind: string; namespace: string; name: string }, target: string, at: Date, resourceVersion?: string): object {
  return {
    apiVersion: 'apps/v1',
    kind: w.kind,
    metadata: { name: w.name, namespace: w.namespace, ...(resourceVersion ? { resourceVersion } : {}) },
    spec: { template: { metadata: { annotations: { [RESTARTED_AT_ANNOTATION]: restartStamp(at), [ANNOTATION_ROLLOUT_TARGET]: target } } } },
  };
}

export function kubePatcher(kc: KubeConfig): WorkloadPatcher {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  return {
    async restart(w, target, at) {
      const ref = { apiVersion: 'apps/v1', kind: w.kind, metadata: { name: w.name, namespace: w.namespace } };
      const live = (await objects.read(ref)) as KubernetesObject & { spec?: { template?: { metadata?: { annotations?: Record<string, string> } } } };
      if (live.spec?.template?.metadata?.annotations?.[ANNOTATION_ROLLOUT_TARGET] === target) return 'already';
      try {
        await objects.patch(restartPatch(w, target, at, live.metadata?.resourceVersion) as KubernetesObject, undefined, undefined, COMPONENT, undefined, PatchStrategy.MergePatch);
        return 'restarted';
      } catch (err) {
        if (statusOf(err) === 409) return 'conflict';
        throw err;
      }
    },
  };
}

export interface RolloutDeps {
  target: Target;
  config: RolloutConfig;
  /** Why the rollout leaves a namespace alone (excluded, the webhook's own), else undefined. */
  skipNamespace(namespace: string): string | undefined;
  snapshot(): Promise<ClusterSnapshot>;
  store: RolloutStore;
  patcher: WorkloadPatcher;
  events: EventSink;
  metrics: RolloutMetrics;
  log: ControllerLog;
  now?: () => number;
}

export interface RolloutCore {
  /** One pass: read, plan, persist, restart. One at a time; resolves with the plan (undefined when nothing was planned). */
  pass(): Promise<RolloutPlan | undefined>;
  /** Leadership lost: a pass in flight stops at its next step, the gauges go. */
  clear(): void;
}

export function createRolloutCore(deps: RolloutDeps): RolloutCore {
  const now = deps.now ?? Date.now;
  const target = targetKey(deps.target);
  let epoch = 0;
  let missingWarned = false;
  let passing: Promise<unknown> = Promise.resolve();
  let lastWait = '';

  async function passOnce(current: () => boolean): Promise<RolloutPlan | undefined> {
    const stored = await deps.store.read();
    if (!current()) return undefined;
    if (!stored) {
      if (!missingWarned) deps.log.warn({ configMap: ROLLOUT_CONFIGMAP }, 'rollout: its ConfigMap is missing (the chart creates it): nothing is restarted');
      missingWarned = true;
      return undefined;
    }
    missingWarned = false;
    const snapshot = await deps.snapshot();
    if (!current()) return undefined;
    const at = now();
    // CPU, not wall time: on a busy node a wall clock counts the time others held the core.
    const planning = process.cpuUsage();
    const views = buildViews(snapshot, deps.target, deps.skipNamespace);
    const plan = planRollout({ target: deps.target, workloads: views, state: stored.state, limits: deps.config, now: at });
    const used = process.cpuUsage(planning);
    deps.metrics.passSeconds.observe((used.user + used.system) / 1e6);
    const counts = Object.fromEntries(WORKLOAD_STATES.map((s) => [s, 0])) as Record<string, number>;
    for (const v of plan.verdicts.values()) counts[v.state]!++;
    for (const state of WORKLOAD_STATES) deps.metrics.workloads.set({ state }, counts[state]!);
    deps.metrics.paused.set(plan.next.paused ? 1 : 0);
    if (!sameState(plan.next, stored.state)) {
      // Persisted before anything is restarted: a pause written meanwhile (pando rollout pause) wins.
      if (!(await deps.store.write(plan.next, stored.resourceVersion))) {
        deps.log.info({}, 'rollout: its state changed meanwhile; planning again next pass');
        return plan;
      }
      if (!current()) return plan;
    }
    if (plan.pause) {
      const f = plan.pause;
      const [namespace, kind, name] = f.workload.split('/') as [string, string, string];
      const uid = buildUid(snapshot, f.workload);
      deps.log.warn({ namespace, workload: `${kind}/${name}`, pod: f.pod, reason: f.reason, target }, `rollout: paused cluster-wide: ${f.message}`);
      await deps.events({
        name: eventName(name, f.at.toString(16), 'rollout-paused'),
        namespace,
        involved: { apiVersion: 'apps/v1', kind, name, ...(uid ? { uid } : {}) },
        type: 'Warning',
        reason: EVENT_ROLLOUT_PAUSED,
        message: `PandoCore sidecar rollout to ${target} paused: ${f.pod ? `pod ${f.pod}: ` : ''}${f.reason}: ${f.message}; fix the sidecar (helm rollback, or a corrected version), then: pando rollout resume`,
      }).catch((err: unknown) => deps.log.warn({ namespace, name, reason: (err as Error).message }, 'rollout: recording an Event failed'));
      return plan;
    }
    if (plan.wait && plan.wait !== lastWait) deps.log.info({ target, ...counts }, `rollout: ${plan.wait}`);
    lastWait = plan.wait ?? '';
    for (const key of plan.restart) {
      if (!current()) return plan;
      const [namespace, kind, name] = key.split('/') as [string, RolloutKind, string];
      const view = { kind, namespace, name } as WorkloadView;
      let outcome: Awaited<ReturnType<WorkloadPatcher['restart']>>;
      try {
        outcome = await deps.patcher.restart(view, target, new Date(at));
      } catch (err) {
        deps.log.warn({ namespace, workload: `${kind}/${name}`, reason: (err as Error).message }, 'rollout: restart failed');
        continue;
      }
      if (outcome !== 'restarted') continue;
      deps.metrics.restarts.inc({ kind });
      deps.log.info({ namespace, workload: `${kind}/${name}`, target }, 'rollout: restarted workload for the new sidecar');
      const uid = buildUid(snapshot, key);
      await deps.events({
        name: eventName(name, at.toString(16), 'rollout-restart'),
        namespace,
        involved: { apiVersion: 'apps/v1', kind, name, ...(uid ? { uid } : {}) },
        type: 'Normal',
        reason: EVENT_ROLLOUT_RESTART,
        message: `restarted by the PandoCore sidecar rollout for sidecar ${target}`,
      }).catch((err: unknown) => deps.log.warn({ namespace, name, reason: (err as Error).message }, 'rollout: recording an Event failed'));
    }
    if (plan.complete && lastWait !== 'complete') {
      deps.log.info({ target, ...counts }, 'rollout: complete');
      lastWait = 'complete';
    }
    return plan;
  }

  return {
    pass() {
      const mine = epoch;
      const run = passing.then(() => (mine === epoch ? passOnce(() => mine === epoch) : undefined));
      passing = run.catch(() => undefined);
      return run;
    },
    clear() {
      epoch++;
      lastWait = '';
      for (const state of WORKLOAD_STATES) deps.metrics.workloads.remove({ state });
      deps.metrics.paused.reset();
    },
  };
}

function buildUid(snapshot: ClusterSnapshot, key: string): string | undefined {
  return snapshot.workloads.find((w) => workloadKeyOf({ namespace: w.metadata.namespace, kind: w.kind, name: w.metadata.name }) === key)?.metadata.uid;
}

const PATHS: Record<RolloutKind, string> = { Deployment: '/apis/apps/v1/deployments', StatefulSet: '/apis/apps/v1/statefulsets', DaemonSet: '/apis/apps/v1/daemonsets' };

async function listAll<T>(kc: KubeConfig, path: string, labelSelector: string, slim: (raw: any) => T): Promise<T[]> {
  const list = rawList(kc, path, slim);
  const out: T[] = [];
  let token: string | undefined;
  do {
    const page = await list({ labelSelector, limit: 500, ...(token ? { _continue: token } : {}) });
    out.push(...page.items);
    token = page.metadata?._continue || undefined;
  } while (token);
  return out;
}

/** The cluster as the rollout reads it each pass: paged lists, each object made slim as it arrives. */
export function kubeSnapshot(kc: KubeConfig, canarySelector: string): () => Promise<ClusterSnapshot> {
  return async () => {
    const [workloads, replicaSets, pods, canaries] = await Promise.all([
      Promise.all(ROLLOUT_KINDS.map((kind) => listAll(kc, PATHS[kind], '', (raw) => slimWorkload(kind, raw)))).then((lists) => lists.flat()),
      listAll(kc, '/apis/apps/v1/replicasets', '', (raw: any) => ({ namespace: raw?.metadata?.namespace as string, name: raw?.metadata?.name as string, deployment: (raw?.metadata?.ownerReferences ?? []).find((r: any) => r.controller && r.kind === 'Deployment')?.name as string | undefined })),
      listAll(kc, '/api/v1/pods', `${LABEL_PROTECT}=true`, slimRolloutPod),
      canarySelector === '' ? Promise.resolve([]) : listAll(kc, '/api/v1/namespaces', canarySelector, (raw: any) => raw?.metadata?.name as string),
    ]);
    const replicaSetOwners = new Map<string, string>();
    for (const rs of replicaSets) if (rs.deployment) replicaSetOwners.set(`${rs.namespace}/${rs.name}`, rs.deployment);
    return { workloads, pods, replicaSetOwners, canaryNamespaces: new Set(canaries) };
  };
}

export interface RolloutOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  identity: string;
  target: Target;
  config: RolloutConfig;
  excludedNamespaces: readonly string[];
  registry: Registry;
  log: ControllerLog;
  ownerReferences?: V1OwnerReference[];
  /** @default 15 */
  leaseDurationSeconds?: number;
}

/** Starts the rollout on the leader of its Lease: one pass per interval. */
export function startRollout(options: RolloutOptions): LeaderLoop {
  const excluded = new Set(options.excludedNamespaces);
  const core = createRolloutCore({
    target: options.target,
    config: options.config,
    skipNamespace: (ns) => (ns === options.namespace ? 'own-namespace' : excluded.has(ns) ? 'namespace-excluded' : undefined),
    snapshot: kubeSnapshot(options.kubeConfig, options.config.canarySelector),
    store: kubeRolloutStore(options.kubeConfig, options.namespace, ROLLOUT_CONFIGMAP),
    patcher: kubePatcher(options.kubeConfig),
    events: kubeEvents(options.kubeConfig, options.identity, 'rollout'),
    metrics: createRolloutMetrics(options.registry),
    log: options.log,
  });
  let last = 0;
  return startLeaderLoop({
    name: 'rollout',
    lease: { kubeConfig: options.kubeConfig, namespace: options.namespace, name: LEASE_ROLLOUT, ownerReferences: options.ownerReferences },
    identity: options.identity,
    log: options.log,
    leaseDurationSeconds: options.leaseDurationSeconds ?? 15,
    intervalMs: Math.min(5000, options.config.intervalMs),
    async round() {
      if (Date.now() - last < options.config.intervalMs) return;
      last = Date.now();
      // Not awaited: a long pass must never hold up the Lease renewal of the next round.
      void core.pass().catch((err: unknown) => options.log.warn({ reason: (err as Error).message }, 'rollout: pass failed'));
    },
    letGo() {
      last = 0;
      core.clear();
    },
  });
}
