// protectedNamespaces with license.existingSecret: the chart never sees the key, so it cannot render
// the namespaces' copies. Every webhook replica copies the release's license Secret into each listed
// namespace as Secret pando-license (server-side apply, field manager pando-webhook) at start and
// then every intervalMs. No leader: the replicas write the same object, so a second write is a no-op.
// The chart grants this per namespace (Role pando-webhook-license-copy) only in that case.
import { CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig } from '@kubernetes/client-node';
import { namespaceSetupObjects } from '../setup/namespace-objects.ts';
import { FIELD_MANAGER } from './namespace-setup.ts';

export interface LicenseCopyOptions {
  kubeConfig: KubeConfig;
  /** The release namespace, where the source Secret lives. */
  namespace: string;
  /** Where the copies go (the chart's protectedNamespaces). */
  namespaces: readonly string[];
  source: { name: string; key: string };
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** @default 30000 */
  intervalMs?: number;
}

export function startLicenseCopy(options: LicenseCopyOptions): { stop(): Promise<void>; round(): Promise<void> } {
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const objects = KubernetesObjectApi.makeApiClient(options.kubeConfig);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const round = async () => {
    const secret = await core.readNamespacedSecret({ name: options.source.name, namespace: options.namespace });
    const license = secret.data?.[options.source.key];
    if (!license) {
      options.log.warn({ namespace: options.namespace }, `license copy: Secret ${options.source.name} has no ${options.source.key}`);
      return;
    }
    for (const namespace of options.namespaces) {
      const copy = namespaceSetupObjects(namespace, license).find((o) => o.kind === 'Secret')!;
      const labels = { ...(copy.metadata?.labels ?? {}), 'app.kubernetes.io/managed-by': FIELD_MANAGER };
      await objects
        .patch({ ...copy, metadata: { ...copy.metadata, labels } }, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply)
        .catch((err: unknown) => options.log.warn({ namespace, reason: (err as Error).message.split('\n')[0] }, 'license copy: apply failed'));
    }
  };
  const guarded = () => round().catch((err: unknown) => options.log.warn({ reason: (err as Error).message.split('\n')[0] }, 'license copy: round failed'));
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = guarded().finally(schedule);
    }, options.intervalMs ?? 30_000);
    timer.unref();
  };
  running = guarded().finally(schedule);
  return {
    round,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
