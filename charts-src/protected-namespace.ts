// The product page's per-namespace setup, for each of protectedNamespaces: ServiceAccount and
// RoleBinding pando-sidecar (to the ClusterRole of that name) and the license Secret. GitOps users
// list their namespaces and need no command (the namespaces must exist).
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { SIDECAR_CLUSTER_ROLE, SIDECAR_SERVICE_ACCOUNT } from '../app/contract.ts';
import type { PandoContext } from './context.ts';
import { LicenseSecret } from './license-secret.ts';

export interface ProtectedNamespaceProps {
  readonly ctx: PandoContext;
  /** The namespace (in helm mode: the range variable's token). */
  readonly namespace: string;
  /** Render the license Secret copy (false with license.existingSecret, plain mode). @default true */
  readonly license?: boolean;
}

export class ProtectedNamespace extends Construct {
  readonly objects: ApiObject[];
  readonly licenseSecret: ApiObject | undefined;

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
    this.objects = [account, binding, ...(this.licenseSecret ? [this.licenseSecret] : [])];
  }
}
