// The watchdog: with failurePolicy Ignore, a labelled pod created while the API server could not
// reach the webhook starts without the sidecar. One replica (leader on a Lease) list-watches the
// labelled pods, classifies each with the webhook's own core (app/pods/classify.ts), reports
// (gauges, one log line and a SidecarMissing Event per newly found pod and its workload) and, when
// asked (watchdog.heal=restart), restarts the owning workload within rate limits. Injected pods whose
// sidecar the kubelet cannot start are `sidecar-failing` (a gauge by reason, a SidecarFailing Event
// per pod and reason and on its workload) and are never restarted: a new pod would fail the same way.
import { CoreV1Api, type KubeConfig, type CoreV1Event, type V1OwnerReference } from '@kubernetes/client-node';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { WatchdogConfig } from '../config.ts';
import { EVENT_SIDECAR_FAILING, EVENT_SIDECAR_MISSING, EVENT_SIDECAR_RESTART, LABEL_PROTECT, LEASE_WATCHDOG } from '../contract.ts';
import type { InjectionPlan } from '../inject/sidecar.ts';
import { createHash } from 'node:crypto';
import { POD_STATES, classifyWithReadiness, isLive, type Classification, type PodState, type ReadinessSource, type SlimPod } from '../pods/classify.ts';
import { selectionSkip, selectorString } from '../pods/selection.ts';
import { restartFix } from '../pods/owners.ts';
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
  failing: Gauge<'namespace' | 'reason'>;
  restarts: Counter<'kind'>;
}

export function createWatchdogMetrics(registry: Registry): WatchdogMetrics {
  return {
    pods: new Gauge({ name: 'pandocore_pods', help: 'Labelled pods by state (protected, stale, unprotected, skipped, sidecar-failing); set by the watchdog leader only.', labelNames: ['state'], registers: [registry] }),
    unprotected: new Gauge({ name: 'pandocore_unprotected_pods', help: 'Labelled pods without the sidecar that the webhook would inject now, by namespace (only namespaces that have any).', labelNames: ['namespace'], registers: [registry] }),
    failing: new Gauge({ name: 'pandocore_sidecar_failing_pods', help: 'Injected pods whose sidecar the kubelet cannot start, by namespace and the kubelet\'s reason (ErrImagePull, ImagePullBackOff, CrashLoopBackOff, CreateContainerConfigError, ...; only pairs that have any).', labelNames: ['namespace', 'reason'], registers: [registry] }),
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

const MAX_NAME = 253;

/**
 * `<object>.<first 8 of id>.<what>`, a DNS subdomain of at most 253 characters like every Event
 * name: a longer object name (pods may have 253) is cut and a short hash of the whole name keeps
 * two long names apart.
 */
export function eventName(object: string, id: string, what: string): string {
  const tail = `.${id.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 8) || 'x'}.${what}`;
  if (object.length + tail.length <= MAX_NAME) return `${object}${tail}`;
  const hash = createHash('sha256').update(object).digest('hex').slice(0, 10);
  const head = object.slice(0, MAX_NAME - tail.length - hash.length - 1).replace(/[^a-z0-9]+$/, '');
  return `${head}-${hash}${tail}`;
}

export interface WatchdogDeps {
  plan: InjectionPlan;
  config: WatchdogConfig;
  /**
   * The watchdog's own readiness lookups (never the server's cache: issue 23 item 3); each pass
   * asks once per namespace.
   */
  readiness?: ReadinessSource;
  /** A namespace's labels (a GET), to apply the webhook's namespaceSelector; absent: not applied. */
  namespaceLabels?(namespace: string): Promise<Record<string, string>>;
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
export interface WatchdogCore extends PodEvents {
  /** One pass at a time: a call while one runs waits for it. */
  pass(all?: boolean): Promise<void>;
  counts(): Record<PodState, number>;
  /** Each known pod's classification (for tests and logs). */
  classifications(): Array<{ namespace: string; name: string } & Classification>;
  /** Workloads with a SidecarMissing Event that still have unprotected pods. */
  reportedWorkloads(): number;
  /** Leadership lost: forget everything; work in flight is dropped (no restart, Event or gauge). */
  clear(): void;
}

export function createWatchdogCore(deps: WatchdogDeps): WatchdogCore {
  const now = deps.now ?? Date.now;
  const pods = new Map<string, Entry>();
  const dirty = new Set<string>();
  const reported = new Set<string>();
  /** Workload key -> the unprotected pods it was reported for; empty sets are dropped (item 12). */
  const reportedWorkloads = new Map<string, Set<string>>();
  /** Pod uid -> the sidecar failure reasons it has had an Event for (once per pod per reason). */
  const reportedFailing = new Map<string, Set<string>>();
  /** `<workload key>|<reason>` -> the failing pods it was reported for; dropped when none is left. */
  const failingWorkloads = new Map<string, Set<string>>();
  /** Workloads heal left alone because of a failing sidecar: logged once while that lasts. */
  const heldBack = new Set<string>();
  /** Bumped by clear(): a pass of an older epoch stops at its next step. */
  let epoch = 0;
  const budget = new RestartBudget(deps.config.restartsPerMinute, deps.config.workloadCooldownMs);
  let counts = zeroCounts();

  function zeroCounts(): Record<PodState, number> {
    return Object.fromEntries(POD_STATES.map((s) => [s, 0])) as Record<PodState, number>;
  }

  /** Per pass: each namespace's labels and readiness are asked once, however many pods it has. */
  function passLookups() {
    const labels = new Map<string, Promise<Record<string, string> | undefined>>();
    const ready = new Map<string, ReturnType<ReadinessSource['get']>>();
    const readiness: ReadinessSource | undefined = deps.readiness && {
      get(namespace) {
        let found = ready.get(namespace);
        if (!found) ready.set(namespace, (found = deps.readiness!.get(namespace)));
        return found;
      },
    };
    const labelsOf = (namespace: string) => {
      let found = labels.get(namespace);
      if (!found) {
        found = deps.namespaceLabels!(namespace).catch((err: unknown) => {
          deps.log.warn({ namespace, reason: (err as Error).message }, 'watchdog: namespace lookup failed');
          return undefined;
        });
        labels.set(namespace, found);
      }
      return found;
    };
    return { readiness, labelsOf };
  }

  async function classifyOne(entry: Entry, lookups: ReturnType<typeof passLookups>): Promise<Classification> {
    const { pod } = entry;
    const selectors = deps.config.namespaceSelector && deps.config.objectSelector ? { namespaceSelector: deps.config.namespaceSelector, objectSelector: deps.config.objectSelector } : undefined;
    if (selectors && deps.namespaceLabels) {
      const skip = selectionSkip(pod.metadata.namespace, await lookups.labelsOf(pod.metadata.namespace), pod.metadata.labels, selectors);
      if (skip) return skip;
    }
    return classifyWithReadiness(pod, deps.plan, lookups.readiness);
  }

  async function classifyDirty(all: boolean, current: () => boolean) {
    const uids = all ? [...pods.keys()] : [...dirty];
    dirty.clear();
    const lookups = passLookups();
    for (const uid of uids) {
      const entry = pods.get(uid);
      if (!entry) continue;
      try {
        const classification = await classifyOne(entry, lookups);
        if (!current()) return;
        entry.classification = classification;
      } catch (err) {
        deps.log.warn({ namespace: entry.pod.metadata.namespace, pod: entry.pod.metadata.name, reason: (err as Error).message }, 'watchdog: classification failed');
      }
    }
  }

  function publish() {
    counts = zeroCounts();
    const byNamespace = new Map<string, number>();
    const failing = new Map<string, { namespace: string; reason: string; n: number }>();
    for (const { pod, classification } of pods.values()) {
      if (!classification) continue;
      counts[classification.state]++;
      if (classification.state === 'unprotected') byNamespace.set(pod.metadata.namespace, (byNamespace.get(pod.metadata.namespace) ?? 0) + 1);
      if (classification.sidecar) {
        const key = `${pod.metadata.namespace}|${classification.sidecar.reason}`;
        const f = failing.get(key) ?? { namespace: pod.metadata.namespace, reason: classification.sidecar.reason, n: 0 };
        f.n++;
        failing.set(key, f);
      }
    }
    for (const state of POD_STATES) deps.metrics.pods.set({ state }, counts[state]);
    deps.metrics.unprotected.reset();
    for (const [namespace, n] of byNamespace) deps.metrics.unprotected.set({ namespace }, n);
    deps.metrics.failing.reset();
    for (const { namespace, reason, n } of failing.values()) deps.metrics.failing.set({ namespace, reason }, n);
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

  /** The reasons the sidecar of a live pod of this workload was reported failing with (SidecarFailing). */
  function failingReasonsOf(workload: Workload): string[] {
    const prefix = `${workloadKey(workload)}|`;
    return [...failingWorkloads.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }

  async function report(entry: Entry, workload: Workload | undefined) {
    const { pod } = entry;
    const owner = workload ? { kind: workload.kind.toLowerCase(), name: workload.name, namespace: workload.namespace } : { kind: 'pod', name: pod.metadata.name, namespace: pod.metadata.namespace };
    // A restart gives every new pod the sidecar, the one that cannot start in its other pods too:
    // say so, rather than a restart beside the SidecarFailing Event that says it will not help.
    const fix = restartFix(owner, pod.metadata.name, workload ? failingReasonsOf(workload) : []);
    deps.log.warn({ namespace: pod.metadata.namespace, pod: pod.metadata.name, owner: `${owner.kind}/${owner.name}`, state: 'unprotected', fix }, 'watchdog: labelled pod runs without the sidecar');
    await emit({
      name: eventName(pod.metadata.name, pod.metadata.uid, 'sidecar-missing'),
      namespace: pod.metadata.namespace,
      involved: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
      type: 'Warning',
      reason: EVENT_SIDECAR_MISSING,
      message: `pod runs without the PandoCore sidecar (created while the webhook was unreachable); fix: ${fix}`,
    });
    const apiVersion = WORKLOAD_API_VERSIONS[workload?.kind ?? ''];
    if (!workload || !apiVersion) return;
    const key = workloadKey(workload);
    const known = reportedWorkloads.get(key);
    if (known) {
      known.add(pod.metadata.uid);
      return;
    }
    reportedWorkloads.set(key, new Set([pod.metadata.uid]));
    // Named after the pod that opened this outage, so a later outage gets an Event of its own.
    await emit({
      name: eventName(workload.name, pod.metadata.uid, 'sidecar-missing'),
      namespace: workload.namespace,
      involved: { apiVersion, kind: workload.kind, name: workload.name, ...(workload.uid ? { uid: workload.uid } : {}) },
      type: 'Warning',
      reason: EVENT_SIDECAR_MISSING,
      message: `pods of ${owner.kind}/${owner.name} run without the PandoCore sidecar; fix: ${fix}`,
    });
  }

  /**
   * An Event on the pod (once per pod and reason) and on its workload (once per workload and reason
   * while a pod of it fails so), and a log line: the kubelet cannot start the injected sidecar.
   */
  async function reportFailing(entry: Entry, workload: Workload | undefined) {
    const { pod } = entry;
    const failure = entry.classification!.sidecar!;
    const reasons = reportedFailing.get(pod.metadata.uid) ?? new Set<string>();
    if (reasons.has(failure.reason)) return;
    reasons.add(failure.reason);
    reportedFailing.set(pod.metadata.uid, reasons);
    const owner = workload ? `${workload.kind.toLowerCase()}/${workload.name}` : `pod/${pod.metadata.name}`;
    const healNote = '; the watchdog does not restart it: a new pod would get the same sidecar';
    deps.log.warn({ namespace: pod.metadata.namespace, pod: pod.metadata.name, owner, state: 'sidecar-failing', reason: failure.reason }, `watchdog: the sidecar of a labelled pod cannot start (${failure.reason})${healNote}`);
    const what = `sidecar-failing-${failure.reason.toLowerCase()}`;
    await emit({
      name: eventName(pod.metadata.name, pod.metadata.uid, what),
      namespace: pod.metadata.namespace,
      involved: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
      type: 'Warning',
      reason: EVENT_SIDECAR_FAILING,
      message: `${failure.message}${healNote}`,
    });
    const apiVersion = WORKLOAD_API_VERSIONS[workload?.kind ?? ''];
    if (!workload || !apiVersion) return;
    const key = `${workloadKey(workload)}|${failure.reason}`;
    const known = failingWorkloads.get(key);
    if (known) {
      known.add(pod.metadata.uid);
      return;
    }
    failingWorkloads.set(key, new Set([pod.metadata.uid]));
    await emit({
      name: eventName(workload.name, pod.metadata.uid, what),
      namespace: workload.namespace,
      involved: { apiVersion, kind: workload.kind, name: workload.name, ...(workload.uid ? { uid: workload.uid } : {}) },
      type: 'Warning',
      reason: EVENT_SIDECAR_FAILING,
      message: `the PandoCore sidecar of pod ${pod.metadata.name} of ${owner} cannot start: ${failure.reason}; fix: ${failure.fix}${healNote}`,
    });
  }

  async function heal(candidates: Map<string, { workload: Workload; pods: SlimPod[]; state: PodState }>, failingKeys: Map<string, string>, current: () => boolean): Promise<boolean> {
    let deferred = false;
    for (const [key, { workload, pods: its, state }] of candidates) {
      if (!current()) return false;
      if (!isHealable(workload) || deps.plan.excludedNamespaces.has(workload.namespace) || workload.namespace === deps.plan.ownNamespace) continue;
      const failing = failingKeys.get(key);
      if (failing) {
        // Its injected pods' sidecar cannot start: the restarted pods would get the same sidecar.
        if (heldBack.has(key)) continue;
        heldBack.add(key);
        deps.log.warn({ namespace: workload.namespace, workload: `${workload.kind}/${workload.name}`, reason: failing }, 'watchdog: not restarting a workload whose sidecar cannot start (a restart cannot fix it)');
        continue;
      }
      const at = now();
      const refusal = budget.refusal(key, at);
      if (refusal) {
        deferred ||= refusal === 'rate-limited';
        continue;
      }
      // The place in the budget is taken before anything is awaited (item 8), and given back if no restart follows.
      const undo = budget.reserve(key, at);
      try {
        // Another leader (or a person) may have restarted it moments ago: kubectl's stamp tells.
        const last = await deps.restarter.lastRestart(workload);
        if (!current()) {
          undo();
          return false;
        }
        if (last !== undefined && at - last < deps.config.workloadCooldownMs) {
          undo();
          budget.record(key, last, false);
          continue;
        }
        await deps.restarter.restart(workload, new Date(at));
      } catch (err) {
        undo();
        deps.log.warn({ namespace: workload.namespace, workload: `${workload.kind}/${workload.name}`, reason: (err as Error).message }, 'watchdog: restart failed');
        continue;
      }
      deps.metrics.restarts.inc({ kind: workload.kind });
      const why = state === 'stale' ? 'run an old sidecar' : 'run without the sidecar';
      deps.log.info({ namespace: workload.namespace, workload: `${workload.kind}/${workload.name}`, pods: its.length, state }, `watchdog: restarted workload whose pods ${why}`);
      await emit({
        name: eventName(workload.name, at.toString(16), 'sidecar-restart'),
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
  let passing: Promise<void> = Promise.resolve();
  const core: WatchdogCore = {
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
      reportedFailing.delete(uid);
    },
    counts: () => ({ ...counts }),
    classifications: () => [...pods.values()].flatMap(({ pod, classification }) => (classification ? [{ namespace: pod.metadata.namespace, name: pod.metadata.name, ...classification }] : [])),
    reportedWorkloads: () => reportedWorkloads.size,
    clear() {
      epoch++;
      pods.clear();
      dirty.clear();
      reported.clear();
      reportedWorkloads.clear();
      reportedFailing.clear();
      failingWorkloads.clear();
      heldBack.clear();
      counts = zeroCounts();
      if (retry) clearTimeout(retry);
      retry = undefined;
      for (const state of POD_STATES) deps.metrics.pods.remove({ state });
      deps.metrics.unprotected.reset();
      deps.metrics.failing.reset();
    },
    /** Classifies what changed (or everything), publishes the gauges, reports new pods, heals. */
    pass(all = false) {
      const mine = epoch;
      const run = passing.then(() => (mine === epoch ? passOnce(all, () => mine === epoch) : undefined));
      passing = run.catch(() => undefined);
      return run;
    },
  };

  async function passOnce(all: boolean, current: () => boolean): Promise<void> {
    {
      await classifyDirty(all, current);
      if (!current()) return;
      publish();
      const candidates = new Map<string, { workload: Workload; pods: SlimPod[]; state: PodState }>();
      /** Workload key -> the reason one of its pods' sidecar cannot start: never healed. */
      const failingKeys = new Map<string, string>();
      // Failing sidecars first, so that the unprotected pods of the same workloads are reported
      // knowing them (report() then says a restart alone will not do).
      for (const [uid, entry] of pods) {
        const state = entry.classification?.state;
        // A pod whose sidecar was seen failing keeps its workload from being restarted while it
        // lives: a crash-looping sidecar runs for an instant at each restart, and a restart would
        // give the new pods the same sidecar.
        const failed = reportedFailing.get(uid);
        if (state !== 'sidecar-failing' && !failed) continue;
        const reason = entry.classification?.sidecar?.reason;
        const isNew = reason !== undefined && !failed?.has(reason);
        if (isNew || deps.config.heal === 'restart' || deps.config.restartStale) {
          const workload = await workloadOf(entry.pod);
          if (!current()) return;
          if (workload) failingKeys.set(workloadKey(workload), reason ?? [...failed!].join(','));
          if (isNew) await reportFailing(entry, workload);
        }
      }
      for (const [uid, entry] of pods) {
        const state = entry.classification?.state;
        if (state === 'sidecar-failing') continue;
        const wanted = state === 'unprotected' || (state === 'stale' && deps.config.restartStale);
        if (!wanted) continue;
        const isNew = state === 'unprotected' && !reported.has(uid);
        const restart = state === 'unprotected' ? deps.config.heal === 'restart' : deps.config.restartStale;
        if (!isNew && !restart) continue;
        const workload = await workloadOf(entry.pod);
        if (!current()) return;
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
      // Remembered while the pod lives: a crash-looping native sidecar runs for an instant at each
      // restart, and each return to the same reason must not log or record again.
      for (const uid of reportedFailing.keys()) if (!pods.has(uid)) reportedFailing.delete(uid);
      for (const [key, uids] of failingWorkloads) {
        for (const uid of uids) if (!pods.has(uid)) uids.delete(uid);
        if (uids.size === 0) failingWorkloads.delete(key);
      }
      // A workload is remembered only while a pod it was reported for is unprotected (item 12).
      for (const [key, uids] of reportedWorkloads) {
        for (const uid of uids) if (pods.get(uid)?.classification?.state !== 'unprotected') uids.delete(uid);
        if (uids.size === 0) reportedWorkloads.delete(key);
      }
      for (const key of heldBack) if (!failingKeys.has(key)) heldBack.delete(key);
      if (candidates.size > 0 && (await heal(candidates, failingKeys, current)) && current()) {
        // Over the per-minute limit: come back when the window has room, not only at the next resync.
        if (retry) clearTimeout(retry);
        retry = setTimeout(() => void core.pass().catch(() => undefined), 5_000);
        retry.unref();
      }
    }
  }
  return core;
}

/** A namespace's labels, by GET (the chart grants get on namespaces to the watchdog). */
function namespaceLabelReader(kc: KubeConfig): (namespace: string) => Promise<Record<string, string>> {
  const api = kc.makeApiClient(CoreV1Api);
  return async (name) => (await api.readNamespace({ name })).metadata?.labels ?? {};
}

/** Events through the API server; a 409 (recorded already, by us or an earlier leader) is fine. */
export function kubeEvents(kc: KubeConfig, identity: string, controller = 'watchdog'): EventSink {
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
      reportingComponent: `${COMPONENT}/${controller}`,
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
  /** The watchdog's own readiness lookups (app/kube/namespaces.ts readinessCaches().watchdog), never the server's. */
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
    namespaceLabels: namespaceLabelReader(options.kubeConfig),
    resolveWorkload: workloadResolver(options.kubeConfig),
    restarter: kubeRestarter(options.kubeConfig, COMPONENT),
  });
  let informer: Informer | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let lastFull = 0;
  // core.pass runs one pass at a time itself (the retry timer's too) and drops what was in flight at letGo.
  const runPass = (all: boolean) => core.pass(all).catch((err: unknown) => options.log.warn({ reason: (err as Error).message }, 'watchdog: pass failed'));
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
        // Callbacks of an informer stopped by letGo (a list or event in flight) are dropped.
        const mine: { informer?: Informer } = {};
        const live = () => mine.informer !== undefined && informer === mine.informer;
        const objectSelector = options.config.objectSelector ? selectorString(options.config.objectSelector) : '';
        informer = mine.informer = startPodInformer(options.kubeConfig, objectSelector || `${LABEL_PROTECT}=true`, {
          replaced: (pods) => {
            if (!live()) return;
            core.replaced(pods);
            lastFull = Date.now();
            void runPass(true).then(() => {
              const c = core.counts();
              options.log.info({ ...c, durationMs: Date.now() - started }, 'watchdog: labelled pods classified');
            });
          },
          upserted: (pod) => {
            if (!live()) return;
            core.upserted(pod);
            soon();
          },
          deleted: (uid) => {
            if (!live()) return;
            core.deleted(uid);
            soon();
          },
        }, options.log);
        return;
      }
      if (Date.now() - lastFull >= options.config.resyncMs) {
        lastFull = Date.now();
        // Not awaited: a long pass must never hold up the Lease renewal of the next round.
        void runPass(true);
      }
    },
    letGo,
  });
}
