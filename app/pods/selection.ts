// Which pods the API server sends to the webhook at all: the MutatingWebhookConfiguration's
// namespaceSelector (excluded namespaces, the release namespace, namespaces labelled
// pandocore.xyz/injection: disabled, webhook.namespaceSelector) and objectSelector. A pod outside
// them is never reviewed, so it is skipped (namespace-not-selected): the watchdog never reports or
// restarts it and doctor does not call it unprotected. The chart renders the same selectors into
// the webhook configuration and into the watchdog's env (PANDO_WEBHOOK_NAMESPACE_SELECTOR,
// PANDO_WEBHOOK_OBJECT_SELECTOR), so the two cannot disagree. Pure: no I/O.
import { LABEL_INJECTION, LABEL_PROTECT } from '../contract.ts';
import type { Classification } from './classify.ts';

export interface SelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

/** A metav1.LabelSelector. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: SelectorRequirement[];
}

export const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/** The value that opts a namespace out (`pandocore.xyz/injection: disabled`). */
export const INJECTION_OPT_OUT = 'disabled';

/** As the API server evaluates a LabelSelector (apimachinery labels.Selector); an empty one selects everything. */
export function selectorMatches(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    if (e.operator === 'In' && !(has && values.includes(value!))) return false;
    if (e.operator === 'NotIn' && has && values.includes(value!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** The same selector as a list/watch `labelSelector` string. */
export function selectorString(selector: LabelSelector): string {
  const terms = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector.matchExpressions ?? []) {
    const values = `(${(e.values ?? []).join(',')})`;
    if (e.operator === 'In') terms.push(`${e.key} in ${values}`);
    else if (e.operator === 'NotIn') terms.push(`${e.key} notin ${values}`);
    else if (e.operator === 'Exists') terms.push(e.key);
    else if (e.operator === 'DoesNotExist') terms.push(`!${e.key}`);
  }
  return terms.join(',');
}

/** What the chart's webhook configuration selects without any webhook.namespaceSelector of the operator's. */
export function builtInNamespaceSelector(excludedNamespaces: readonly string[], releaseNamespace: string): LabelSelector {
  return {
    matchExpressions: [
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...new Set([...excludedNamespaces, releaseNamespace])] },
      { key: LABEL_INJECTION, operator: 'NotIn', values: [INJECTION_OPT_OUT] },
    ],
  };
}

export const DEFAULT_OBJECT_SELECTOR: LabelSelector = Object.freeze({ matchLabels: Object.freeze({ [LABEL_PROTECT]: 'true' }) });

export interface WebhookSelectors {
  namespaceSelector: LabelSelector;
  objectSelector: LabelSelector;
}

/**
 * Skipped when the API server would not call the webhook for a pod in `namespace` (labels as read
 * now; undefined: they could not be read, so nobody can tell and nothing is done to the pod).
 */
export function selectionSkip(namespace: string, namespaceLabels: Readonly<Record<string, string>> | undefined, podLabels: Readonly<Record<string, string>>, selectors: WebhookSelectors): Classification | undefined {
  if (namespaceLabels === undefined) {
    return { state: 'skipped', reason: 'namespace-check-failed', message: `the labels of namespace ${namespace} could not be read, so whether the webhook is called for its pods is unknown` };
  }
  if (!selectorMatches(selectors.namespaceSelector, namespaceLabels)) {
    const why = namespaceLabels[LABEL_INJECTION] === INJECTION_OPT_OUT ? `it is labelled ${LABEL_INJECTION}: ${INJECTION_OPT_OUT}` : `the webhook's namespaceSelector does not select it`;
    return { state: 'skipped', reason: 'namespace-not-selected', message: `namespace ${namespace} is not sent to the webhook (${why}); its pods are left as they are` };
  }
  if (!selectorMatches(selectors.objectSelector, podLabels)) {
    return { state: 'skipped', reason: 'not-labelled', message: `the pod does not match the webhook's objectSelector` };
  }
  return undefined;
}
