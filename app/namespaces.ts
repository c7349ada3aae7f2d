// Whether a namespace is ready for injection: ServiceAccount pando-sidecar and Secret pando-license
// present. A short-lived cache per namespace keeps the API server off the hot path (one lookup per
// namespace per TTL, concurrent reviews share it), and least privilege holds: two `get`s by name,
// no list or watch, and the Secret's content is dropped unread.

import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { LICENSE_SECRET_NAME, SIDECAR_SERVICE_ACCOUNT } from './contract.ts';
import type { NamespaceReadiness } from './inject/decide.ts';

export type ReadinessFetcher = (namespace: string) => Promise<NamespaceReadiness>;

export interface ReadinessCacheOptions {
  fetch: ReadinessFetcher;
  /** How long a complete namespace is trusted. */
  readyTtlMs?: number;
  /** How long a namespace with something missing is remembered (short: setup is usually seconds away). */
  notReadyTtlMs?: number;
  /** A lookup slower than this counts as unknown, so a slow API server never delays admission much. */
  timeoutMs?: number;
  now?: () => number;
}

export interface ReadinessCache {
  /** undefined: unknown (lookup failed or timed out). */
  get(namespace: string): Promise<NamespaceReadiness | undefined>;
}

export function createReadinessCache(options: ReadinessCacheOptions): ReadinessCache {
  const readyTtl = options.readyTtlMs ?? 30_000;
  const notReadyTtl = options.notReadyTtlMs ?? 5_000;
  const timeout = options.timeoutMs ?? 2_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, { value: NamespaceReadiness; until: number }>();
  const inFlight = new Map<string, Promise<NamespaceReadiness | undefined>>();

  async function lookup(namespace: string): Promise<NamespaceReadiness | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeout);
    });
    try {
      const value = await Promise.race([options.fetch(namespace), timedOut]);
      if (value) {
        const ready = value.serviceAccount && value.licenseSecret;
        entries.set(namespace, { value, until: now() + (ready ? readyTtl : notReadyTtl) });
      }
      return value;
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
      inFlight.delete(namespace);
    }
  }

  return {
    get(namespace) {
      const entry = entries.get(namespace);
      if (entry && entry.until > now()) return Promise.resolve(entry.value);
      let pending = inFlight.get(namespace);
      if (!pending) {
        pending = lookup(namespace);
        inFlight.set(namespace, pending);
      }
      return pending;
    },
  };
}

function status(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

async function exists(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return true;
  } catch (err) {
    if (status(err) === 404) return false;
    throw err;
  }
}

/** Two GETs by name: what the chart's RBAC allows (resourceNames), nothing more. */
export function kubeReadinessFetcher(kc: KubeConfig): ReadinessFetcher {
  const core = kc.makeApiClient(CoreV1Api);
  return async (namespace) => {
    const [serviceAccount, licenseSecret] = await Promise.all([
      exists(() => core.readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace })),
      // Only existence matters; the response (and the key in it) is dropped here.
      exists(() => core.readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace }).then(() => undefined)),
    ]);
    return { serviceAccount, licenseSecret };
  };
}
