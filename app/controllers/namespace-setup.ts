// namespaceSetup.auto: one webhook replica (leader on a Lease) keeps the per-namespace setup
// (ServiceAccount and RoleBinding pando-sidecar, Secret pando-license copied from the release
// namespace) in every namespace labelled pandocore.xyz/protect-namespace: "true", by server-side
// apply as field manager pando-webhook. Off by default; the chart grants its RBAC only when on.
import { CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig } from '@kubernetes/client-node';
import { LABEL_PROTECT_NAMESPACE, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME } from '../contract.ts';
import { namespaceSetupObjects } from '../setup/namespace-objects.ts';
import { startLeaderLoop, type ControllerLog, type LeaderLoop } from './loop.ts';

export const LEASE_NAME = 'pando-webhook-namespace-setup';
export const FIELD_MANAGER = 'pando-webhook';

export interface NamespaceSetupOptions {
  kubeConfig: KubeConfig;
  /** The webhook's (release) namespace: the Lease and the license Secret to copy live there. */
  namespace: string;
  /** This replica's identity (the pod name). */
  identity: string;
  log: ControllerLog;
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
export function startNamespaceSetup(options: NamespaceSetupOptions): LeaderLoop {
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const objects = KubernetesObjectApi.makeApiClient(options.kubeConfig);
  return startLeaderLoop({
    name: 'namespace setup',
    lease: { kubeConfig: options.kubeConfig, namespace: options.namespace, name: LEASE_NAME },
    identity: options.identity,
    log: options.log,
    leaseDurationSeconds: options.leaseDurationSeconds ?? 15,
    intervalMs: options.intervalMs ?? 3000,
    async round(leader) {
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
    },
  });
}
