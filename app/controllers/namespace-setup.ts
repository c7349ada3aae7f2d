// namespaceSetup.auto: one webhook replica (leader on a Lease) keeps the per-namespace setup
// (ServiceAccount and RoleBinding pando-sidecar, Secret pando-license copied from the release
// namespace, or the Secret license.existingSecret names, with the sidecar's pull Secrets) in every
// namespace labelled pandocore.xyz/protect-namespace: "true" (and matched by the
// operator's namespaceSetup.namespaceSelector, if set), by server-side apply as field manager
// pando-webhook. It watches namespaces and applies only on change: when a namespace starts to
// qualify, when the license changes, or when it becomes leader. It never forces (what someone else
// manages is reported, not taken over), never sets up an excluded namespace, refuses a license
// Secret of another type, and deletes what it created when a namespace stops qualifying.
// Off by default; the chart grants its RBAC only when on.
import { createHash } from 'node:crypto';
import { CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject, type V1OwnerReference } from '@kubernetes/client-node';
import { LABEL_PROTECT_NAMESPACE, LEASE_NAMESPACE_SETUP, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME } from '../contract.ts';
import { statusOf } from '../kube/errors.ts';
import { namespaceSetupObjects, readPullSecrets, type CopiedSecret } from '../setup/namespace-objects.ts';
import { startInformer, type Informer } from './informer.ts';
import { startLeaderLoop, type ControllerLog, type LeaderLoop } from './loop.ts';

export const FIELD_MANAGER = 'pando-webhook';
const MANAGED_BY = 'app.kubernetes.io/managed-by';

export interface NamespaceSetupOptions {
  kubeConfig: KubeConfig;
  /** The webhook's (release) namespace: the Lease and the license Secret to copy live there. */
  namespace: string;
  /** Never set up (the webhook never injects there either). */
  excludedNamespaces: readonly string[];
  /** The operator's label selector, on top of the label (namespaceSetup.namespaceSelector); empty: none. */
  namespaceSelector?: string;
  /** This replica's identity (the pod name). */
  identity: string;
  log: ControllerLog;
  /** @default 15 */
  leaseDurationSeconds?: number;
  /** Lease renewal, and how often the license is re-read (one GET). @default 5000 */
  intervalMs?: number;
  /** The release's license Secret and key to copy (license.existingSecret). @default pando-license, license-key */
  licenseSecret?: { name: string; key: string };
  /** Owner of the Lease (the webhook's Deployment, app/kube/owner.ts). @default none */
  ownerReferences?: V1OwnerReference[];
  /** The sidecar's image pull Secrets, copied from the release namespace with the license. @default [] */
  pullSecrets?: readonly string[];
  /** Namespaces whose license copy the license copy owns (protectedNamespaces): never cleaned up here. @default [] */
  protectedNamespaces?: readonly string[];
}

interface SlimNamespace {
  name: string;
  uid: string;
  terminating: boolean;
}

/** What a namespace must have to be set up, apart from the selector the watch already applied. */
export function qualifies(ns: SlimNamespace, options: Pick<NamespaceSetupOptions, 'namespace' | 'excludedNamespaces'>): boolean {
  return !ns.terminating && ns.name !== options.namespace && !options.excludedNamespaces.includes(ns.name);
}

/** The label selector of the watch: our label, and the operator's selector when given. */
export function setupSelector(namespaceSelector: string | undefined): string {
  return [`${LABEL_PROTECT_NAMESPACE}=true`, namespaceSelector?.trim()].filter(Boolean).join(',');
}

type Outcome = 'applied' | 'conflict' | 'refused';

/** Applies the objects without force; a conflict or a Secret of another type is reported, not overwritten. */
async function applySetup(api: KubernetesObjectApi, core: CoreV1Api, namespace: string, licenseBase64: string, pullSecrets: readonly CopiedSecret[], log: ControllerLog): Promise<Outcome> {
  let outcome: Outcome = 'applied';
  for (const object of namespaceSetupObjects(namespace, licenseBase64, pullSecrets)) {
    if (object.kind === 'Secret') {
      const name = object.metadata!.name!;
      const existing = await core.readNamespacedSecret({ name, namespace }).catch((err: unknown) => {
        if (statusOf(err) === 404) return undefined;
        throw err;
      });
      const type = (object as KubernetesObject & { type?: string }).type;
      if (existing && existing.type !== type) {
        log.warn({ namespace, type: existing.type }, `namespace setup: Secret ${name} exists with another type; refused, not overwritten`);
        outcome = 'refused';
        continue;
      }
    }
    const labels = { ...(object.metadata?.labels ?? {}), [MANAGED_BY]: FIELD_MANAGER };
    try {
      await api.patch({ ...object, metadata: { ...object.metadata, labels } }, undefined, undefined, FIELD_MANAGER, false, PatchStrategy.ServerSideApply);
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
      log.warn({ namespace, kind: object.kind, name: object.metadata?.name }, 'namespace setup: conflict with another field manager; not taken over');
      outcome = 'conflict';
    }
  }
  return outcome;
}

/** Deletes the setup objects where we created them (our managed-by label), nothing else. */
async function removeSetup(api: KubernetesObjectApi, namespace: string, pullSecrets: readonly CopiedSecret[]): Promise<void> {
  for (const object of namespaceSetupObjects(namespace, '', pullSecrets)) {
    const ref = { apiVersion: object.apiVersion!, kind: object.kind!, metadata: { name: object.metadata!.name!, namespace } };
    try {
      const live = await api.read(ref);
      if (live.metadata?.labels?.[MANAGED_BY] !== FIELD_MANAGER) continue;
      await api.delete(ref);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }
}

/** Starts the loop; stop() ends it (the Lease is given up and another replica takes over). */
export function startNamespaceSetup(options: NamespaceSetupOptions): LeaderLoop {
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const objects = KubernetesObjectApi.makeApiClient(options.kubeConfig);
  const log = options.log;
  /** Namespaces set up by this leader, with the license hash they got. */
  const applied = new Map<string, string>();
  let known = new Map<string, SlimNamespace>();
  let license: { value: string; hash: string; pullSecrets: CopiedSecret[] } | undefined;
  const source = options.licenseSecret ?? { name: LICENSE_SECRET_NAME, key: LICENSE_SECRET_KEY };
  let informer: Informer | undefined;
  let work: Promise<void> = Promise.resolve();
  const serially = (what: string, namespace: string, task: () => Promise<void>) => {
    work = work.then(task).catch((err: unknown) => log.warn({ namespace, reason: (err as Error).message }, `namespace setup: ${what} failed`));
  };

  const ensure = (ns: SlimNamespace) => {
    if (!license || !qualifies(ns, options) || applied.get(ns.name) === license.hash) return;
    const { value, hash, pullSecrets } = license;
    serially('apply', ns.name, async () => {
      const outcome = await applySetup(objects, core, ns.name, value, pullSecrets, log);
      applied.set(ns.name, hash);
      log.info({ namespace: ns.name, outcome }, 'namespace setup: applied');
    });
  };
  // Also where an earlier leader applied: only objects with our managed-by label are deleted.
  const remove = (name: string) => {
    applied.delete(name);
    const pullSecrets = license?.pullSecrets ?? [];
    serially('cleanup', name, async () => {
      await removeSetup(objects, name, pullSecrets);
      log.info({ namespace: name }, 'namespace setup: removed (the namespace no longer asks for it)');
    });
  };

  // After a leader change (helm upgrade restarts every replica) the new leader's memory is empty:
  // on each (re)list, the namespaces that still hold our ServiceAccount (our managed-by label) but no
  // longer qualify are cleaned up too (issue 23 item 7). removeSetup deletes only what carries our label.
  const sweep = (qualifying: ReadonlySet<string>) => {
    serially('sweep', '', async () => {
      const accounts = await core.listServiceAccountForAllNamespaces({ labelSelector: `${MANAGED_BY}=${FIELD_MANAGER}` });
      const stale = new Set(accounts.items.map((a) => a.metadata?.namespace ?? '').filter((ns) => ns && !qualifying.has(ns) && !(options.protectedNamespaces ?? []).includes(ns)));
      for (const name of stale) if (!applied.has(name)) remove(name);
    });
  };

  const readLicense = async () => {
    const secret = await core.readNamespacedSecret({ name: source.name, namespace: options.namespace });
    const value = secret.data?.[source.key];
    if (!value) {
      log.warn({ namespace: options.namespace }, `namespace setup: Secret ${source.name} has no ${source.key}`);
      return;
    }
    const pullSecrets = await readPullSecrets(options.kubeConfig, options.namespace, options.pullSecrets ?? []);
    // A change of the license or of a pull Secret re-applies everywhere.
    const hash = createHash('sha256').update(value).update(JSON.stringify(pullSecrets)).digest('hex').slice(0, 16);
    if (license?.hash === hash) return;
    license = { value, hash, pullSecrets };
    for (const ns of known.values()) ensure(ns);
  };

  const letGo = () => {
    informer?.stop();
    informer = undefined;
    applied.clear();
    known = new Map();
  };

  return startLeaderLoop({
    name: 'namespace setup',
    lease: { kubeConfig: options.kubeConfig, namespace: options.namespace, name: LEASE_NAMESPACE_SETUP, ownerReferences: options.ownerReferences },
    identity: options.identity,
    log,
    leaseDurationSeconds: options.leaseDurationSeconds ?? 15,
    intervalMs: options.intervalMs ?? 5000,
    async round() {
      await readLicense();
      if (informer) return;
      const slim = (raw: any): SlimNamespace => ({ name: raw?.metadata?.name ?? '', uid: raw?.metadata?.uid ?? '', terminating: Boolean(raw?.metadata?.deletionTimestamp) || raw?.status?.phase === 'Terminating' });
      informer = startInformer<SlimNamespace>(options.kubeConfig, {
        path: '/api/v1/namespaces',
        labelSelector: setupSelector(options.namespaceSelector),
        list: async (o) => { const page = await core.listNamespace(o); return { ...page, items: page.items.map(slim) }; },
        slim,
        what: 'namespace',
      }, {
        replaced(list) {
          known = new Map(list.map((ns) => [ns.name, ns]));
          for (const name of [...applied.keys()]) if (!known.has(name) || !qualifies(known.get(name)!, options)) remove(name);
          for (const ns of list) ensure(ns);
          sweep(new Set(list.filter((ns) => qualifies(ns, options)).map((ns) => ns.name)));
        },
        upserted(ns) {
          known.set(ns.name, ns);
          if (qualifies(ns, options)) ensure(ns);
          else if (!ns.terminating) remove(ns.name);
        },
        // The watch sends DELETED also when a namespace stops matching the selector (label removed).
        deleted(_uid, raw) {
          const ns = slim(raw);
          known.delete(ns.name);
          if (!ns.terminating) remove(ns.name);
          else applied.delete(ns.name);
        },
      }, log);
    },
    letGo,
  });
}
