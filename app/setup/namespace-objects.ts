// The per-namespace setup a protected namespace needs: ServiceAccount and RoleBinding
// pando-sidecar and the license Secret. One definition for `pando setup-namespace` (app/cli/) and
// namespaceSetup.auto (app/controllers/), which both import it.
import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, SIDECAR_CLUSTER_ROLE, SIDECAR_SERVICE_ACCOUNT } from '../contract.ts';

// The chart's labels for the same objects (protectedNamespaces), and who applied them.
const MANAGED_BY = { 'app.kubernetes.io/component': 'namespace-setup', 'app.kubernetes.io/part-of': 'pandocore', 'app.kubernetes.io/managed-by': 'pando' };

/** A Secret copied from the release namespace (the sidecar's image pull Secrets): name, type and data only. */
export interface CopiedSecret {
  name: string;
  type: string;
  data: Record<string, string>;
}

/**
 * The objects of a protected namespace: ServiceAccount, RoleBinding, license Secret
 * (`licenseKeyBase64` is its data value), and a copy of each of the sidecar's pull Secrets.
 */
export function namespaceSetupObjects(namespace: string, licenseKeyBase64: string, pullSecrets: readonly CopiedSecret[] = []): KubernetesObject[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: SIDECAR_SERVICE_ACCOUNT, namespace, labels: MANAGED_BY },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: SIDECAR_SERVICE_ACCOUNT, namespace, labels: MANAGED_BY },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: SIDECAR_CLUSTER_ROLE },
      subjects: [{ kind: 'ServiceAccount', name: SIDECAR_SERVICE_ACCOUNT, namespace }],
    } as KubernetesObject,
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: LICENSE_SECRET_NAME, namespace, labels: MANAGED_BY },
      type: 'Opaque',
      data: { [LICENSE_SECRET_KEY]: licenseKeyBase64 },
    } as KubernetesObject,
    ...pullSecrets.map((secret) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: secret.name, namespace, labels: MANAGED_BY },
      type: secret.type,
      data: { ...secret.data },
    }) as KubernetesObject),
  ];
}

/**
 * The sidecar's pull Secrets as stored in the release namespace, to copy; a missing one is an
 * error that names it (the pods would never pull the sidecar image).
 */
export async function readPullSecrets(kc: KubeConfig, releaseNamespace: string, names: readonly string[]): Promise<CopiedSecret[]> {
  const core = kc.makeApiClient(CoreV1Api);
  return Promise.all(
    names.map(async (name) => {
      const secret = await core.readNamespacedSecret({ name, namespace: releaseNamespace });
      return { name, type: secret.type ?? 'Opaque', data: secret.data ?? {} };
    }),
  );
}
