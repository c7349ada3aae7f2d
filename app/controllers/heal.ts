// Healing (watchdog.heal=restart): restart the workload that owns an unprotected pod the way
// `kubectl rollout restart` does, by stamping its pod template, so the workload's own rollout
// (surge, readiness, PodDisruptionBudgets) replaces the pods with injected ones. Bare pods and Jobs
// are never touched: there is nothing that would make them again.
import { AppsV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { ANNOTATION_RESTARTED_AT } from '../contract.ts';
import type { ControllerRef } from '../pods/classify.ts';

/** What `kubectl rollout restart` writes into the pod template (the chart's workload policy allows only it). */
export const RESTARTED_AT_ANNOTATION = ANNOTATION_RESTARTED_AT;

export const HEALABLE_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet'] as const;
export type HealableKind = (typeof HEALABLE_KINDS)[number];

export interface Workload {
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

export function workloadKey(w: Workload): string {
  return `${w.namespace}/${w.kind}/${w.name}`;
}

export function isHealable(w: Workload): w is Workload & { kind: HealableKind } {
  return (HEALABLE_KINDS as readonly string[]).includes(w.kind);
}

/**
 * At most `perMinute` restarts in any 60 s, each workload at most once per `cooldownMs`. The clock
 * is an input, so the limits are tested without waiting.
 */
export class RestartBudget {
  private readonly recent: number[] = [];
  private readonly last = new Map<string, number>();
  private readonly perMinute: number;
  private readonly cooldownMs: number;

  constructor(perMinute: number, cooldownMs: number) {
    this.perMinute = perMinute;
    this.cooldownMs = cooldownMs;
  }

  /** Why not now, or undefined when a restart of `key` at `now` is within the limits. */
  refusal(key: string, now: number): 'rate-limited' | 'cooling-down' | undefined {
    const last = this.last.get(key);
    if (last !== undefined && now - last < this.cooldownMs) return 'cooling-down';
    while (this.recent.length > 0 && now - this.recent[0]! >= 60_000) this.recent.shift();
    if (this.recent.length >= this.perMinute) return 'rate-limited';
    return undefined;
  }

  /**
   * Takes the place of a restart of `key` at `at` before anything is awaited, so a second pass
   * cannot take it too (issue 23 item 8); the function gives it back when no restart follows.
   */
  reserve(key: string, at: number): () => void {
    const before = this.last.get(key);
    this.last.set(key, at);
    this.recent.push(at);
    return () => {
      const i = this.recent.lastIndexOf(at);
      if (i >= 0) this.recent.splice(i, 1);
      if (before === undefined) this.last.delete(key);
      else this.last.set(key, before);
    };
  }

  /** Records a restart (or an earlier one found on the workload, `at` in the past). */
  record(key: string, at: number, counted = true): void {
    this.last.set(key, Math.max(at, this.last.get(key) ?? 0));
    if (counted) this.recent.push(at);
    for (const [k, t] of this.last) if (at - t >= this.cooldownMs) this.last.delete(k);
  }
}

/** The workload behind a pod's controller: a ReplicaSet's own controller (a Deployment) when it has one. */
export function workloadResolver(kc: KubeConfig): (namespace: string, ref: ControllerRef) => Promise<Workload> {
  const apps = kc.makeApiClient(AppsV1Api);
  const replicaSets = new Map<string, Promise<Workload>>();
  return (namespace, ref) => {
    if (ref.kind !== 'ReplicaSet') return Promise.resolve({ kind: ref.kind, name: ref.name, namespace, ...(ref.uid ? { uid: ref.uid } : {}) });
    const key = `${namespace}/${ref.name}`;
    let found = replicaSets.get(key);
    if (!found) {
      found = apps.readNamespacedReplicaSet({ name: ref.name, namespace }).then(
        (rs) => {
          const owner = rs.metadata?.ownerReferences?.find((r) => r.controller);
          return owner?.kind === 'Deployment' ? { kind: 'Deployment', name: owner.name, namespace, uid: owner.uid } : { kind: 'ReplicaSet', name: ref.name, namespace, ...(ref.uid ? { uid: ref.uid } : {}) };
        },
        (err: unknown) => {
          replicaSets.delete(key);
          throw err;
        },
      );
      replicaSets.set(key, found);
      // A ReplicaSet's owner never changes, but ReplicaSets come and go: keep the map bounded.
      if (replicaSets.size > 10_000) replicaSets.delete(replicaSets.keys().next().value!);
    }
    return found;
  };
}

export interface WorkloadRestarter {
  /** When the workload's template was last restarted (kubectl's annotation), if ever. */
  lastRestart(w: Workload & { kind: HealableKind }): Promise<number | undefined>;
  restart(w: Workload & { kind: HealableKind }, at: Date): Promise<void>;
}

export function kubeRestarter(kc: KubeConfig, fieldManager: string): WorkloadRestarter {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const ref = (w: Workload) => ({ apiVersion: 'apps/v1', kind: w.kind, metadata: { name: w.name, namespace: w.namespace } });
  return {
    async lastRestart(w) {
      const live = (await objects.read(ref(w))) as KubernetesObject & { spec?: { template?: { metadata?: { annotations?: Record<string, string> } } } };
      const stamp = live.spec?.template?.metadata?.annotations?.[RESTARTED_AT_ANNOTATION];
      const at = stamp ? Date.parse(stamp) : Number.NaN;
      return Number.isNaN(at) ? undefined : at;
    },
    async restart(w, at) {
      // kubectl rollout restart writes RFC 3339 seconds; a merge patch touches only this annotation.
      const body = { ...ref(w), spec: { template: { metadata: { annotations: { [RESTARTED_AT_ANNOTATION]: at.toISOString().replace(/\.\d{3}Z$/, 'Z') } } } } };
      await objects.patch(body as KubernetesObject, undefined, undefined, fieldManager, undefined, PatchStrategy.MergePatch);
    },
  };
}
