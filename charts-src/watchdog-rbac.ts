// The watchdog's RBAC (watchdog.enabled), apart from the webhook's own so it comes and goes with
// the value: list/watch of pods cluster-wide (labelled ones only, by selector; RBAC cannot narrow
// by label), create of Events where it reports, get of ReplicaSets to find their Deployment, and
// get of namespaces (their labels, for the webhook's namespaceSelector), and its Lease. Only with watchdog.heal=restart or restartStale: get and patch of Deployments,
// StatefulSets and DaemonSets (the rollout-restart stamp; get reads an earlier stamp).
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { LEASE_WATCHDOG } from '../app/contract.ts';
import { NAMES, type PandoContext } from './context.ts';
import type { Values } from './values.ts';

export interface WatchdogRbacProps {
  readonly ctx: PandoContext;
}

export const WATCHDOG_RBAC_NAME = `${NAMES.app}-watchdog`;

/** When the watchdog may patch workloads (heal=restart or restartStale): helm's condition and the plain one. */
export const HEALS_EXPR = 'or (eq $.Values.watchdog.heal "restart") $.Values.watchdog.restartStale';
export const heals = (v: Values): boolean => v.watchdog.heal === 'restart' || v.watchdog.restartStale;

export class WatchdogRbac extends Construct {
  constructor(scope: Construct, id: string, props: WatchdogRbacProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    const labels = { ...ctx.labels };
    const subject = { kind: 'ServiceAccount', name: NAMES.app, namespace: ctx.namespace };
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
  }
}
