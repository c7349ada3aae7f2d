// PodDisruptionBudget: node drains keep podDisruptionBudget.minAvailable webhook pods, or lose at
// most maxUnavailable when that is set. Not rendered with one replica (see pando-chart.ts), where
// any budget would block every drain.
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { NAMES, type PandoContext } from './context.ts';

export interface DisruptionBudgetProps {
  readonly ctx: PandoContext;
}

/** The template condition under which the budget exists (helm mode). */
export const PDB_RENDERED = 'and $.Values.podDisruptionBudget.enabled (gt (int $.Values.replicas) 1)';

// The generated class serialises IntOrString.value; a helm token is a string there.
const wrap = (value: number | string | undefined) =>
  value === undefined ? undefined : typeof value === 'number' ? k8s.IntOrString.fromNumber(value) : k8s.IntOrString.fromString(value);

export class DisruptionBudget extends Construct {
  readonly apiObject: k8s.KubePodDisruptionBudget;

  constructor(scope: Construct, id: string, props: DisruptionBudgetProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    const { minAvailable, maxUnavailable } = v.podDisruptionBudget;
    const byMax = maxUnavailable !== '';
    this.apiObject = new k8s.KubePodDisruptionBudget(this, 'resource', {
      metadata: { name: NAMES.app, namespace: ctx.namespace, labels: { ...ctx.labels } },
      spec: {
        minAvailable: wrap(b.optionalBlock('ternary (dict) $.Values.podDisruptionBudget.minAvailable (ne (toString $.Values.podDisruptionBudget.maxUnavailable) "")', byMax ? undefined : minAvailable)),
        maxUnavailable: wrap(b.optionalBlock('$.Values.podDisruptionBudget.maxUnavailable', byMax ? maxUnavailable : undefined)),
        selector: { matchLabels: { ...ctx.selectorLabels } },
      },
    });
    b.guard(this.apiObject, { kind: 'if', expr: PDB_RENDERED });
  }
}
