// The pure core in one call: (AdmissionRequest, InjectionPlan) -> Outcome.

import type { Operation } from 'fast-json-patch';
import type { AdmissionRequest } from '../admission/types.ts';
import { decideWith, type Decision, type ReviewContext } from './decide.ts';
import { mutate } from './mutate.ts';
import type { Reason } from './reasons.ts';
import type { InjectionPlan } from './sidecar.ts';
import type { Mode } from '../contract.ts';

export interface Outcome {
  reason: Reason;
  /** One sentence a person understands: why the pod was or was not injected. */
  message: string;
  /** RFC 6902 operations; empty when nothing changes. */
  patch: Operation[];
  warnings: string[];
  /** The sidecar's mode, when one was injected. */
  mode?: Mode;
}

/** A decision's outcome: the skip as is, or the injection's patch. */
export function outcomeOf(decision: Decision, plan: InjectionPlan): Outcome {
  if (decision.action === 'skip') {
    return { reason: decision.reason, message: decision.message, patch: [], warnings: decision.warnings };
  }
  const mutation = mutate(decision.pod, decision.mode, plan, decision.adjustments);
  return {
    reason: decision.reason,
    message: decision.message,
    patch: mutation.patch,
    warnings: [...decision.warnings, ...mutation.warnings],
    mode: decision.mode,
  };
}

/** The review with the namespace's facts at hand ({}: not checked). */
export function review(request: AdmissionRequest, plan: InjectionPlan, context: ReviewContext = {}): Outcome {
  return outcomeOf(decideWith(request, plan, context), plan);
}
