// HorizontalPodAutoscaler (autoscaling/v2) of the webhook Deployment: from replicas up to
// hpa.maxReplicas on average CPU.
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { NAMES, type PandoContext } from './context.ts';

export interface AutoscalerProps {
  readonly ctx: PandoContext;
}

export const HPA_MAX_BELOW_REPLICAS = 'hpa.maxReplicas must be at least replicas';

export class Autoscaler extends Construct {
  readonly apiObject: k8s.KubeHorizontalPodAutoscalerV2;

  constructor(scope: Construct, id: string, props: AutoscalerProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    if (!b.helm && v.hpa.maxReplicas < v.replicas) throw new Error(`${HPA_MAX_BELOW_REPLICAS} (${v.hpa.maxReplicas} < ${v.replicas})`);
    this.apiObject = new k8s.KubeHorizontalPodAutoscalerV2(this, 'resource', {
      metadata: { name: NAMES.app, namespace: ctx.namespace, labels: { ...ctx.labels } },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: NAMES.app },
        minReplicas: b.scalar('$.Values.replicas', v.replicas),
        maxReplicas: b.scalar('$.Values.hpa.maxReplicas', v.hpa.maxReplicas),
        metrics: [
          {
            type: 'Resource',
            resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: b.scalar('$.Values.hpa.targetCPUUtilizationPercentage', v.hpa.targetCPUUtilizationPercentage) } },
          },
        ],
      },
    });
    b.guard(this.apiObject, { kind: 'if', expr: '$.Values.hpa.enabled' });
  }
}
