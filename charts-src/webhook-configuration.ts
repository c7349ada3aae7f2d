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

/** The webhook's objectSelector: only pods labelled for injection are sent. */
export const OBJECT_SELECTOR = { matchLabels: { [LABEL_PROTECT]: 'true' } };

function builtInParts(ctx: PandoContext) {
  const { values: v } = ctx;
  const excludedExpr = 'uniq (concat $.Values.excludedNamespaces (list $.Release.Namespace))';
  const builtIn = [
    { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...new Set([...v.excludedNamespaces, ctx.namespace])] },
    { key: LABEL_INJECTION, operator: 'NotIn', values: [INJECTION_OPT_OUT_VALUE] },
  ];
  // toYaml writes dict keys sorted, as the plain objects compare (key order does not matter).
  const builtInExpr = `list (dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" (${excludedExpr})) (dict "key" "${LABEL_INJECTION}" "operator" "NotIn" "values" (list "${INJECTION_OPT_OUT_VALUE}"))`;
  const expressionsExpr = `concat (${builtInExpr}) ($.Values.webhook.namespaceSelector.matchExpressions | default list)`;
  return { expressionsExpr, expressions: [...builtIn, ...(v.webhook.namespaceSelector.matchExpressions ?? [])], matchLabels: v.webhook.namespaceSelector.matchLabels ?? {} };
}

/**
 * The webhook configuration's namespaceSelector: its matchExpressions (helm's expression and the
 * plain list) and matchLabels, for the objects that must select exactly the same namespaces.
 */
export function webhookNamespaceSelector(ctx: PandoContext): ReturnType<typeof builtInParts> {
  return builtInParts(ctx);
}

/**
 * The webhook's namespaceSelector as JSON, for the watchdog's env (PANDO_WEBHOOK_NAMESPACE_SELECTOR):
 * the same expressions the webhook configuration renders, so the watchdog skips exactly the pods
 * the API server never sends (issue 23 item 2).
 */
export function namespaceSelectorJson(ctx: PandoContext): string {
  const { expressionsExpr, expressions, matchLabels } = builtInParts(ctx);
  return ctx.b.str(
    `toJson (dict "matchExpressions" (${expressionsExpr}) "matchLabels" ($.Values.webhook.namespaceSelector.matchLabels | default dict))`,
    sortedJson({ matchExpressions: expressions, matchLabels }),
  );
}

/** The objectSelector as JSON (PANDO_WEBHOOK_OBJECT_SELECTOR). */
export function objectSelectorJson(): string {
  return sortedJson(OBJECT_SELECTOR);
}

/** Keys sorted as Go's encoding/json sorts them (helm's toJson), so both outputs agree. */
export function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

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
    const parts = builtInParts(ctx);
    const matchExpressions = b.block(parts.expressionsExpr, parts.expressions);
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
          objectSelector: structuredClone(OBJECT_SELECTOR),
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
