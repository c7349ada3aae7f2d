// The MutatingWebhookConfiguration: pods, CREATE only, labelled pods only, never the excluded
// namespaces nor the release namespace nor namespaces labelled pandocore.xyz/injection: disabled,
// and only those webhook.namespaceSelector selects; failurePolicy Ignore (the default) so PandoCore
// never blocks a pod;
// reinvocationPolicy IfNeeded so later webhooks' changes are seen (our second answer is empty).
import { ApiObject, JsonPatch } from 'cdk8s';
import { Construct } from 'constructs';
import type { IMutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration';
import { LABEL_INJECTION, LABEL_PROTECT, PATH_MUTATE } from '../app/contract.ts';
import { NAMES, PORTS, type PandoContext } from './context.ts';
import { INJECTION_OPT_OUT_VALUE } from './values.ts';

export const CA_INJECTOR_ANNOTATION = 'cert-manager.io/inject-ca-from';

export interface WebhookConfigurationProps {
  readonly ctx: PandoContext;
}

export class WebhookConfiguration extends Construct {
  readonly apiObject: ApiObject;

  constructor(scope: Construct, id: string, props: WebhookConfigurationProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    if (v.timeoutSeconds < 1 || v.timeoutSeconds > 30) throw new Error(`timeoutSeconds must be 1-30 (got ${v.timeoutSeconds})`);

    const clientConfig = b.raw(
      [
        '{{- if $.Values.webhook.url }}',
        'url: {{ $.Values.webhook.url | quote }}',
        '{{- else }}',
        'service:',
        `  name: ${NAMES.app}`,
        '  namespace: {{ $.Release.Namespace | quote }}',
        `  path: ${PATH_MUTATE}`,
        `  port: ${PORTS.service}`,
        '{{- end }}',
        '{{- with $.Values.webhook.caBundle }}',
        'caBundle: {{ . | quote }}',
        '{{- end }}',
      ].join('\n'),
      {
        ...(v.webhook.url ? { url: v.webhook.url } : { service: { name: NAMES.app, namespace: ctx.namespace, path: PATH_MUTATE, port: PORTS.service } }),
        // Self-signed mode: the webhook writes caBundle itself; cert-manager mode: cainjector does.
        ...(v.webhook.caBundle ? { caBundle: v.webhook.caBundle } : {}),
      },
    );
    const excludedExpr = 'uniq (concat $.Values.excludedNamespaces (list $.Release.Namespace))';
    const builtIn = [
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...new Set([...v.excludedNamespaces, ctx.namespace])] },
      { key: LABEL_INJECTION, operator: 'NotIn', values: [INJECTION_OPT_OUT_VALUE] },
    ];
    // toYaml writes dict keys sorted, as the plain objects compare (key order does not matter).
    const builtInExpr = `list (dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" (${excludedExpr})) (dict "key" "${LABEL_INJECTION}" "operator" "NotIn" "values" (list "${INJECTION_OPT_OUT_VALUE}"))`;
    const matchExpressions = b.block(`concat (${builtInExpr}) ($.Values.webhook.namespaceSelector.matchExpressions | default list)`, [...builtIn, ...(v.webhook.namespaceSelector.matchExpressions ?? [])]);
    const matchLabels = b.optionalBlock('$.Values.webhook.namespaceSelector.matchLabels', v.webhook.namespaceSelector.matchLabels ?? {});
    const annotations = b.optionalBlock(
      `ternary (dict "${CA_INJECTOR_ANNOTATION}" (printf "%s/${NAMES.servingCertificate}" $.Release.Namespace)) (dict) $.Values.tls.certManager`,
      v.tls.certManager ? { [CA_INJECTOR_ANNOTATION]: `${ctx.namespace}/${NAMES.servingCertificate}` } : {},
    );
    const body: IMutatingWebhookConfiguration = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: NAMES.webhookConfiguration, labels: { ...ctx.labels } },
      webhooks: [
        {
          name: NAMES.webhook,
          admissionReviewVersions: ['v1'],
          clientConfig,
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
          objectSelector: { matchLabels: { [LABEL_PROTECT]: 'true' } },
          namespaceSelector: { matchLabels, matchExpressions: matchExpressions as never },
          matchPolicy: 'Equivalent',
          failurePolicy: b.str('$.Values.webhook.failurePolicy', v.webhook.failurePolicy) as 'Ignore',
          reinvocationPolicy: 'IfNeeded',
          // Required for server-side dry-run to call the webhook; we have none.
          sideEffects: 'None',
          timeoutSeconds: b.scalar('$.Values.timeoutSeconds', v.timeoutSeconds),
        },
      ],
    };
    this.apiObject = new ApiObject(this, 'resource', body as never);
    // After construction: ApiObject's metadata helper would treat a token as a map.
    if (annotations !== undefined) this.apiObject.addJsonPatch(JsonPatch.add('/metadata/annotations', annotations));
  }
}
