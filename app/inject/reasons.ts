// Every outcome of a review has a reason key. The key goes to metrics, logs and audit annotations;
// the sentence that comes with it goes to admission warnings and `pando doctor`.

export const REASONS = [
  'injected',
  'reinjected',
  'already-injected',
  'not-labelled',
  'namespace-excluded',
  'namespace-not-selected',
  'own-namespace',
  'not-a-pod',
  'operation-not-create',
  'unmanaged-sidecar',
  'namespace-not-ready',
  'namespace-check-failed',
  'pod-resources-too-small',
  'unsupported-os',
  'limit-range',
  'error-invalid-object',
  'error-internal',
] as const;

export type Reason = (typeof REASONS)[number];

/** Kubernetes shows warnings best at 120 characters or fewer. */
export const MAX_WARNING_LENGTH = 120;

export function warning(sentence: string): string {
  const text = `pandocore: ${sentence}`;
  return text.length <= MAX_WARNING_LENGTH ? text : `${text.slice(0, MAX_WARNING_LENGTH - 1)}…`;
}

/** Shortens a user-supplied value so that a warning quoting it stays readable. */
export function quote(value: string, max = 40): string {
  const clean = value.replace(/[\r\n\t]/g, ' ');
  return JSON.stringify(clean.length <= max ? clean : `${clean.slice(0, max - 1)}…`);
}
