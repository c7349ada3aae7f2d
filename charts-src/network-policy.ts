// NetworkPolicy: the webhook pods admit traffic on the webhook and metrics ports only.
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { NAMES, type PandoContext } from './context.ts';

export interface WebhookNetworkPolicyProps {
  readonly ctx: PandoContext;
}

export class WebhookNetworkPolicy extends Construct {
  readonly apiObject: ApiObject;

  constructor(scope: Construct, id: string, props: WebhookNetworkPolicyProps) {
    super(scope, id);
    const { ctx } = props;
    // A plain ApiObject: cdk8s-plus's typed one maps `from` as a list and cannot hold a template.
    this.apiObject = new ApiObject(this, 'resource', {
      ...k8s.KubeNetworkPolicy.GVK,
      metadata: { name: NAMES.app, namespace: ctx.namespace, labels: { ...ctx.labels } },
      spec: {
        podSelector: { matchLabels: { ...ctx.selectorLabels } },
        policyTypes: ['Ingress'],
        // The API server's source address is not known in general (it is outside the pod network on
        // most clusters), so the ports are the boundary unless the operator names the sources
        // (networkPolicy.ingressFrom) for the webhook port; scrapers keep the metrics port.
        ingress: [
          {
            ports: [{ port: ctx.b.scalar('$.Values.securePort', ctx.values.securePort), protocol: 'TCP' }],
            // Always written (an empty list admits any source, as no list does): the item's first
            // key carries the helm list dash, so it cannot be optional.
            from: ctx.b.block('$.Values.networkPolicy.ingressFrom', ctx.values.networkPolicy.ingressFrom),
          },
          { ports: [{ port: ctx.b.scalar('$.Values.metricsPort', ctx.values.metricsPort), protocol: 'TCP' }] },
        ],
      },
    });
    ctx.b.guard(this.apiObject, { kind: 'if', expr: '$.Values.networkPolicy.enabled' });
  }
}
