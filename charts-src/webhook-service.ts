// The Service the API server calls: 443 to the webhook's HTTPS port (securePort), plus the metrics port.
import { ApiObject, JsonPatch } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { NAMES, PORTS, type PandoContext } from './context.ts';

export interface WebhookServiceProps {
  readonly ctx: PandoContext;
}

export class WebhookService extends Construct {
  readonly service: kplus.Service;

  constructor(scope: Construct, id: string, props: WebhookServiceProps) {
    super(scope, id);
    const { ctx } = props;
    this.service = new kplus.Service(this, 'resource', {
      metadata: { name: NAMES.app, namespace: ctx.namespace, labels: { ...ctx.labels } },
      type: kplus.ServiceType.CLUSTER_IP,
      ports: [
        { name: 'https', port: PORTS.service, targetPort: ctx.b.scalar('$.Values.securePort', ctx.values.securePort), protocol: kplus.Protocol.TCP },
        { name: 'metrics', port: PORTS.metrics, targetPort: ctx.b.scalar('$.Values.metricsPort', ctx.values.metricsPort), protocol: kplus.Protocol.TCP },
      ],
    });
    for (const [key, value] of Object.entries(ctx.selectorLabels)) this.service.selectLabel(key, value);
    // cdk8s-plus writes `externalIPs: []`; nobody asked for it.
    ApiObject.of(this.service).addJsonPatch(JsonPatch.remove('/spec/externalIPs'));
  }
}
