// A ValidatingAdmissionPolicy and its binding (admissionregistration.k8s.io/v1, GA since Kubernetes
// 1.30) that limit which Secrets the webhook's ServiceAccount may create or update. RBAC cannot
// limit `create` by name, and namespaceSetup.auto may create and patch Secrets named pando-license
// in every namespace: a compromised webhook pod could create a kubernetes.io/service-account-token
// Secret of that name, which the token controller fills with a token of the account its
// annotation names (k8s.io/kubernetes pkg/controller/serviceaccount/tokens_controller.go; the
// annotation is required for that type by pkg/apis/core/validation/validation.go,
// ValidateSecret). The policy lets this one account write only our Secrets: pando-license as
// Opaque anywhere, its TLS Secret as kubernetes.io/tls in the release namespace, none with
// a service-account annotation; and the sidecar's pull Secrets (sidecar.imagePullSecrets, copied by
// namespaceSetup.auto) as docker-registry Secrets. Other users and accounts are not matched.
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { LICENSE_SECRET_NAME } from '../app/contract.ts';
import { NAMES, type PandoContext } from './context.ts';

export interface SecretAdmissionPolicyProps {
  readonly ctx: PandoContext;
}

export const SECRET_POLICY_NAME = `${NAMES.app}-secrets`;

export class SecretAdmissionPolicy extends Construct {
  readonly policy: ApiObject;
  readonly binding: ApiObject;

  constructor(scope: Construct, id: string, props: SecretAdmissionPolicyProps) {
    super(scope, id);
    const { ctx } = props;
    const labels = { ...ctx.labels };
    // CEL strings in double quotes: the names of the sidecar's pull Secrets come from helm's toJson.
    const type = '(has(object.type) ? object.type : "Opaque")';
    const ourSecrets = (pullSecrets: string, releaseNamespace: string) =>
      `(object.metadata.name == "${LICENSE_SECRET_NAME}" && ${type} == "Opaque") || ` +
      `(object.metadata.name in ${pullSecrets} && ${type} in ["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"]) || ` +
      `(object.metadata.name == "${NAMES.tlsSecret}" && request.namespace == "${releaseNamespace}" && ${type} == "kubernetes.io/tls")`;
    // Written as a YAML single-quoted scalar by hand: the emitter's double quotes would clash with toJson's.
    const ourSecretsExpression = ctx.b.raw(
      `'${ourSecrets('{{ toJson $.Values.sidecar.imagePullSecrets }}', '{{ $.Release.Namespace }}')}'`,
      ourSecrets(JSON.stringify(ctx.values.sidecar.imagePullSecrets), ctx.namespace),
    );
    this.policy = new ApiObject(this, 'policy', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: SECRET_POLICY_NAME, labels },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['secrets'] }],
        },
        matchConditions: [
          { name: 'webhook-service-account', expression: `request.userInfo.username == 'system:serviceaccount:${ctx.namespace}:${NAMES.app}'` },
        ],
        validations: [
          {
            expression: ourSecretsExpression,
            message: `${NAMES.app} may only write the Opaque Secret ${LICENSE_SECRET_NAME}, the sidecar's pull Secrets and its own TLS Secret ${NAMES.tlsSecret}`,
            reason: 'Forbidden',
          },
          {
            expression: "!has(object.metadata.annotations) || object.metadata.annotations.all(k, !k.startsWith('kubernetes.io/service-account.'))",
            message: `${NAMES.app} may not write a Secret with a kubernetes.io/service-account.* annotation`,
            reason: 'Forbidden',
          },
        ],
      },
    });
    this.binding = new ApiObject(this, 'binding', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: SECRET_POLICY_NAME, labels },
      spec: { policyName: SECRET_POLICY_NAME, validationActions: ['Deny'] },
    });
    for (const object of [this.policy, this.binding]) ctx.b.guard(object, { kind: 'if', expr: '$.Values.secretPolicy.enabled' });
  }
}
