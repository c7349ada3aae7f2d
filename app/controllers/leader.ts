// Leader election on a coordination.k8s.io Lease, shared by the in-cluster controllers
// (namespace setup, watchdog): one replica acts, the others stand by until its Lease expires.
import { KubernetesObjectApi, type KubeConfig, type KubernetesObject, type V1OwnerReference } from '@kubernetes/client-node';
import { statusOf } from '../kube/errors.ts';

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

/**
 * Gives the Lease up on a clean stop (as client-go's ReleaseOnCancel does), so a stand-by takes over
 * at its next round instead of waiting for the Lease to expire. Resolves false when not ours.
 */
export async function release(store: LeaseStore, identity: string): Promise<boolean> {
  const current = await store.read();
  if (!current || current.holderIdentity !== identity) return false;
  return store.write({ ...current, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date(0)) });
}

/** The Lease `leaseName` in the webhook's namespace, through the API server; created with `ownerReferences` (app/kube/owner.ts). */
export function kubeLeaseStore(kc: KubeConfig, namespace: string, leaseName: string, ownerReferences: V1OwnerReference[] = []): LeaseStore {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const ref = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: leaseName, namespace } };
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
      const owners = ownerReferences.length > 0 ? { ownerReferences } : {};
      const body = { ...ref, metadata: { ...ref.metadata, ...owners, ...(resourceVersion ? { resourceVersion } : {}) }, spec } as KubernetesObject;
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
