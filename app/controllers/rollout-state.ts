// The rollout's persisted state: one ConfigMap the chart creates (so helm uninstall removes it) and
// only the webhook's leader and `pando rollout pause|resume` write, each with the resourceVersion it
// read (a conflict means someone else wrote first: read again). Everything else the rollout knows
// is derived from the cluster (app/controllers/rollout-plan.ts).
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Failure, PersistedState } from './rollout-plan.ts';
import { statusOf } from '../kube/errors.ts';

export interface StoredState {
  state: PersistedState;
  resourceVersion?: string;
}

export interface RolloutStore {
  /** undefined: the ConfigMap does not exist (the chart did not create it). */
  read(): Promise<StoredState | undefined>;
  /** false on a conflict (written since it was read). */
  write(state: PersistedState, resourceVersion: string | undefined): Promise<boolean>;
}

/** ConfigMap data: `target`, `paused` ("true"/"false"), `failure` (JSON), absent keys = defaults. */
export function encodeState(state: PersistedState): Record<string, string> {
  return {
    ...(state.target ? { target: state.target } : {}),
    paused: state.paused ? 'true' : 'false',
    ...(state.failure ? { failure: JSON.stringify(state.failure) } : {}),
  };
}

export function decodeState(data: Record<string, string> | undefined): PersistedState {
  let failure: Failure | undefined;
  try {
    const parsed = data?.failure ? (JSON.parse(data.failure) as Failure) : undefined;
    if (parsed && typeof parsed.workload === 'string' && typeof parsed.reason === 'string') failure = parsed;
  } catch {
    failure = undefined; // unreadable: the pause itself still holds
  }
  return { ...(data?.target ? { target: data.target } : {}), paused: data?.paused === 'true', ...(failure ? { failure } : {}) };
}

export function sameState(a: PersistedState, b: PersistedState): boolean {
  return JSON.stringify(encodeState(a)) === JSON.stringify(encodeState(b));
}

export function kubeRolloutStore(kc: KubeConfig, namespace: string, name: string): RolloutStore {
  const api = kc.makeApiClient(CoreV1Api);
  return {
    async read() {
      try {
        const cm = await api.readNamespacedConfigMap({ name, namespace });
        return { state: decodeState(cm.data), resourceVersion: cm.metadata?.resourceVersion };
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw err;
      }
    },
    async write(state, resourceVersion) {
      const current = await api.readNamespacedConfigMap({ name, namespace });
      const data = { ...(current.data ?? {}) };
      for (const key of ['target', 'paused', 'failure']) delete data[key];
      Object.assign(data, encodeState(state));
      try {
        // Labels and annotations the chart set are kept; only our keys change.
        await api.replaceNamespacedConfigMap({ name, namespace, body: { ...current, metadata: { ...current.metadata, ...(resourceVersion ? { resourceVersion } : {}) }, data } });
        return true;
      } catch (err) {
        if (statusOf(err) === 409) return false;
        throw err;
      }
    },
  };
}
