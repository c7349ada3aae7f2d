// PodDisruptionBudget: node drains keep podDisruptionBudget.minAvailable webhook pods.
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { NAMES, type PandoContext } from './context.ts';

export interface DisruptionBudgetProps {
  readonly ctx: PandoContext;
}

export class DisruptionBudget extends Construct {
  readonly apiObject: k8s.KubePodDisruptionBudget;

  constructor(scope: Construct, id: string, props: DisruptionBudgetProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    this.apiObject = new k8s.KubePodDisruptionBudget(this, 'resource', {
      metadata: { name: NAMES.app, namespace: ctx.namespace, labels: { ...ctx.labels } },
      spec: {
        minAvailable: k8s.IntOrString.fromNumber(b.scalar('$.Values.podDisruptionBudget.minAvailable', v.podDisruptionBudget.minAvailable)),
        selector: { matchLabels: { ...ctx.selectorLabels } },
      },
    });
    b.guard(this.apiObject, { kind: 'if', expr: '$.Values.podDisruptionBudget.enabled' });
  }
}
