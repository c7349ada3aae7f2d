// What the webhook needs to know about a namespace before injecting: ServiceAccount pando-sidecar,
// Secret pando-license and the sidecar's pull Secrets present, and its LimitRanges. The lookup
// lives here, outside the pure core, which gets the answer as plain data.
//
// Costs and bounds: one lookup per namespace per TTL (concurrent reviews share it), a bounded LRU
// of answers, and a token bucket on lookups, so neither the webhook's memory nor the API server
// load grows with what a client sends. Least privilege: `get`s by name, a list of LimitRanges, no
// list or watch of Secrets, and the Secrets' content is dropped unread.

import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { LICENSE_SECRET_NAME, SIDECAR_SERVICE_ACCOUNT } from '../contract.ts';
import type { NamespaceReadiness } from '../inject/decide.ts';
import type { LimitRangeFacts } from '../inject/limit-range.ts';
import { statusOf } from './errors.ts';

export type ReadinessFetcher = (namespace: string) => Promise<NamespaceReadiness>;

/** Why a lookup gave no answer: a fixed set, so it can be a metric label. */
export const LOOKUP_ERRORS = ['timeout', 'unauthorized', 'forbidden', 'throttled', 'server-error', 'rate-limited', 'error'] as const;
export type LookupError = (typeof LOOKUP_ERRORS)[number];

export type NamespaceLookup = { ok: true; facts: NamespaceReadiness } | { ok: false; reason: LookupError };

export interface ReadinessCacheOptions {
  fetch: ReadinessFetcher;
  /**
   * How long a complete namespace is trusted. Short, so that a pod created a few seconds after the
   * setup was deleted is not injected into a namespace that can no longer run it.
   * @default 2000
   */
  readyTtlMs?: number;
  /** How long a namespace with something missing is remembered. @default 2000 */
  notReadyTtlMs?: number;
  /** A lookup slower than this fails (timeout), so a slow API server never delays admission much. @default 2000 */
  timeoutMs?: number;
  /** Most namespaces remembered; the least recently used is dropped first. @default 1000 */
  maxEntries?: number;
  /** Lookups per second on average (token bucket): with the 2 s TTL, about 100 namespaces creating labelled pods at once. @default 50 */
  lookupsPerSecond?: number;
  /** Lookups allowed at once after a quiet spell. @default 100 */
  lookupBurst?: number;
  /** Called once per failed lookup (not per review waiting on it), to log and count it. */
  onError?: (namespace: string, reason: LookupError, error: unknown) => void;
  now?: () => number;
}

export interface ReadinessCache {
  get(namespace: string): Promise<NamespaceLookup>;
  /** Namespaces remembered now (for tests and metrics). */
  size(): number;
}

export function lookupErrorOf(err: unknown): LookupError {
  const status = statusOf(err);
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 429) return 'throttled';
  if (status !== undefined && status >= 500) return 'server-error';
  return 'error';
}

/** A namespace where none of our objects exist (or that does not exist) is never remembered. */
function holdsAnything(facts: NamespaceReadiness): boolean {
  return facts.serviceAccount || facts.licenseSecret || Object.values(facts.pullSecrets ?? {}).some(Boolean) || (facts.limitRanges?.length ?? 0) > 0;
}

function isReady(facts: NamespaceReadiness): boolean {
  return facts.serviceAccount && facts.licenseSecret && Object.values(facts.pullSecrets ?? {}).every(Boolean);
}

class Timeout extends Error {}

export function createReadinessCache(options: ReadinessCacheOptions): ReadinessCache {
  const readyTtl = options.readyTtlMs ?? 2_000;
  const notReadyTtl = options.notReadyTtlMs ?? 2_000;
  const timeout = options.timeoutMs ?? 2_000;
  const maxEntries = options.maxEntries ?? 1_000;
  const rate = options.lookupsPerSecond ?? 50;
  const burst = options.lookupBurst ?? 100;
  const now = options.now ?? Date.now;
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  const entries = new Map<string, { facts: NamespaceReadiness; until: number }>();
  const inFlight = new Map<string, Promise<NamespaceLookup>>();
  let tokens = burst;
  let refilledAt = now();

  function takeToken(): boolean {
    const t = now();
    tokens = Math.min(burst, tokens + ((t - refilledAt) / 1000) * rate);
    refilledAt = t;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }

  function remember(namespace: string, facts: NamespaceReadiness): void {
    entries.delete(namespace);
    if (!holdsAnything(facts)) return;
    entries.set(namespace, { facts, until: now() + (isReady(facts) ? readyTtl : notReadyTtl) });
    while (entries.size > maxEntries) entries.delete(entries.keys().next().value as string);
  }

  function failed(namespace: string, reason: LookupError, error: unknown): NamespaceLookup {
    options.onError?.(namespace, reason, error);
    return { ok: false, reason };
  }

  async function lookup(namespace: string): Promise<NamespaceLookup> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Timeout(`namespace lookup took longer than ${timeout} ms`)), timeout);
    });
    try {
      const facts = await Promise.race([options.fetch(namespace), timedOut]);
      remember(namespace, facts);
      return { ok: true, facts };
    } catch (err) {
      return failed(namespace, err instanceof Timeout ? 'timeout' : lookupErrorOf(err), err);
    } finally {
      clearTimeout(timer);
      inFlight.delete(namespace);
    }
  }

  return {
    get(namespace) {
      const entry = entries.get(namespace);
      if (entry && entry.until > now()) {
        entries.delete(namespace);
        entries.set(namespace, entry);
        return Promise.resolve({ ok: true, facts: entry.facts });
      }
      let pending = inFlight.get(namespace);
      if (!pending) {
        if (!takeToken()) return Promise.resolve(failed(namespace, 'rate-limited', new Error('namespace lookups are rate limited')));
        pending = lookup(namespace);
        inFlight.set(namespace, pending);
      }
      return pending;
    },
    size: () => entries.size,
  };
}

/**
 * The server's cache and the watchdog's, on one fetcher, each with a rate limit of its own
 * (issue 23 item 3): a watchdog pass over many pods can never leave the webhook without lookups,
 * so it never makes the webhook skip a pod. The watchdog asks once per namespace per pass
 * (app/controllers/watchdog.ts); its limit only bounds what a resync costs the API server.
 */
export function readinessCaches(options: ReadinessCacheOptions, watchdog: Pick<ReadinessCacheOptions, 'lookupsPerSecond' | 'lookupBurst'> = {}): { server: ReadinessCache; watchdog: ReadinessCache } {
  return {
    server: createReadinessCache(options),
    watchdog: createReadinessCache({ ...options, lookupsPerSecond: watchdog.lookupsPerSecond ?? 20, lookupBurst: watchdog.lookupBurst ?? 50 }),
  };
}

async function exists(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return true;
  } catch (err) {
    if (statusOf(err) === 404) return false;
    throw err;
  }
}

/**
 * GETs by name (what the chart's RBAC allows through resourceNames) and one list of LimitRanges.
 * `pullSecrets` are the sidecar's image pull Secrets, checked like the license Secret.
 */
export function kubeReadinessFetcher(kc: KubeConfig, pullSecrets: readonly string[] = []): ReadinessFetcher {
  const core = kc.makeApiClient(CoreV1Api);
  // Only existence matters; the response (and the key in it) is dropped here.
  const secretExists = (name: string, namespace: string) => exists(() => core.readNamespacedSecret({ name, namespace }).then(() => undefined));
  return async (namespace) => {
    const [serviceAccount, licenseSecret, pulls, limitRanges] = await Promise.all([
      exists(() => core.readNamespacedServiceAccount({ name: SIDECAR_SERVICE_ACCOUNT, namespace }).then(() => undefined)),
      secretExists(LICENSE_SECRET_NAME, namespace),
      Promise.all(pullSecrets.map((name) => secretExists(name, namespace))),
      core.listNamespacedLimitRange({ namespace }).then((list) =>
        list.items.map((range): LimitRangeFacts => ({
          name: range.metadata?.name ?? '',
          limits: (range.spec?.limits ?? []).map((item) => ({
            type: item.type,
            min: item.min,
            max: item.max,
            // LimitRanger's defaults (the client names `default` _default): it gives them to the sidecar.
            default: item._default,
            defaultRequest: item.defaultRequest,
            maxLimitRequestRatio: item.maxLimitRequestRatio,
          })),
        })),
      ),
    ]);
    return {
      serviceAccount,
      licenseSecret,
      ...(pullSecrets.length > 0 ? { pullSecrets: Object.fromEntries(pullSecrets.map((name, i) => [name, pulls[i] ?? false])) } : {}),
      limitRanges,
    };
  };
}
