// NetworkPolicy: the webhook pods admit traffic on the webhook and metrics ports only.
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { NAMES, PORTS, type PandoContext } from './context.ts';

export interface WebhookNetworkPolicyProps {
  readonly ctx: PandoContext;
}

export class WebhookNetworkPolicy extends Construct {
  readonly apiObject: k8s.KubeNetworkPolicy;

  constructor(scope: Construct, id: string, props: WebhookNetworkPolicyProps) {
    super(scope, id);
    const { ctx } = props;
    this.apiObject = new k8s.KubeNetworkPolicy(this, 'resource', {
      metadata: { name: NAMES.app, namespace: ctx.namespace, labels: { ...ctx.labels } },
      spec: {
        podSelector: { matchLabels: { ...ctx.selectorLabels } },
        policyTypes: ['Ingress'],
        // The API server's source address is not known in general (it is outside the pod network on
        // most clusters), so the ports are the boundary.
        ingress: [
          {
            ports: [
              { port: k8s.IntOrString.fromNumber(PORTS.https), protocol: 'TCP' },
              { port: k8s.IntOrString.fromNumber(PORTS.metrics), protocol: 'TCP' },
            ],
          },
        ],
      },
    });
    ctx.b.guard(this.apiObject, { kind: 'if', expr: '$.Values.networkPolicy.enabled' });
  }
}
