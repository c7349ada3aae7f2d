// The watchdog: with failurePolicy Ignore, a labelled pod created while the API server could not
// reach the webhook starts without the sidecar. One replica (leader on a Lease) list-watches the
// labelled pods, classifies each with the webhook's own core (app/pods/classify.ts), reports
// (gauges, one log line and a SidecarMissing Event per newly found pod and its workload) and, when
// asked (watchdog.heal=restart), restarts the owning workload within rate limits.
import { CoreV1Api, type KubeConfig, type CoreV1Event, type V1OwnerReference } from '@kubernetes/client-node';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { WatchdogConfig } from '../config.ts';
import { EVENT_SIDECAR_MISSING, EVENT_SIDECAR_RESTART, LABEL_PROTECT, LEASE_WATCHDOG } from '../contract.ts';
import type { InjectionPlan } from '../inject/sidecar.ts';
import { POD_STATES, classifyWithReadiness, isLive, type Classification, type PodState, type ReadinessSource, type SlimPod } from '../pods/classify.ts';
import { restartCommand } from '../pods/owners.ts';
import { statusOf } from '../kube/errors.ts';
import { RestartBudget, isHealable, kubeRestarter, workloadKey, workloadResolver, type Workload, type WorkloadRestarter } from './heal.ts';
import { startLeaderLoop, type ControllerLog, type LeaderLoop } from './loop.ts';
import { startPodInformer, type Informer, type PodEvents } from './informer.ts';

const COMPONENT = 'pando-webhook';
/** Owners an Event can name (other controllers' kinds are reported on the pod only). */
const WORKLOAD_API_VERSIONS: Record<string, string> = { Deployment: 'apps/v1', StatefulSet: 'apps/v1', DaemonSet: 'apps/v1', ReplicaSet: 'apps/v1', Job: 'batch/v1' };

export interface WatchdogMetrics {
  pods: Gauge<'state'>;
  unprotected: Gauge<'namespace'>;
  restarts: Counter<'kind'>;
}

export function createWatchdogMetrics(registry: Registry): WatchdogMetrics {
  return {
    pods: new Gauge({ name: 'pandocore_pods', help: 'Labelled pods by state (protected, stale, unprotected, skipped); set by the watchdog leader only.', labelNames: ['state'], registers: [registry] }),
    unprotected: new Gauge({ name: 'pandocore_unprotected_pods', help: 'Labelled pods without the sidecar that the webhook would inject now, by namespace (only namespaces that have any).', labelNames: ['namespace'], registers: [registry] }),
    restarts: new Counter({ name: 'pandocore_watchdog_restarts_total', help: 'Workloads restarted by the watchdog to get the sidecar into their pods, by kind.', labelNames: ['kind'], registers: [registry] }),
  };
}

/** An Event on a pod or workload; `name` is derived from what it reports, so a second one is a 409. */
export interface EventRecord {
  name: string;
  namespace: string;
  involved: { apiVersion: string; kind: string; name: string; uid?: string };
  type: 'Warning' | 'Normal';
  reason: string;
  message: string;
}
export type EventSink = (event: EventRecord) => Promise<void>;

export interface WatchdogDeps {
  plan: InjectionPlan;
  config: WatchdogConfig;
  readiness?: ReadinessSource;
  metrics: WatchdogMetrics;
  log: ControllerLog;
  events: EventSink;
  resolveWorkload(namespace: string, ref: NonNullable<SlimPod['metadata']['controller']>): Promise<Workload>;
  restarter: WorkloadRestarter;
  now?: () => number;
}

interface Entry {
  pod: SlimPod;
  classification?: Classification;
}

/** The watchdog's state and passes, without the API server: the informer feeds it, tests too. */
export function createWatchdogCore(deps: WatchdogDeps): PodEvents & { pass(all?: boolean): Promise<void>; counts(): Record<PodState, number>; clear(): void } {
  const now = deps.now ?? Date.now;
  const pods = new Map<string, Entry>();
  const dirty = new Set<string>();
  const reported = new Set<string>();
  const reportedWorkloads = new Set<string>();
  const budget = new RestartBudget(deps.config.restartsPerMinute, deps.config.workloadCooldownMs);
  let counts = zeroCounts();

  function zeroCounts(): Record<PodState, number> {
    return Object.fromEntries(POD_STATES.map((s) => [s, 0])) as Record<PodState, number>;
  }

  async function classifyDirty(all: boolean) {
    const uids = all ? [...pods.keys()] : [...dirty];
    dirty.clear();
    for (const uid of uids) {
      const entry = pods.get(uid);
      if (!entry) continue;
      try {
        entry.classification = await classifyWithReadiness(entry.pod, deps.plan, deps.readiness);
      } catch (err) {
        deps.log.warn({ namespace: entry.pod.metadata.namespace, pod: entry.pod.metadata.name, reason: (err as Error).message }, 'watchdog: classification failed');
      }
    }
  }

  function publish() {
    counts = zeroCounts();
    const byNamespace = new Map<string, number>();
    for (const { pod, classification } of pods.values()) {
      if (!classification) continue;
      counts[classification.state]++;
      if (classification.state === 'unprotected') byNamespace.set(pod.metadata.namespace, (byNamespace.get(pod.metadata.namespace) ?? 0) + 1);
    }
    for (const state of POD_STATES) deps.metrics.pods.set({ state }, counts[state]);
    deps.metrics.unprotected.reset();
    for (const [namespace, n] of byNamespace) deps.metrics.unprotected.set({ namespace }, n);
  }

  async function workloadOf(pod: SlimPod): Promise<Workload | undefined> {
    const ref = pod.metadata.controller;
    if (!ref) return undefined;
    try {
      return await deps.resolveWorkload(pod.metadata.namespace, ref);
    } catch (err) {
      deps.log.warn({ namespace: pod.metadata.namespace, pod: pod.metadata.name, reason: (err as Error).message }, 'watchdog: owner lookup failed');
      return { kind: ref.kind, name: ref.name, namespace: pod.metadata.namespace };
    }
  }

  async function emit(event: EventRecord) {
    await deps.events(event).catch((err: unknown) => deps.log.warn({ namespace: event.namespace, name: event.involved.name, reason: (err as Error).message }, 'watchdog: recording an Event failed'));
  }

  async function report(entry: Entry, workload: Workload | undefined) {
    const { pod } = entry;
    const owner = workload ? { kind: workload.kind.toLowerCase(), name: workload.name, namespace: workload.namespace } : { kind: 'pod', name: pod.metadata.name, namespace: pod.metadata.namespace };
    const fix = restartCommand(owner, pod.metadata.name);
    deps.log.warn({ namespace: pod.metadata.namespace, pod: pod.metadata.name, owner: `${owner.kind}/${owner.name}`, state: 'unprotected', fix }, 'watchdog: labelled pod runs without the sidecar');
    await emit({
      name: `${pod.metadata.name}.${pod.metadata.uid.slice(0, 8)}.sidecar-missing`,
      namespace: pod.metadata.namespace,
      involved: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
      type: 'Warning',
      reason: EVENT_SIDECAR_MISSING,
      message: `pod runs without the PandoCore sidecar (created while the webhook was unreachable); fix: ${fix}`,
    });
    const apiVersion = WORKLOAD_API_VERSIONS[workload?.kind ?? ''];
    if (workload && apiVersion && !reportedWorkloads.has(workloadKey(workload))) {
      reportedWorkloads.add(workloadKey(workload));
      await emit({
        name: `${workload.name}.${(workload.uid ?? workload.kind.toLowerCase()).slice(0, 8)}.sidecar-missing`,
        namespace: workload.namespace,
        involved: { apiVersion, kind: workload.kind, name: workload.name, ...(workload.uid ? { uid: workload.uid } : {}) },
        type: 'Warning',
        reason: EVENT_SIDECAR_MISSING,
        message: `pods of ${owner.kind}/${owner.name} run without the PandoCore sidecar; fix: ${fix}`,
      });
    }
  }

  async function heal(candidates: Map<string, { workload: Workload; pods: SlimPod[]; state: PodState }>): Promise<boolean> {
    let deferred = false;
    for (const [key, { workload, pods: its, state }] of candidates) {
      if (!isHealable(workload) || deps.plan.excludedNamespaces.has(workload.namespace) || workload.namespace === deps.plan.ownNamespace) continue;
      const at = now();
      const refusal = budget.refusal(key, at);
      if (refusal) {
        deferred ||= refusal === 'rate-limited';
        continue;
      }
      try {
        // Another leader (or a person) may have restarted it moments ago: kubectl's stamp tells.
        const last = await deps.restarter.lastRestart(workload);
        if (last !== undefined && at - last < deps.config.workloadCooldownMs) {
          budget.record(key, last, false);
          continue;
        }
        await deps.restarter.restart(workload, new Date(at));
      } catch (err) {
        deps.log.warn({ namespace: workload.namespace, workload: `${workload.kind}/${workload.name}`, reason: (err as Error).message }, 'watchdog: restart failed');
        continue;
      }
      budget.record(key, at);
      deps.metrics.restarts.inc({ kind: workload.kind });
      const why = state === 'stale' ? 'run an old sidecar' : 'run without the sidecar';
      deps.log.info({ namespace: workload.namespace, workload: `${workload.kind}/${workload.name}`, pods: its.length, state }, `watchdog: restarted workload whose pods ${why}`);
      await emit({
        name: `${workload.name}.${at.toString(16)}.sidecar-restart`,
        namespace: workload.namespace,
        involved: { apiVersion: 'apps/v1', kind: workload.kind, name: workload.name, ...(workload.uid ? { uid: workload.uid } : {}) },
        type: 'Normal',
        reason: EVENT_SIDECAR_RESTART,
        message: `restarted by the PandoCore watchdog: ${its.length} pod(s) ${why}`,
      });
    }
    return deferred;
  }

  let retry: NodeJS.Timeout | undefined;
  const core = {
    replaced(list: SlimPod[]) {
      pods.clear();
      for (const pod of list) if (isLive(pod)) pods.set(pod.metadata.uid, { pod });
    },
    upserted(pod: SlimPod) {
      if (!isLive(pod) || pod.metadata.labels[LABEL_PROTECT] !== 'true') {
        pods.delete(pod.metadata.uid);
        return;
      }
      pods.set(pod.metadata.uid, { pod });
      dirty.add(pod.metadata.uid);
    },
    deleted(uid: string) {
      pods.delete(uid);
      reported.delete(uid);
    },
    counts: () => ({ ...counts }),
    clear() {
      pods.clear();
      dirty.clear();
      if (retry) clearTimeout(retry);
      for (const state of POD_STATES) deps.metrics.pods.remove({ state });
      deps.metrics.unprotected.reset();
    },
    /** Classifies what changed (or everything), publishes the gauges, reports new pods, heals. */
    async pass(all = false) {
      await classifyDirty(all);
      publish();
      const candidates = new Map<string, { workload: Workload; pods: SlimPod[]; state: PodState }>();
      for (const [uid, entry] of pods) {
        const state = entry.classification?.state;
        const wanted = state === 'unprotected' || (state === 'stale' && deps.config.restartStale);
        if (!wanted) continue;
        const isNew = state === 'unprotected' && !reported.has(uid);
        const restart = state === 'unprotected' ? deps.config.heal === 'restart' : deps.config.restartStale;
        if (!isNew && !restart) continue;
        const workload = await workloadOf(entry.pod);
        if (isNew) {
          reported.add(uid);
          await report(entry, workload);
        }
        if (restart && workload) {
          const key = workloadKey(workload);
          const group = candidates.get(key) ?? { workload, pods: [], state: state! };
          group.pods.push(entry.pod);
          if (state === 'unprotected') group.state = 'unprotected';
          candidates.set(key, group);
        }
      }
      for (const uid of reported) if (!pods.has(uid)) reported.delete(uid);
      if (candidates.size > 0 && (await heal(candidates))) {
        // Over the per-minute limit: come back when the window has room, not only at the next resync.
        if (retry) clearTimeout(retry);
        retry = setTimeout(() => void core.pass().catch(() => undefined), 5_000);
        retry.unref();
      }
    },
  };
  return core;
}

function kubeEvents(kc: KubeConfig, identity: string): EventSink {
  const api = kc.makeApiClient(CoreV1Api);
  return async (e) => {
    const at = new Date();
    const body: CoreV1Event = {
      metadata: { name: e.name, namespace: e.namespace },
      involvedObject: { ...e.involved, namespace: e.namespace },
      type: e.type,
      reason: e.reason,
      message: e.message,
      source: { component: COMPONENT },
      reportingComponent: `${COMPONENT}/watchdog`,
      reportingInstance: identity,
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
    };
    try {
      await api.createNamespacedEvent({ namespace: e.namespace, body });
    } catch (err) {
      if (statusOf(err) !== 409) throw err; // already recorded (by us or an earlier leader)
    }
  };
}

export interface WatchdogOptions {
  kubeConfig: KubeConfig;
  /** The webhook's (release) namespace: the Lease lives there. */
  namespace: string;
  identity: string;
  plan: InjectionPlan;
  config: WatchdogConfig;
  readiness?: ReadinessSource;
  registry: Registry;
  log: ControllerLog;
  /** @default 15 */
  leaseDurationSeconds?: number;
  /** Lease renewal. @default 5000 */
  intervalMs?: number;
  /** Owner of the Lease (the webhook's Deployment, app/kube/owner.ts). @default none */
  ownerReferences?: V1OwnerReference[];
}

/** Starts the watchdog on the leader; stop() ends the watch and the Lease renewal. */
export function startWatchdog(options: WatchdogOptions): LeaderLoop {
  const core = createWatchdogCore({
    plan: options.plan,
    config: options.config,
    readiness: options.readiness,
    metrics: createWatchdogMetrics(options.registry),
    log: options.log,
    events: kubeEvents(options.kubeConfig, options.identity),
    resolveWorkload: workloadResolver(options.kubeConfig),
    restarter: kubeRestarter(options.kubeConfig, COMPONENT),
  });
  let informer: Informer | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let lastFull = 0;
  let passing: Promise<void> = Promise.resolve();
  const runPass = (all: boolean) => {
    passing = passing.then(() => core.pass(all)).catch((err: unknown) => options.log.warn({ reason: (err as Error).message }, 'watchdog: pass failed'));
    return passing;
  };
  // Pod events come in bursts (a Deployment's replicas): one pass shortly after a change.
  const soon = () => {
    if (debounce) return;
    debounce = setTimeout(() => {
      debounce = undefined;
      void runPass(false);
    }, 200);
    debounce.unref();
  };
  const letGo = () => {
    informer?.stop();
    informer = undefined;
    if (debounce) clearTimeout(debounce);
    debounce = undefined;
    core.clear();
  };
  return startLeaderLoop({
    name: 'watchdog',
    lease: { kubeConfig: options.kubeConfig, namespace: options.namespace, name: LEASE_WATCHDOG, ownerReferences: options.ownerReferences },
    identity: options.identity,
    log: options.log,
    leaseDurationSeconds: options.leaseDurationSeconds ?? 15,
    intervalMs: options.intervalMs ?? 5000,
    async round() {
      if (!informer) {
        const started = Date.now();
        informer = startPodInformer(options.kubeConfig, `${LABEL_PROTECT}=true`, {
          replaced: (pods) => {
            core.replaced(pods);
            lastFull = Date.now();
            void runPass(true).then(() => {
              const c = core.counts();
              options.log.info({ ...c, durationMs: Date.now() - started }, 'watchdog: labelled pods classified');
            });
          },
          upserted: (pod) => {
            core.upserted(pod);
            soon();
          },
          deleted: (uid) => {
            core.deleted(uid);
            soon();
          },
        }, options.log);
        return;
      }
      if (Date.now() - lastFull >= options.config.resyncMs) {
        lastFull = Date.now();
        await runPass(true);
      }
    },
    letGo,
  });
}
