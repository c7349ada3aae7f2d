// The per-namespace setup a protected namespace needs: ServiceAccount and RoleBinding
// pando-sidecar and the license Secret. One definition for `pando setup-namespace` (app/cli/) and
// namespaceSetup.auto (app/controllers/), which both import it.
import type { KubernetesObject } from '@kubernetes/client-node';
import { LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, SIDECAR_CLUSTER_ROLE, SIDECAR_SERVICE_ACCOUNT } from '../contract.ts';

// The chart's labels for the same objects (protectedNamespaces), and who applied them.
const MANAGED_BY = { 'app.kubernetes.io/component': 'namespace-setup', 'app.kubernetes.io/part-of': 'pandocore', 'app.kubernetes.io/managed-by': 'pando' };

/** The three objects of a protected namespace. `licenseKeyBase64` is the Secret's data value. */
export function namespaceSetupObjects(namespace: string, licenseKeyBase64: string): KubernetesObject[] {
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
  ];
}
