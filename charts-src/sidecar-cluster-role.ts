// ClusterRole pando-sidecar: what an injected sidecar may do. Each protected namespace binds it to
// its ServiceAccount pando-sidecar (per-namespace setup). Read-only on what it watches, and events.
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { SIDECAR_CLUSTER_ROLE } from '../app/contract.ts';
import type { PandoContext } from './context.ts';

export interface SidecarClusterRoleProps {
  readonly ctx: PandoContext;
}

export class SidecarClusterRole extends Construct {
  readonly apiObject: k8s.KubeClusterRole;

  constructor(scope: Construct, id: string, props: SidecarClusterRoleProps) {
    super(scope, id);
    this.apiObject = new k8s.KubeClusterRole(this, 'resource', {
      metadata: { name: SIDECAR_CLUSTER_ROLE, labels: { ...props.ctx.labels, 'app.kubernetes.io/component': 'sidecar' } },
      rules: [
        { apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
      ],
    });
  }
}
