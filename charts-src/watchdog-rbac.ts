// The watchdog's RBAC (watchdog.enabled), apart from the webhook's own so it comes and goes with
// the value: list/watch of pods cluster-wide (labelled ones only, by selector; RBAC cannot narrow
// by label), create of Events where it reports, get of ReplicaSets to find their Deployment, and
// get of namespaces (their labels, for the webhook's namespaceSelector), and its Lease. Only with watchdog.heal=restart: get and patch of Deployments,
// StatefulSets and DaemonSets (the rollout-restart stamp; get reads an earlier stamp).
// The sidecar rollout (rollout.enabled, or watchdog.restartStale) has objects of its own here,
// guarded by that value alone: list of the three workload kinds, ReplicaSets (a pod's Deployment),
// labelled pods and namespaces (the canary selector); get/patch of the three kinds (the restart
// stamp, read first); create of Events; get/update of its ConfigMap and Lease by name. No
// ControllerRevisions: StatefulSet and DaemonSet status already names the revisions it compares.
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { LEASE_ROLLOUT, LEASE_WATCHDOG, ROLLOUT_CONFIGMAP } from '../app/contract.ts';
import { ROLLOUT_ENABLED } from './rollout-config-map.ts';
import { NAMES, type PandoContext } from './context.ts';
import type { Values } from './values.ts';

export interface WatchdogRbacProps {
  readonly ctx: PandoContext;
}

export const WATCHDOG_RBAC_NAME = `${NAMES.app}-watchdog`;
export const ROLLOUT_RBAC_NAME = `${NAMES.app}-rollout`;

/** When the watchdog may patch workloads (heal=restart; restartStale turns on the rollout, whose rules are its own): helm's condition and the plain one. */
export const HEALS_EXPR = 'eq $.Values.watchdog.heal "restart"';
export const heals = (v: Values): boolean => v.watchdog.heal === 'restart';

export class WatchdogRbac extends Construct {
  constructor(scope: Construct, id: string, props: WatchdogRbacProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    const labels = { ...ctx.labels };
    const subject = { kind: 'ServiceAccount', name: NAMES.app, namespace: ctx.namespace };
    // restartStale now turns the rollout on, which has its own rules: the watchdog patches only to heal.
    const guarded: ApiObject[] = [
      new ApiObject(this, 'cluster-role', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: WATCHDOG_RBAC_NAME, labels },
        rules: [
          { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
          // Events are only created: each has a name derived from what it reports, so a second
          // report is a conflict, never an update.
          { apiGroups: [''], resources: ['events'], verbs: ['create'] },
          { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['get'] },
          // A namespace's labels, read once per namespace per pass: the webhook's namespaceSelector
          // decides whether its pods are ever sent to the webhook (opted out: skipped, never healed).
          { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
          b.when(HEALS_EXPR, heals(v), {
            apiGroups: ['apps'],
            resources: ['deployments', 'statefulsets', 'daemonsets'],
            verbs: ['get', 'patch'],
          }),
        ].filter((rule) => rule !== undefined),
      }),
      new ApiObject(this, 'cluster-role-binding', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: WATCHDOG_RBAC_NAME, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: WATCHDOG_RBAC_NAME },
        subjects: [subject],
      }),
      new ApiObject(this, 'role', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: WATCHDOG_RBAC_NAME, namespace: ctx.namespace, labels },
        rules: [
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: [LEASE_WATCHDOG] },
          // The first leader creates the Lease; create cannot be limited to a name.
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
        ],
      }),
      new ApiObject(this, 'role-binding', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: WATCHDOG_RBAC_NAME, namespace: ctx.namespace, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: WATCHDOG_RBAC_NAME },
        subjects: [subject],
      }),
    ];
    for (const object of guarded) b.guard(object, { kind: 'if', expr: '$.Values.watchdog.enabled' });
    if (!b.helm && !v.watchdog.enabled) for (const object of guarded) this.node.tryRemoveChild(object.node.id);
    const rollout: ApiObject[] = [
      new ApiObject(this, 'rollout-cluster-role', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: ROLLOUT_RBAC_NAME, labels },
        rules: [
          { apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['list'] },
          { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['list'] },
          // get reads the template's rollout target before the patch; the patch is the restart stamp
          // (the admission policy of the restart limits it to the two template annotations).
          { apiGroups: ['apps'], resources: ['deployments', 'statefulsets', 'daemonsets'], verbs: ['list', 'get', 'patch'] },
          { apiGroups: [''], resources: ['events'], verbs: ['create'] },
        ],
      }),
      new ApiObject(this, 'rollout-cluster-role-binding', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: ROLLOUT_RBAC_NAME, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: ROLLOUT_RBAC_NAME },
        subjects: [subject],
      }),
      new ApiObject(this, 'rollout-role', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: ROLLOUT_RBAC_NAME, namespace: ctx.namespace, labels },
        rules: [
          { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'update'], resourceNames: [ROLLOUT_CONFIGMAP] },
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: [LEASE_ROLLOUT] },
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
        ],
      }),
      new ApiObject(this, 'rollout-role-binding', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: ROLLOUT_RBAC_NAME, namespace: ctx.namespace, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: ROLLOUT_RBAC_NAME },
        subjects: [subject],
      }),
    ];
    for (const object of rollout) b.guard(object, { kind: 'if', expr: ROLLOUT_ENABLED });
    if (!b.helm && !(v.rollout.enabled || v.watchdog.restartStale)) for (const object of rollout) this.node.tryRemoveChild(object.node.id);
  }
}
