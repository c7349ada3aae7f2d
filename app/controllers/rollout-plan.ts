// The sidecar rollout's planner (issue 24): given the target sidecar, the workloads as the cluster
// shows them, the persisted state (paused, failure) and the limits, what to do next. Pure: no I/O,
// no clock (`now` is an input), no logger. Everything it decides derives from what the cluster
// holds (each restart stamps the target into the workload's template), so a new leader that reads
// the same cluster and the same persisted state makes the same plan.

import { ANNOTATION_CONFIG_HASH, ANNOTATION_STATUS, ANNOTATION_VERSION, STATUS_INJECTED } from '../contract.ts';
import { crashLoopDetail, isFailureReason, sidecarStatus, type PodStatusLike } from '../pods/sidecar-state.ts';

export const ROLLOUT_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet'] as const;
export type RolloutKind = (typeof ROLLOUT_KINDS)[number];

export const WORKLOAD_STATES = ['done', 'in-progress', 'waiting', 'failed', 'manual', 'skipped'] as const;
export type WorkloadState = (typeof WORKLOAD_STATES)[number];

export interface Target {
  version: string;
  configHash: string;
}

/** `<version>/<config hash>`: what the template annotation `pandocore.xyz/rollout-target` holds. */
export function targetKey(t: Target): string {
  return `${t.version}/${t.configHash}`;
}

/** The sidecar of one pod, as its status shows it. */
export interface PodHealth {
  name: string;
  /** The pod carries the target sidecar (its version and config-hash annotations match). */
  current: boolean;
  /** The pod carries an injected sidecar of another version or configuration. */
  stale: boolean;
  sidecarReady: boolean;
  restartCount: number;
  /** The sidecar's waiting reason (CrashLoopBackOff, ImagePullBackOff, ...) or last terminated reason (OOMKilled). */
  problem?: string;
  /** When the sidecar's current run started (ms). */
  runningSince?: number;
  /** How the sidecar last exited, when it is down now and was restarted before (a crash loop). */
  exited?: { code?: number; reason?: string };
}

export interface WorkloadView {
  kind: RolloutKind;
  namespace: string;
  name: string;
  uid?: string;
  /** Desired replicas (DaemonSet: desiredNumberScheduled): the canary is the smallest. */
  size: number;
  /** Opted out (`pandocore.xyz/rollout: manual`): reported only. */
  manual: boolean;
  /** In a namespace labelled `pandocore.xyz/rollout-canary: "true"`. */
  canary: boolean;
  /** A reason the rollout leaves it alone (excluded namespace, ...); reported as skipped. */
  skip?: string;
  /** The target its template was last restarted for (`pandocore.xyz/rollout-target`). */
  restartedFor?: string;
  /** When (ms, from `kubectl.kubernetes.io/restartedAt`). */
  restartedAt?: number;
  /** The workload controller's own verdict (rolloutComplete). */
  complete: boolean;
  /** Deployment condition Progressing=False, reason ProgressDeadlineExceeded. */
  progressDeadlineExceeded: boolean;
  pods: PodHealth[];
}

export interface Failure {
  /** `namespace/Kind/name`. */
  workload: string;
  pod?: string;
  reason: string;
  message: string;
  /** ms */
  at: number;
}

/** What the chart's ConfigMap holds. */
export interface PersistedState {
  target?: string;
  paused: boolean;
  failure?: Failure;
}

export interface Limits {
  /** Workloads in progress at once, cluster-wide. */
  maxConcurrent: number;
  /** How long every new pod's sidecar must have run Ready with no restart. */
  soakMs: number;
  /** A restarted workload whose new pods are not all Ready with the sidecar by then has failed. */
  readyDeadlineMs: number;
}

export interface WorkloadVerdict {
  key: string;
  state: WorkloadState;
  /** A sentence: why waiting, what failed, why skipped. */
  detail?: string;
}

export interface RolloutPlan {
  /** Workloads to restart now for `target` (keys, in order). */
  restart: string[];
  /** Set when this pass found the first failure: pause cluster-wide. */
  pause?: Failure;
  /** Why nothing (more) is restarted now, when that is so. */
  wait?: string;
  /** Every workload that is part of this rollout is done (manual and skipped ones are not). */
  complete: boolean;
  verdicts: Map<string, WorkloadVerdict>;
  /** What to persist after this pass (target recorded, pause set). */
  next: PersistedState;
}

export function workloadKeyOf(w: { namespace: string; kind: string; name: string }): string {
  return `${w.namespace}/${w.kind}/${w.name}`;
}

/** Whether a pod's annotations show an injected sidecar, and whether it is the target's. */
export function podSidecar(annotations: Record<string, string> | undefined, target: Target): { current: boolean; stale: boolean } {
  if (annotations?.[ANNOTATION_STATUS] !== STATUS_INJECTED) return { current: false, stale: false };
  const current = annotations[ANNOTATION_VERSION] === target.version && annotations[ANNOTATION_CONFIG_HASH] === target.configHash;
  return { current, stale: !current };
}

/** The first failing new pod of a restarted workload, or the deadline it missed. */
function failureOf(w: WorkloadView): Omit<Failure, 'workload' | 'at'> | undefined {
  if (w.progressDeadlineExceeded) return { reason: 'ProgressDeadlineExceeded', message: `the ${w.kind}'s rollout made no progress within its progressDeadlineSeconds` };
  for (const p of w.pods) {
    if (!p.current) continue;
    // A new pod fails on every reason the watchdog counts as sidecar-failing (app/pods/sidecar-state.ts).
    if (isFailureReason(p.problem)) {
      return { pod: p.name, reason: p.problem, message: `the new sidecar of pod ${p.name} is in ${p.problem}${crashLoopDetail(p)}` };
    }
  }
  return undefined;
}

/** Rolled out, and every new pod's sidecar Ready with no restart. */
function healthy(w: WorkloadView): boolean {
  if (!w.complete) return false;
  const fresh = w.pods.filter((p) => p.current);
  if (w.pods.some((p) => p.stale)) return false;
  return fresh.every((p) => p.sidecarReady && p.restartCount === 0);
}

/** When the soak of a healthy workload started: the latest start of a new pod's sidecar. */
function soakStart(w: WorkloadView): number {
  let start = w.restartedAt ?? 0;
  for (const p of w.pods) if (p.current && p.runningSince !== undefined) start = Math.max(start, p.runningSince);
  return start;
}

function judge(w: WorkloadView, target: string, limits: Limits, now: number): { state: WorkloadState; detail?: string; failure?: Omit<Failure, 'workload' | 'at'> } {
  if (w.skip) return { state: 'skipped', detail: w.skip };
  const stale = w.pods.some((p) => p.stale);
  if (w.restartedFor === target) {
    const failure = failureOf(w);
    if (failure) return { state: 'failed', detail: failure.message, failure };
    if (healthy(w)) {
      const soaked = now - soakStart(w);
      if (soaked >= limits.soakMs) return { state: 'done' };
      return { state: 'in-progress', detail: `soaking (${Math.floor(soaked / 1000)} of ${Math.floor(limits.soakMs / 1000)} s)` };
    }
    if (w.restartedAt !== undefined && now - w.restartedAt >= limits.readyDeadlineMs) {
      const notReady = w.pods.find((p) => p.current && (!p.sidecarReady || p.restartCount > 0));
      const failure = notReady
        ? { pod: notReady.name, reason: notReady.restartCount > 0 ? 'SidecarRestarted' : 'SidecarNotReady', message: `the new sidecar of pod ${notReady.name} ${notReady.restartCount > 0 ? `restarted ${notReady.restartCount} time(s)` : 'is not Ready'} ${Math.floor(limits.readyDeadlineMs / 1000)} s after the restart` }
        : { reason: 'RolloutNotComplete', message: `the rollout did not complete within ${Math.floor(limits.readyDeadlineMs / 1000)} s` };
      return { state: 'failed', detail: failure.message, failure };
    }
    return { state: 'in-progress', detail: w.complete ? 'waiting for the new sidecars to be Ready' : 'rolling out' };
  }
  if (!stale) return { state: 'done' };
  if (w.manual) return { state: 'manual', detail: 'opted out (pandocore.xyz/rollout: manual): restart it yourself' };
  return { state: 'waiting' };
}

/** The next actions of the rollout towards `target`. */
export function planRollout(input: { target: Target; workloads: readonly WorkloadView[]; state: PersistedState; limits: Limits; now: number }): RolloutPlan {
  const { workloads, limits, now } = input;
  const target = targetKey(input.target);
  const verdicts = new Map<string, WorkloadVerdict>();
  const byKey = new Map<string, WorkloadView>();
  let firstFailure: Failure | undefined;
  // A stable order: the same cluster gives the same plan whatever order the lists came in.
  const keyed = workloads.map((w) => ({ w, key: workloadKeyOf(w) })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const { w, key } of keyed) {
    byKey.set(key, w);
    const v = judge(w, target, limits, now);
    verdicts.set(key, { key, state: v.state, ...(v.detail ? { detail: v.detail } : {}) });
    if (v.failure && !firstFailure) firstFailure = { workload: key, ...v.failure, at: now };
  }
  const next: PersistedState = { ...input.state, target };
  const inRollout = (k: string) => {
    const s = verdicts.get(k)!.state;
    return s === 'waiting' || ((s === 'in-progress' || s === 'done' || s === 'failed') && byKey.get(k)!.restartedFor === target);
  };
  const complete = [...verdicts.values()].every((v) => v.state === 'done' || v.state === 'manual' || v.state === 'skipped');
  const base = { verdicts, complete };

  if (!input.state.paused && firstFailure) {
    return { ...base, restart: [], pause: firstFailure, wait: `paused: ${firstFailure.workload}: ${firstFailure.message}`, next: { ...next, paused: true, failure: firstFailure } };
  }
  if (input.state.paused) return { ...base, restart: [], wait: input.state.failure ? `paused: ${input.state.failure.workload}: ${input.state.failure.message}` : 'paused by an operator', next };

  const members = [...byKey.keys()].filter(inRollout);
  // The canary: every workload of a canary namespace, else the smallest one of this rollout.
  let canaries = members.filter((k) => byKey.get(k)!.canary);
  if (canaries.length === 0 && members.length > 0) {
    const smallest = members.reduce((a, b) => (byKey.get(b)!.size < byKey.get(a)!.size ? b : a));
    canaries = [smallest];
  }
  const canarySet = new Set(canaries);
  const canaryDone = canaries.every((k) => verdicts.get(k)!.state === 'done');

  const inProgress = members.filter((k) => verdicts.get(k)!.state === 'in-progress' || verdicts.get(k)!.state === 'failed');
  const busy = new Set(inProgress.map((k) => byKey.get(k)!.namespace));
  // Waves of growing size after the canary: 1, 2, 4, ... as the count of done workloads grows.
  const doneAfterCanary = members.filter((k) => !canarySet.has(k) && verdicts.get(k)!.state === 'done').length;
  const wave = canaryDone ? Math.min(limits.maxConcurrent, 2 ** Math.floor(Math.log2(doneAfterCanary + 1))) : limits.maxConcurrent;
  let slots = Math.min(limits.maxConcurrent, wave) - inProgress.length;

  const candidates = members
    .filter((k) => verdicts.get(k)!.state === 'waiting' && (canaryDone || canarySet.has(k)))
    .sort((a, b) => byKey.get(a)!.size - byKey.get(b)!.size || (a < b ? -1 : 1));
  const restart: string[] = [];
  let namespaceWait = false;
  for (const k of candidates) {
    if (slots <= 0) break;
    const ns = byKey.get(k)!.namespace;
    if (busy.has(ns)) {
      namespaceWait = true;
      continue;
    }
    busy.add(ns);
    restart.push(k);
    slots--;
  }
  for (const k of members) {
    const v = verdicts.get(k)!;
    if (v.state === 'waiting' && !restart.includes(k)) {
      v.detail = !canaryDone && !canarySet.has(k) ? 'waiting for the canary' : busy.has(byKey.get(k)!.namespace) ? 'waiting: one workload at a time in this namespace' : 'waiting for a place in the wave';
    }
  }
  let wait: string | undefined;
  if (restart.length === 0 && !complete) {
    wait = !canaryDone ? 'waiting for the canary' : namespaceWait ? 'waiting: one workload at a time per namespace' : candidates.length > 0 ? `waiting for a place (wave of ${wave})` : 'waiting for the workloads in progress';
  }
  return { ...base, restart, ...(wait ? { wait } : {}), next };
}

// What the planner reads of the objects themselves, as plain functions of them.

interface WorkloadObject {
  metadata?: { generation?: number };
  spec?: { replicas?: number; updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } } };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    readyReplicas?: number;
    currentRevision?: string;
    updateRevision?: string;
    desiredNumberScheduled?: number;
    updatedNumberScheduled?: number;
    numberAvailable?: number;
    conditions?: Array<{ type?: string; status?: string; reason?: string }>;
  };
}

/**
 * The rollout is complete as `kubectl rollout status` judges it (kubectl's
 * `pkg/polymorphichelpers/rollout_status.go`): the controller saw the latest generation, and every
 * replica is updated and available with no old one left (Deployment), the current revision is the
 * update revision with every replica ready (StatefulSet), every scheduled pod is updated and
 * available (DaemonSet).
 */
export function rolloutComplete(kind: RolloutKind, o: WorkloadObject): boolean {
  const s = o.status ?? {};
  if ((o.metadata?.generation ?? 0) > (s.observedGeneration ?? 0)) return false;
  if (kind === 'Deployment') {
    const want = o.spec?.replicas ?? 1;
    return (s.updatedReplicas ?? 0) >= want && (s.replicas ?? 0) === (s.updatedReplicas ?? 0) && (s.availableReplicas ?? 0) >= (s.updatedReplicas ?? 0);
  }
  if (kind === 'StatefulSet') {
    const want = o.spec?.replicas ?? 1;
    if ((s.readyReplicas ?? 0) < want) return false;
    const partition = o.spec?.updateStrategy?.rollingUpdate?.partition ?? 0;
    if (partition > 0) return (s.updatedReplicas ?? 0) >= want - partition;
    return s.updateRevision !== undefined && s.currentRevision === s.updateRevision;
  }
  return (s.updatedNumberScheduled ?? 0) >= (s.desiredNumberScheduled ?? 0) && (s.numberAvailable ?? 0) >= (s.desiredNumberScheduled ?? 0);
}

export function progressDeadlineExceeded(o: WorkloadObject): boolean {
  return (o.status?.conditions ?? []).some((c) => c.type === 'Progressing' && c.status === 'False' && c.reason === 'ProgressDeadlineExceeded');
}

/** Desired size: replicas, or the DaemonSet's desired count. */
export function workloadSize(kind: RolloutKind, o: WorkloadObject): number {
  return kind === 'DaemonSet' ? (o.status?.desiredNumberScheduled ?? 0) : (o.spec?.replicas ?? 1);
}

interface PodObject {
  metadata?: { name?: string; annotations?: Record<string, string> };
  status?: PodStatusLike;
}

/** The sidecar's health in one pod (native sidecars report under initContainerStatuses). */
export function podHealth(pod: PodObject, target: Target, sidecarName: string): PodHealth {
  const { current, stale } = podSidecar(pod.metadata?.annotations, target);
  // The kubelet's words, with a native sidecar's crash loop named (app/pods/sidecar-state.ts).
  const s = sidecarStatus(pod.status, sidecarName);
  return {
    name: pod.metadata?.name ?? '',
    current,
    stale,
    sidecarReady: s.ready,
    restartCount: s.restartCount,
    ...(s.problem ? { problem: s.problem } : {}),
    ...(s.runningSince !== undefined ? { runningSince: s.runningSince } : {}),
    ...(s.exited ? { exited: s.exited } : {}),
  };
}
