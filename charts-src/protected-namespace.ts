// The product page's per-namespace setup, for each of protectedNamespaces: ServiceAccount and
// RoleBinding pando-sidecar (to the ClusterRole of that name) and the license Secret. GitOps users
// list their namespaces and need no command (the namespaces must exist).
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { LICENSE_SECRET_NAME, SIDECAR_CLUSTER_ROLE, SIDECAR_SERVICE_ACCOUNT } from '../app/contract.ts';
import { NAMES, type PandoContext } from './context.ts';
import { LicenseSecret } from './license-secret.ts';

export interface ProtectedNamespaceProps {
  readonly ctx: PandoContext;
  /** The namespace (in helm mode: the range variable's token). */
  readonly namespace: string;
  /** Render the license Secret copy (false with license.existingSecret, plain mode). @default true */
  readonly license?: boolean;
  /** Let the webhook copy the license (with license.existingSecret, plain mode). @default false */
  readonly licenseCopyRbac?: boolean;
}

export const LICENSE_COPY_ROLE = 'pando-webhook-license-copy';

export class ProtectedNamespace extends Construct {
  readonly objects: ApiObject[];
  readonly licenseSecret: ApiObject | undefined;
  /** Role and RoleBinding that let the webhook write the license copy. */
  readonly licenseCopyRbac: ApiObject[];

  constructor(scope: Construct, id: string, props: ProtectedNamespaceProps) {
    super(scope, id);
    const { ctx, namespace } = props;
    const labels = { ...ctx.commonLabels, 'app.kubernetes.io/part-of': 'pandocore', 'app.kubernetes.io/component': 'namespace-setup' };
    const account = new ApiObject(this, 'service-account', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: SIDECAR_SERVICE_ACCOUNT, namespace, labels },
    });
    const binding = new ApiObject(this, 'role-binding', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: SIDECAR_SERVICE_ACCOUNT, namespace, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: SIDECAR_CLUSTER_ROLE },
      subjects: [{ kind: 'ServiceAccount', name: SIDECAR_SERVICE_ACCOUNT, namespace }],
    });
    this.licenseSecret = props.license === false ? undefined : ApiObject.of(new LicenseSecret(this, 'license', { ctx, namespace, labels }).secret);
    this.licenseCopyRbac = props.licenseCopyRbac ? licenseCopyRbac(this, ctx, namespace, labels) : [];
    this.objects = [account, binding, ...(this.licenseSecret ? [this.licenseSecret] : []), ...this.licenseCopyRbac];
  }
}

/**
 * With license.existingSecret the webhook writes the namespace's license copy (app/controllers/
 * license-copy.ts): exactly Secret pando-license, plus create, which cannot be limited by name.
 */
function licenseCopyRbac(scope: Construct, ctx: PandoContext, namespace: string, labels: Record<string, string>): ApiObject[] {
  const role = new ApiObject(scope, 'license-copy-role', {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: LICENSE_COPY_ROLE, namespace, labels },
    rules: [
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'patch'], resourceNames: [LICENSE_SECRET_NAME] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    ],
  });
  const binding = new ApiObject(scope, 'license-copy-role-binding', {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: LICENSE_COPY_ROLE, namespace, labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: LICENSE_COPY_ROLE },
    subjects: [{ kind: 'ServiceAccount', name: NAMES.app, namespace: ctx.namespace }],
  });
  return [role, binding];
}
