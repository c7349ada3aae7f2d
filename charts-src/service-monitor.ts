// Optional Prometheus Operator ServiceMonitor for the metrics port (needs its CRD; off by default).
import { ApiObject, JsonPatch } from 'cdk8s';
import { Construct } from 'constructs';
import { PATH_METRICS } from '../app/contract.ts';
import { NAMES, labelsWithExtra, type PandoContext } from './context.ts';

export interface ServiceMonitorProps {
  readonly ctx: PandoContext;
}

export class ServiceMonitor extends Construct {
  readonly apiObject: ApiObject;

  constructor(scope: Construct, id: string, props: ServiceMonitorProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    this.apiObject = new ApiObject(this, 'resource', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: NAMES.app, namespace: ctx.namespace, labels: { ...ctx.labels } },
      spec: {
        selector: { matchLabels: { ...ctx.selectorLabels } },
        endpoints: [{
          port: 'metrics',
          path: PATH_METRICS,
          scheme: 'http',
          interval: b.str('$.Values.serviceMonitor.interval', v.serviceMonitor.interval),
          scrapeTimeout: b.str('$.Values.serviceMonitor.scrapeTimeout', v.serviceMonitor.scrapeTimeout),
        }],
      },
    });
    // metadata.labels is copied key by key by cdk8s, so a whole-map value goes in as a patch.
    this.apiObject.addJsonPatch(JsonPatch.replace('/metadata/labels', labelsWithExtra(ctx, '$.Values.serviceMonitor.labels', v.serviceMonitor.labels)));
    b.guard(this.apiObject, { kind: 'if', expr: '$.Values.serviceMonitor.enabled' });
  }
}
