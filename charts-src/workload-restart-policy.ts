// A ValidatingAdmissionPolicy and its binding that narrow the watchdog's heal RBAC (issue 23 item
// 13). With watchdog.heal=restart or restartStale the webhook's ServiceAccount may patch every
// Deployment, StatefulSet and DaemonSet in every namespace (RBAC cannot narrow by field or by
// namespace label), so a compromised webhook pod could rewrite any pod template (an image, a
// command, a privileged container), kube-system's included. This policy lets that one account
// change only the pod-template annotations a restart writes (kubectl.kubernetes.io/restartedAt, and
// pandocore.xyz/rollout-target of the health-gated rollout), and only in namespaces the webhook
// configuration's namespaceSelector selects (never the excluded or the release namespace, nor one
// labelled pandocore.xyz/injection: disabled, nor one outside webhook.namespaceSelector).
//
// What the API server changes by itself on such an update is left out of the comparison (k8s.io/
// kubernetes v1.37.2 pkg/registry/apps/*/strategy.go PrepareForUpdate; validating admission sees the
// object after it): metadata.generation, resourceVersion and managedFields, and on a DaemonSet the
// object annotation deprecated.daemonset.template.generation (its internal spec.templateGeneration,
// bumped when the template changes; pkg/apis/apps/v1/conversion.go). Status is reset to the old
// one by the same strategies, so it is not compared. `object` and `oldObject` are dyn in the
// policy's CEL environment (k8s.io/apiserver pkg/admission/plugin/cel/compile.go), so the
// comparison iterates their keys and needs no function newer than Kubernetes 1.30.
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { ANNOTATION_RESTARTED_AT, ANNOTATION_ROLLOUT_TARGET } from '../app/contract.ts';
import { NAMES, type PandoContext } from './context.ts';
import type { SelectorRequirement, Values } from './values.ts';
import { HEALS_EXPR, heals } from './watchdog-rbac.ts';
import { ROLLOUT_ENABLED, rolloutEnabled } from './rollout-config-map.ts';
import { webhookNamespaceSelector } from './webhook-configuration.ts';

export const WORKLOAD_POLICY_NAME = `${NAMES.app}-workloads`;

/** The template annotations the webhook's account may change, and nothing else. */
export const RESTART_ANNOTATIONS = [ANNOTATION_RESTARTED_AT, ANNOTATION_ROLLOUT_TARGET] as const;

/** Object annotations the API server writes on update: a DaemonSet's template generation. */
const SERVER_ANNOTATIONS = ['deprecated.daemonset.template.generation'];
/** Object metadata the API server writes on every update. */
const SERVER_METADATA = ['generation', 'managedFields', 'resourceVersion'];

/** Rendered exactly when an RBAC rule lets the webhook patch workloads (the watchdog's heal=restart, the rollout), unless workloadPolicy.enabled=false. */
export const WORKLOAD_POLICY_RENDERED = `and $.Values.workloadPolicy.enabled (or (and $.Values.watchdog.enabled (${HEALS_EXPR})) (${ROLLOUT_ENABLED}))`;
export const workloadPolicyRendered = (v: Values): boolean => v.workloadPolicy.enabled && ((v.watchdog.enabled && heals(v)) || rolloutEnabled(v));

/** CEL: maps `a` and `b` hold the same keys with equal values, apart from the keys in `skip`. */
export function sameExcept(a: string, b: string, skip: readonly string[]): string {
  const s = JSON.stringify(skip);
  return `${a}.all(k, k in ${s} || (k in ${b} && ${a}[k] == ${b}[k])) && ${b}.all(k, k in ${s} || k in ${a})`;
}

const LABELS = 'variables.namespaceLabels';

/** CEL for one label selector requirement over the namespace's labels (JSON strings are CEL strings). */
export function requirementCel(r: SelectorRequirement): string {
  const key = JSON.stringify(r.key);
  const has = `${key} in ${LABELS}`;
  const isIn = `(${has} && ${LABELS}[${key}] in ${JSON.stringify(r.values ?? [])})`;
  switch (r.operator) {
    case 'In':
      return isIn;
    case 'NotIn':
      return `!${isIn}`;
    case 'Exists':
      return `(${has})`;
    case 'DoesNotExist':
      return `!(${has})`;
  }
}

/**
 * The same selection in helm: one CEL term per requirement, then one per matchLabels entry (helm's
 * range walks a map by sorted key, as the plain form sorts), joined by &&.
 */
function selectedTemplate(expressionsExpr: string): string {
  return [
    `{{- $L := "${LABELS}" }}{{- $parts := list }}`,
    `{{- range $r := (${expressionsExpr}) }}`,
    `{{- $has := printf "%s in %s" (toJson $r.key) $L }}`,
    `{{- $in := printf "(%s && %s[%s] in %s)" $has $L (toJson $r.key) (toJson ($r.values | default list)) }}`,
    '{{- if eq $r.operator "In" }}{{- $parts = append $parts $in }}',
    '{{- else if eq $r.operator "NotIn" }}{{- $parts = append $parts (printf "!%s" $in) }}',
    '{{- else if eq $r.operator "Exists" }}{{- $parts = append $parts (printf "(%s)" $has) }}',
    '{{- else }}{{- $parts = append $parts (printf "!(%s)" $has) }}{{- end }}',
    '{{- end }}',
    '{{- range $k, $v := ($.Values.webhook.namespaceSelector.matchLabels | default dict) }}',
    '{{- $parts = append $parts (printf "(%s in %s && %s[%s] in %s)" (toJson $k) $L $L (toJson $k) (toJson (list $v))) }}',
    '{{- end }}',
    '{{- join " && " $parts }}',
  ].join('');
}

export interface WorkloadRestartPolicyProps {
  readonly ctx: PandoContext;
}

export class WorkloadRestartPolicy extends Construct {
  readonly policy: ApiObject;
  readonly binding: ApiObject;

  constructor(scope: Construct, id: string, props: WorkloadRestartPolicyProps) {
    super(scope, id);
    const { ctx } = props;
    const labels = { ...ctx.labels };
    const selector = webhookNamespaceSelector(ctx);
    const plainSelected = [
      ...selector.expressions.map((r) => requirementCel(r as SelectorRequirement)),
      ...Object.keys(selector.matchLabels).sort().map((key) => requirementCel({ key, operator: 'In', values: [selector.matchLabels[key]!] })),
    ].join(' && ');
    // A YAML single-quoted scalar written by hand: the CEL strings are toJson's double-quoted ones
    // (label keys and values cannot hold a single quote).
    const selected = ctx.b.raw(`'${selectedTemplate(selector.expressionsExpr)}'`, plainSelected);
    const orEmpty = (path: string, field: string) => `has(${path}.${field}) ? ${path}.${field} : {}`;
    // dyn(): the policy's type check reads the workloads' schemas, where iterating over or indexing
    // a struct by key is a type error (a warning in the policy's status); as maps they are neither.
    const orEmptyDyn = (path: string, field: string) => `has(${path}.${field}) ? dyn(${path}.${field}) : {}`;
    const restart = `${NAMES.app} may only change the pod template annotations ${RESTART_ANNOTATIONS.join(' and ')} of a Deployment, StatefulSet or DaemonSet (a restart)`;
    this.policy = new ApiObject(this, 'policy', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: WORKLOAD_POLICY_NAME, labels },
      spec: {
        failurePolicy: 'Fail',
        // A patch reaches admission as UPDATE. The heal RBAC grants no create or delete.
        matchConstraints: {
          resourceRules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments', 'statefulsets', 'daemonsets'] }],
        },
        matchConditions: [
          { name: 'webhook-service-account', expression: `request.userInfo.username == 'system:serviceaccount:${ctx.namespace}:${NAMES.app}'` },
        ],
        variables: [
          { name: 'namespaceLabels', expression: orEmpty('namespaceObject.metadata', 'labels') },
          { name: 'newSpec', expression: 'dyn(object.spec)' },
          { name: 'oldSpec', expression: 'dyn(oldObject.spec)' },
          { name: 'newTemplate', expression: 'dyn(object.spec.template)' },
          { name: 'oldTemplate', expression: 'dyn(oldObject.spec.template)' },
          { name: 'newTemplateMetadata', expression: orEmptyDyn('object.spec.template', 'metadata') },
          { name: 'oldTemplateMetadata', expression: orEmptyDyn('oldObject.spec.template', 'metadata') },
          { name: 'newTemplateAnnotations', expression: orEmpty('variables.newTemplateMetadata', 'annotations') },
          { name: 'oldTemplateAnnotations', expression: orEmpty('variables.oldTemplateMetadata', 'annotations') },
          { name: 'newMetadata', expression: 'dyn(object.metadata)' },
          { name: 'oldMetadata', expression: 'dyn(oldObject.metadata)' },
          { name: 'newAnnotations', expression: orEmpty('object.metadata', 'annotations') },
          { name: 'oldAnnotations', expression: orEmpty('oldObject.metadata', 'annotations') },
        ],
        validations: [
          {
            expression: selected,
            messageExpression: `'${NAMES.app} may not change workloads in namespace ' + request.namespace + ': the webhook configuration\\'s namespaceSelector leaves it out'`,
            reason: 'Forbidden',
          },
          {
            expression: [
              sameExcept('variables.newSpec', 'variables.oldSpec', ['template']),
              sameExcept('variables.newTemplate', 'variables.oldTemplate', ['metadata']),
              sameExcept('variables.newTemplateMetadata', 'variables.oldTemplateMetadata', ['annotations']),
              sameExcept('variables.newTemplateAnnotations', 'variables.oldTemplateAnnotations', RESTART_ANNOTATIONS),
            ].join(' && '),
            message: restart,
            reason: 'Forbidden',
          },
          {
            expression: [
              sameExcept('variables.newMetadata', 'variables.oldMetadata', ['annotations', ...SERVER_METADATA]),
              sameExcept('variables.newAnnotations', 'variables.oldAnnotations', SERVER_ANNOTATIONS),
            ].join(' && '),
            message: `${NAMES.app} may not change a workload's own labels, annotations, owners or finalizers`,
            reason: 'Forbidden',
          },
        ],
      },
    });
    this.binding = new ApiObject(this, 'binding', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: WORKLOAD_POLICY_NAME, labels },
      spec: { policyName: WORKLOAD_POLICY_NAME, validationActions: ['Deny'] },
    });
    for (const object of [this.policy, this.binding]) ctx.b.guard(object, { kind: 'if', expr: WORKLOAD_POLICY_RENDERED });
  }
}
