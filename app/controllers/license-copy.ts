// protectedNamespaces with license.existingSecret: the chart never sees the key, so it cannot render
// the namespaces' copies. One webhook replica (leader on the Lease pando-webhook-license-copy)
// copies the release's license Secret into each listed namespace as Secret pando-license, by
// server-side apply as field manager pando-webhook, WITHOUT force: a Secret someone else manages is
// reported, never taken over, and a Secret of that name of another type (a docker-registry Secret,
// a service-account token) is refused and reported (issue 23 item 10). Like namespace setup it
// watches the listed namespaces and applies only on change: when one appears, when the license
// changes, or when this replica becomes leader; the license itself is re-read each round (one GET).
// The chart grants this per namespace (Role pando-webhook-license-copy) only in that case.
import { createHash } from 'node:crypto';
import { CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject, type V1OwnerReference } from '@kubernetes/client-node';
import { LEASE_LICENSE_COPY, LICENSE_SECRET_NAME } from '../contract.ts';
import { statusOf } from '../kube/errors.ts';
import { namespaceSetupObjects } from '../setup/namespace-objects.ts';
import { startInformer, type Informer } from './informer.ts';
import { startLeaderLoop, type ControllerLog, type LeaderLoop } from './loop.ts';
import { FIELD_MANAGER } from './namespace-setup.ts';

const MANAGED_BY = 'app.kubernetes.io/managed-by';

export interface LicenseCopyOptions {
  kubeConfig: KubeConfig;
  /** The release namespace, where the source Secret and the Lease live. */
  namespace: string;
  /** Where the copies go (the chart's protectedNamespaces). */
  namespaces: readonly string[];
  source: { name: string; key: string };
  /** This replica's identity (the pod name). */
  identity: string;
  log: ControllerLog;
  /** @default 15 */
  leaseDurationSeconds?: number;
  /** Lease renewal, and how often the license is re-read. @default 5000 */
  intervalMs?: number;
  /** Owner of the Lease (the webhook's Deployment, app/kube/owner.ts). @default none */
  ownerReferences?: V1OwnerReference[];
  /** How often every copy is checked again. @default 300000 */
  resyncMs?: number;
}

export type CopyOutcome = 'applied' | 'refused' | 'conflict';

/** Applies the copy without force; an existing Secret of another type or another manager's field is reported, not overwritten. */
export async function applyLicenseCopy(core: CoreV1Api, objects: KubernetesObjectApi, namespace: string, licenseBase64: string, log: ControllerLog): Promise<CopyOutcome> {
  const copy = namespaceSetupObjects(namespace, licenseBase64).find((o) => o.kind === 'Secret')! as KubernetesObject & { type?: string };
  const existing = await core.readNamespacedSecret({ name: LICENSE_SECRET_NAME, namespace }).catch((err: unknown) => {
    if (statusOf(err) === 404) return undefined;
    throw err;
  });
  if (existing && existing.type !== copy.type) {
    log.warn({ namespace, type: existing.type }, `license copy: Secret ${LICENSE_SECRET_NAME} exists with another type; refused, not overwritten`);
    return 'refused';
  }
  const labels = { ...(copy.metadata?.labels ?? {}), [MANAGED_BY]: FIELD_MANAGER };
  try {
    await objects.patch({ ...copy, metadata: { ...copy.metadata, labels } }, undefined, undefined, FIELD_MANAGER, false, PatchStrategy.ServerSideApply);
    return 'applied';
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
    log.warn({ namespace }, `license copy: Secret ${LICENSE_SECRET_NAME} has fields of another manager; not taken over`);
    return 'conflict';
  }
}

interface SlimNamespace {
  name: string;
  terminating: boolean;
}

/** Starts the loop; stop() ends it (the Lease is given up and another replica takes over). */
export function startLicenseCopy(options: LicenseCopyOptions): LeaderLoop {
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const objects = KubernetesObjectApi.makeApiClient(options.kubeConfig);
  const log = options.log;
  const wanted = new Set(options.namespaces.filter((ns) => ns !== options.namespace));
  /** Namespace -> license hash it got from this leader. */
  const applied = new Map<string, string>();
  let present = new Set<string>();
  let license: { value: string; hash: string } | undefined;
  let informer: Informer | undefined;
  let epoch = 0;
  let lastFull = 0;
  let work: Promise<void> = Promise.resolve();

  const ensure = (name: string) => {
    if (!license || !wanted.has(name) || !present.has(name) || applied.get(name) === license.hash) return;
    const { value, hash } = license;
    const mine = epoch;
    applied.set(name, hash);
    work = work
      .then(async () => {
        if (mine !== epoch) return;
        const outcome = await applyLicenseCopy(core, objects, name, value, log);
        log.info({ namespace: name, outcome }, 'license copy: applied');
      })
      .catch((err: unknown) => {
        applied.delete(name);
        log.warn({ namespace: name, reason: (err as Error).message.split('\n')[0] }, 'license copy: apply failed');
      });
  };

  const readLicense = async () => {
    const secret = await core.readNamespacedSecret({ name: options.source.name, namespace: options.namespace });
    const value = secret.data?.[options.source.key];
    if (!value) {
      log.warn({ namespace: options.namespace }, `license copy: Secret ${options.source.name} has no ${options.source.key}`);
      return;
    }
    const hash = createHash('sha256').update(value).digest('hex').slice(0, 16);
    if (license?.hash === hash) return;
    license = { value, hash };
    for (const name of present) ensure(name);
  };

  return startLeaderLoop({
    name: 'license copy',
    lease: { kubeConfig: options.kubeConfig, namespace: options.namespace, name: LEASE_LICENSE_COPY, ownerReferences: options.ownerReferences },
    identity: options.identity,
    log,
    leaseDurationSeconds: options.leaseDurationSeconds ?? 15,
    intervalMs: options.intervalMs ?? 5000,
    async round() {
      await readLicense();
      // A copy someone deleted comes back within this long (each apply reads first, never forces).
      if (informer && Date.now() - lastFull >= (options.resyncMs ?? 300_000)) {
        lastFull = Date.now();
        applied.clear();
        for (const name of present) ensure(name);
      }
      if (informer || wanted.size === 0) return;
      lastFull = Date.now();
      const slim = (raw: any): SlimNamespace => ({ name: raw?.metadata?.name ?? '', terminating: Boolean(raw?.metadata?.deletionTimestamp) || raw?.status?.phase === 'Terminating' });
      const mine = epoch;
      // Only the listed namespaces, by the label the API server puts on every namespace.
      informer = startInformer<SlimNamespace>(options.kubeConfig, {
        path: '/api/v1/namespaces',
        labelSelector: `kubernetes.io/metadata.name in (${[...wanted].sort().join(',')})`,
        list: async (o) => {
          const page = await core.listNamespace(o);
          return { ...page, items: page.items.map(slim) };
        },
        slim,
        what: 'namespace',
      }, {
        replaced(list) {
          if (mine !== epoch) return;
          present = new Set(list.filter((ns) => !ns.terminating).map((ns) => ns.name));
          for (const name of [...applied.keys()]) if (!present.has(name)) applied.delete(name);
          for (const name of present) ensure(name);
        },
        upserted(ns) {
          if (mine !== epoch) return;
          if (ns.terminating) {
            present.delete(ns.name);
            applied.delete(ns.name);
            return;
          }
          present.add(ns.name);
          ensure(ns.name);
        },
        deleted(_uid, raw) {
          if (mine !== epoch) return;
          const ns = slim(raw);
          present.delete(ns.name);
          applied.delete(ns.name);
        },
      }, log);
    },
    letGo() {
      epoch++;
      informer?.stop();
      informer = undefined;
      applied.clear();
      present = new Set();
      license = undefined;
    },
  });
}
