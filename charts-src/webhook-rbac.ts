// The webhook's ServiceAccount and least-privilege RBAC. Every rule names its resources where
// Kubernetes allows it (resourceNames); `create` cannot be limited by name, so the self-signed
// mode's Secret create is the only unnamed write, in the release namespace only.
import { ApiObject, JsonPatch } from 'cdk8s';
import { Construct } from 'constructs';
import { LEASE_LICENSE_COPY, LEASE_NAMESPACE_SETUP, LICENSE_SECRET_NAME, SIDECAR_CLUSTER_ROLE, SIDECAR_SERVICE_ACCOUNT } from '../app/contract.ts';
import { present } from './binding.ts';
import { NAMES, type PandoContext } from './context.ts';
import { ROLLOUT_ENABLED, rolloutEnabled } from './rollout-config-map.ts';
import { EXISTING_LICENSE, licenseSource } from './license-secret.ts';

export interface WebhookRbacProps {
  readonly ctx: PandoContext;
}

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export class WebhookRbac extends Construct {
  readonly serviceAccount: ApiObject;

  constructor(scope: Construct, id: string, props: WebhookRbacProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    const selfSigned = <T>(rule: T) => b.when('not $.Values.tls.certManager', !v.tls.certManager, rule);
    const namespaceCheck = <T>(rule: T) => b.when('$.Values.namespaceCheck', v.namespaceCheck, rule);
    const setupAuto = <T>(rule: T) => b.when('$.Values.namespaceSetup.auto', v.namespaceSetup.auto, rule);
    // The license to copy: for namespaceSetup.auto, or for protectedNamespaces with license.existingSecret.
    const licenseCopy = v.license.existingSecret.name !== '' && v.protectedNamespaces.length > 0;
    const licenseCopyExpr = `and (${EXISTING_LICENSE}) $.Values.protectedNamespaces`;
    const copiesLicense = v.namespaceSetup.auto || licenseCopy;
    // Everything that creates a Lease or a Secret reads its Deployment for the owner reference; the
    // watchdog's Lease too (issue 23: in cert-manager mode it had no owner and survived uninstall).
    const createsExpr = `or (not $.Values.tls.certManager) $.Values.namespaceSetup.auto $.Values.watchdog.enabled (${licenseCopyExpr}) (${ROLLOUT_ENABLED})`;
    const creates = !v.tls.certManager || v.namespaceSetup.auto || v.watchdog.enabled || licenseCopy || rolloutEnabled(v);
    const createsObjects = <T>(rule: T) => b.when(createsExpr, creates, rule);
    const copiesAlone = <T>(rule: T) => b.when(licenseCopyExpr, licenseCopy, rule);
    const readsLicense = <T>(rule: T) => b.when(`or $.Values.namespaceSetup.auto (and (${EXISTING_LICENSE}) $.Values.protectedNamespaces)`, copiesLicense, rule);
    const labels = { ...ctx.labels };
    // The license Secret and the sidecar's pull Secrets: read by the namespace check, copied by the setup.
    const licenseAndPullSecrets = b.block(`concat (list "${LICENSE_SECRET_NAME}") $.Values.sidecar.imagePullSecrets`, [LICENSE_SECRET_NAME, ...v.sidecar.imagePullSecrets]);

    // A plain ApiObject: serviceAccount.annotations (workload identity) is a template block, which
    // cdk8s-plus's metadata handling would take apart as a map.
    this.serviceAccount = new ApiObject(this, 'account', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: NAMES.app, namespace: ctx.namespace, labels },
      automountServiceAccountToken: true,
    });
    const accountAnnotations = b.optionalBlock('$.Values.serviceAccount.annotations', v.serviceAccount.annotations);
    if (accountAnnotations !== undefined) this.serviceAccount.addJsonPatch(JsonPatch.add('/metadata/annotations', accountAnnotations));

    // Only what app/ calls (issue 19 item 3): no events (nothing records one), no patch of the TLS
    // Secret (app/tls/selfsigned/manager.ts reads, creates and replaces it with its resourceVersion).
    const namespaced: (Rule | undefined)[] = [
      selfSigned({ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'update'], resourceNames: [NAMES.tlsSecret] }),
      // The first replica creates the TLS Secret; create cannot be limited to a name (the
      // ValidatingAdmissionPolicy of secret-admission-policy.ts limits what it may create).
      selfSigned({ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }),
      // namespaceSetup.auto: leader election on one Lease, and the license to copy.
      setupAuto({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: [LEASE_NAMESPACE_SETUP] }),
      setupAuto({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] }),
      readsLicense({ apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: [licenseSource(ctx).name] }),
      // protectedNamespaces with license.existingSecret: the copy runs on the holder of its own Lease.
      copiesAlone({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: [LEASE_LICENSE_COPY] }),
      copiesAlone({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] }),
      // Its own Deployment, read once: the owner of the TLS Secret and the Lease it creates, so the
      // garbage collector removes them after helm uninstall.
      createsObjects({ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get'], resourceNames: [NAMES.app] }),
      // The sidecar's pull Secrets, copied by namespaceSetup.auto from the release namespace.
      b.when('and $.Values.namespaceSetup.auto $.Values.sidecar.imagePullSecrets', v.namespaceSetup.auto && v.sidecar.imagePullSecrets.length > 0, {
        apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: b.block('$.Values.sidecar.imagePullSecrets', [...v.sidecar.imagePullSecrets]),
      }),
    ];
    const clusterWide: (Rule | undefined)[] = [
      // Self-signed: read back that caBundle trusts the served leaf, and patch it to keep it in sync.
      selfSigned({ apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], verbs: ['get'], resourceNames: [NAMES.webhookConfiguration] }),
      selfSigned({ apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], verbs: ['patch'], resourceNames: [NAMES.webhookConfiguration] }),
      // Namespace readiness: exactly the ServiceAccount and the license Secret by name; never list
      // or watch Secrets, never read other Secrets.
      namespaceCheck({ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get'], resourceNames: [SIDECAR_SERVICE_ACCOUNT] }),
      namespaceCheck({
        apiGroups: [''], resources: ['secrets'], verbs: ['get'],
        resourceNames: licenseAndPullSecrets,
      }),
      // The LimitRanges the sidecar must fit (a list: their names are the namespace owner's).
      namespaceCheck({ apiGroups: [''], resources: ['limitranges'], verbs: ['list'] }),
    ];
    const subject = { kind: 'ServiceAccount', name: NAMES.app, namespace: ctx.namespace };

    // A Role or ClusterRole without a rule is left out with its binding (cert-manager mode without
    // a license to copy needs nothing in its namespace; without namespaceCheck nothing cluster-wide).
    const roleNeeded = createsExpr;
    if (b.include(roleNeeded, creates)) {
      const role = new ApiObject(this, 'role', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: NAMES.app, namespace: ctx.namespace, labels },
        rules: present(namespaced),
      });
      const roleBinding = new ApiObject(this, 'role-binding', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: NAMES.app, namespace: ctx.namespace, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: NAMES.app },
        subjects: [subject],
      });
      for (const object of [role, roleBinding]) b.guard(object, { kind: 'if', expr: roleNeeded });
    }
    const clusterRoleNeeded = 'or (not $.Values.tls.certManager) $.Values.namespaceCheck';
    const clusterRoleWanted = b.include(clusterRoleNeeded, !v.tls.certManager || v.namespaceCheck);
    const clusterRole = clusterRoleWanted
      ? new ApiObject(this, 'cluster-role', {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRole',
          metadata: { name: NAMES.app, labels },
          rules: present(clusterWide),
        })
      : undefined;
    if (b.include('$.Values.namespaceSetup.auto', v.namespaceSetup.auto)) {
      // Only with namespaceSetup.auto: writes of exactly the three objects (by name where Kubernetes
      // allows it; create and a list of namespaces cannot be limited), and `bind` of the sidecar
      // ClusterRole, which a RoleBinding to it needs. get: the watch reads an object before it
      // applies or deletes it (a Secret of another type with our name is refused, not overwritten).
      const setupRole = new ApiObject(this, 'namespace-setup-cluster-role', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: `${NAMES.app}-namespace-setup`, labels },
        rules: [
          // list + watch: it applies when a namespace starts to qualify, not on a timer.
          { apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] },
          // list (by our managed-by label): after a leader change, find the setups in namespaces that no
          // longer qualify (issue 23 item 7); ServiceAccounts only, never Secrets.
          { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['list'] },
          // delete: what it created goes when the namespace's label does (only objects it labelled).
          { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'patch', 'delete'], resourceNames: [SIDECAR_SERVICE_ACCOUNT] },
          { apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: ['get', 'patch', 'delete'], resourceNames: [SIDECAR_SERVICE_ACCOUNT] },
          { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'patch', 'delete'], resourceNames: licenseAndPullSecrets },
          { apiGroups: [''], resources: ['serviceaccounts', 'secrets'], verbs: ['create'] },
          { apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: ['create'] },
          { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], verbs: ['bind'], resourceNames: [SIDECAR_CLUSTER_ROLE] },
        ],
      });
      const setupBinding = new ApiObject(this, 'namespace-setup-cluster-role-binding', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: `${NAMES.app}-namespace-setup`, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${NAMES.app}-namespace-setup` },
        subjects: [subject],
      });
      for (const object of [setupRole, setupBinding]) b.guard(object, { kind: 'if', expr: '$.Values.namespaceSetup.auto' });
    }
    if (b.include(licenseCopyExpr, licenseCopy)) {
      // The license copy watches the listed namespaces (a label selector on kubernetes.io/metadata.name;
      // RBAC cannot narrow list/watch by name), so a namespace created later gets its copy at once.
      const copyRole = new ApiObject(this, 'license-copy-cluster-role', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: `${NAMES.app}-license-copy`, labels },
        rules: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] }],
      });
      const copyBinding = new ApiObject(this, 'license-copy-cluster-role-binding', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: `${NAMES.app}-license-copy`, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${NAMES.app}-license-copy` },
        subjects: [subject],
      });
      for (const object of [copyRole, copyBinding]) b.guard(object, { kind: 'if', expr: licenseCopyExpr });
    }
    if (clusterRole) {
      const clusterRoleBinding = new ApiObject(this, 'cluster-role-binding', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: NAMES.app, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: NAMES.app },
        subjects: [subject],
      });
      for (const object of [clusterRole, clusterRoleBinding]) b.guard(object, { kind: 'if', expr: clusterRoleNeeded });
    }
  }
}
