// namespaceSetup.auto: one webhook replica (leader on a Lease) keeps the per-namespace setup
// (ServiceAccount and RoleBinding pando-sidecar, Secret pando-license copied from the release
// namespace, or the Secret license.existingSecret names) in every namespace labelled pandocore.xyz/protect-namespace: "true", by server-side
// apply as field manager pando-webhook. Off by default; the chart grants its RBAC only when on.
import { CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig, type V1OwnerReference } from '@kubernetes/client-node';
import { LABEL_PROTECT_NAMESPACE, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME } from '../contract.ts';
import { namespaceSetupObjects, readPullSecrets, type CopiedSecret } from '../setup/namespace-objects.ts';
import { acquireOrRenew, kubeLeaseStore } from './leader.ts';

export const LEASE_NAME = 'pando-webhook-namespace-setup';
export const FIELD_MANAGER = 'pando-webhook';

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
  /** The release's license Secret and key to copy (license.existingSecret). @default pando-license, license-key */
  licenseSecret?: { name: string; key: string };
  /** Owner of the Lease (the webhook's Deployment, app/owner.ts). @default none */
  ownerReferences?: V1OwnerReference[];
  /** The sidecar's image pull Secrets, copied from the release namespace with the license. @default [] */
  pullSecrets?: readonly string[];
}

/** Applies the three objects to a namespace (server-side apply; unchanged objects stay unchanged). */
async function applySetup(api: KubernetesObjectApi, namespace: string, licenseBase64: string, pullSecrets: readonly CopiedSecret[]): Promise<void> {
  for (const object of namespaceSetupObjects(namespace, licenseBase64, pullSecrets)) {
    const labels = { ...(object.metadata?.labels ?? {}), 'app.kubernetes.io/managed-by': FIELD_MANAGER };
    await api.patch({ ...object, metadata: { ...object.metadata, labels } }, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }
}

/** Starts the loop; stop() ends it (the Lease then expires and another replica takes over). */
export function startNamespaceSetup(options: NamespaceSetupOptions): { stop(): Promise<void>; isLeader(): boolean } {
  const duration = options.leaseDurationSeconds ?? 15;
  const interval = options.intervalMs ?? 3000;
  const store = kubeLeaseStore(options.kubeConfig, options.namespace, LEASE_NAME, options.ownerReferences);
  const source = options.licenseSecret ?? { name: LICENSE_SECRET_NAME, key: LICENSE_SECRET_KEY };
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
    const secret = await core.readNamespacedSecret({ name: source.name, namespace: options.namespace });
    const license = secret.data?.[source.key];
    if (!license) {
      options.log.warn({ namespace: options.namespace }, `namespace setup: Secret ${source.name} has no ${source.key}`);
      return;
    }
    const pullSecrets = await readPullSecrets(options.kubeConfig, options.namespace, options.pullSecrets ?? []);
    const list = await core.listNamespace({ labelSelector: `${LABEL_PROTECT_NAMESPACE}=true` });
    for (const ns of list.items) {
      const name = ns.metadata?.name;
      if (!name || name === options.namespace || ns.metadata?.deletionTimestamp) continue;
      await applySetup(objects, name, license, pullSecrets).catch((err: unknown) =>
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
