// namespaceSetup.auto: one webhook replica (leader on a Lease) keeps the per-namespace setup
// (ServiceAccount and RoleBinding pando-sidecar, Secret pando-license copied from the release
// namespace) in every namespace labelled pandocore.xyz/protect-namespace: "true", by server-side
// apply as field manager pando-webhook. Off by default; the chart grants its RBAC only when on.
import { CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { LABEL_PROTECT_NAMESPACE, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME } from './contract.ts';
import { namespaceSetupObjects } from './cli/setup-namespace.ts';

export const LEASE_NAME = 'pando-webhook-namespace-setup';
export const FIELD_MANAGER = 'pando-webhook';

/** What leader election needs of the Lease; `write` resolves false on a conflict (someone else wrote first). */
export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
  resourceVersion?: string;
}
export interface LeaseStore {
  read(): Promise<LeaseRecord | undefined>;
  /** Creates (no resourceVersion) or replaces (with one); false on 409. */
  write(record: LeaseRecord): Promise<boolean>;
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(at: Date): string {
  return at.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * One round of leader election at `now`: acquire a free or expired Lease, renew our own, or stand
 * by while another holder's Lease is fresh. Returns whether we hold the Lease after the round.
 */
export async function acquireOrRenew(store: LeaseStore, identity: string, now: Date, durationSeconds: number): Promise<boolean> {
  const current = await store.read();
  const stamp = microTime(now);
  if (!current) {
    return store.write({ holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 });
  }
  if (current.holderIdentity === identity) {
    return store.write({ ...current, leaseDurationSeconds: durationSeconds, renewTime: stamp });
  }
  const renewed = current.renewTime ? Date.parse(current.renewTime) : Number.NaN;
  const expiresAt = renewed + (current.leaseDurationSeconds ?? durationSeconds) * 1000;
  if (current.holderIdentity && !Number.isNaN(renewed) && expiresAt > now.getTime()) return false;
  return store.write({
    ...current,
    holderIdentity: identity,
    leaseDurationSeconds: durationSeconds,
    acquireTime: stamp,
    renewTime: stamp,
    leaseTransitions: (current.leaseTransitions ?? 0) + 1,
  });
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return e?.code ?? e?.statusCode ?? e?.response?.statusCode;
}

/** The Lease in the webhook's namespace, through the API server. */
export function kubeLeaseStore(kc: KubeConfig, namespace: string): LeaseStore {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const ref = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: LEASE_NAME, namespace } };
  return {
    async read() {
      try {
        const lease = (await api.read(ref)) as KubernetesObject & { spec?: Record<string, unknown> };
        const spec = (lease.spec ?? {}) as Record<string, unknown>;
        const asString = (v: unknown) => (v instanceof Date ? microTime(v) : (v as string | undefined));
        return {
          holderIdentity: spec.holderIdentity as string | undefined,
          leaseDurationSeconds: spec.leaseDurationSeconds as number | undefined,
          acquireTime: asString(spec.acquireTime),
          renewTime: asString(spec.renewTime),
          leaseTransitions: spec.leaseTransitions as number | undefined,
          resourceVersion: lease.metadata?.resourceVersion,
        };
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw err;
      }
    },
    async write(record) {
      const { resourceVersion, ...spec } = record;
      const body = { ...ref, metadata: { ...ref.metadata, ...(resourceVersion ? { resourceVersion } : {}) }, spec } as KubernetesObject;
      try {
        if (resourceVersion) await api.replace(body);
        else await api.create(body);
        return true;
      } catch (err) {
        if (statusOf(err) === 409) return false;
        throw err;
      }
    },
  };
}

export interface NamespaceSetupOptions {
  kubeConfig: KubeConfig;
  /** The webhook's (release) namespace: the Lease and the license Secret to copy live there. */
  namespace: string;
  /** This replica's identity (the pod name). */
  identity: string;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** @default 15 */
  leaseDurationSeconds?: number;
  /** How often the leader lists labelled namespaces and re-applies. @default 3000 */
  intervalMs?: number;
}

/** Applies the three objects to a namespace (server-side apply; unchanged objects stay unchanged). */
async function applySetup(api: KubernetesObjectApi, namespace: string, licenseBase64: string): Promise<void> {
  for (const object of namespaceSetupObjects(namespace, licenseBase64)) {
    const labels = { ...(object.metadata?.labels ?? {}), 'app.kubernetes.io/managed-by': FIELD_MANAGER };
    await api.patch({ ...object, metadata: { ...object.metadata, labels } }, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }
}

/** Starts the loop; stop() ends it (the Lease then expires and another replica takes over). */
export function startNamespaceSetup(options: NamespaceSetupOptions): { stop(): Promise<void>; isLeader(): boolean } {
  const duration = options.leaseDurationSeconds ?? 15;
  const interval = options.intervalMs ?? 3000;
  const store = kubeLeaseStore(options.kubeConfig, options.namespace);
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const objects = KubernetesObjectApi.makeApiClient(options.kubeConfig);
  let leader = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const round = async () => {
    const wasLeader = leader;
    leader = await acquireOrRenew(store, options.identity, new Date(), duration).catch((err: unknown) => {
      options.log.warn({ reason: (err as Error).message }, 'namespace setup: lease round failed');
      return false;
    });
    if (leader !== wasLeader) options.log.info({ identity: options.identity, leader }, leader ? 'namespace setup: leading' : 'namespace setup: standing by');
    if (!leader) return;
    const secret = await core.readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace: options.namespace });
    const license = secret.data?.[LICENSE_SECRET_KEY];
    if (!license) {
      options.log.warn({ namespace: options.namespace }, `namespace setup: Secret ${LICENSE_SECRET_NAME} has no ${LICENSE_SECRET_KEY}`);
      return;
    }
    const list = await core.listNamespace({ labelSelector: `${LABEL_PROTECT_NAMESPACE}=true` });
    for (const ns of list.items) {
      const name = ns.metadata?.name;
      if (!name || name === options.namespace || ns.metadata?.deletionTimestamp) continue;
      await applySetup(objects, name, license).catch((err: unknown) =>
        options.log.warn({ namespace: name, reason: (err as Error).message }, 'namespace setup: apply failed'),
      );
    }
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = round()
        .catch((err: unknown) => options.log.warn({ reason: (err as Error).message }, 'namespace setup: round failed'))
        .finally(schedule);
    }, interval);
    timer.unref();
  };
  running = round().catch((err: unknown) => options.log.warn({ reason: (err as Error).message }, 'namespace setup: round failed')).finally(schedule);
  return {
    isLeader: () => leader,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
