// NetworkPolicy pando-webhook-egress: the webhook pods open connections only to DNS and to the API
// server (networkPolicy.egress). The webhook's only peer is the API server (namespace lookups, its
// TLS Secret and caBundle, Leases, the watchdog's list/watch); it reaches it by the Service address
// in KUBERNETES_SERVICE_HOST, so DNS is allowed for names, not needed today.
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { NAMES, type PandoContext } from './context.ts';

export const EGRESS_POLICY_NAME = `${NAMES.app}-egress`;

export interface WebhookEgressPolicyProps {
  readonly ctx: PandoContext;
}

export class WebhookEgressPolicy extends Construct {
  readonly apiObject: ApiObject;

  constructor(scope: Construct, id: string, props: WebhookEgressPolicyProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    // A plain ApiObject, as the ingress policy: `to` must hold a template.
    this.apiObject = new ApiObject(this, 'resource', {
      ...k8s.KubeNetworkPolicy.GVK,
      metadata: { name: EGRESS_POLICY_NAME, namespace: ctx.namespace, labels: { ...ctx.labels } },
      spec: {
        podSelector: { matchLabels: { ...ctx.selectorLabels } },
        policyTypes: ['Egress'],
        // Each `to` is always written: an empty list is any destination, as no list is.
        egress: [
          {
            ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }],
            to: b.block('$.Values.networkPolicy.egress.dnsTo', v.networkPolicy.egress.dnsTo),
          },
          {
            // The API server is not a pod on most clusters: the ports bound the rule unless the
            // operator names its addresses (an ipBlock in apiServerTo).
            ports: b.block('$.Values.networkPolicy.egress.apiServerPorts', v.networkPolicy.egress.apiServerPorts),
            to: b.block('$.Values.networkPolicy.egress.apiServerTo', v.networkPolicy.egress.apiServerTo),
          },
        ],
      },
    });
    ctx.b.guard(this.apiObject, { kind: 'if', expr: '$.Values.networkPolicy.egress.enabled' });
  }
}
