// AdmissionReview decoding and the answer constructors (after controller-runtime's response.go).

import type { Operation } from 'fast-json-patch';
import { ERRORS, type ErrorSpec } from '../errors.ts';
import type { AdmissionRequest, AdmissionResponse, AdmissionReview } from './types.ts';

export const API_VERSION = 'admission.k8s.io/v1';
export const KIND = 'AdmissionReview';

export type Decoded = { ok: true; request: AdmissionRequest } | { ok: false; error: ErrorSpec; detail?: string };

/** Checks the envelope of a parsed body; the object inside is left to the core. */
export function decodeReview(body: unknown): Decoded {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, error: ERRORS.NOT_ADMISSION_REVIEW, detail: 'body is not a JSON object' };
  }
  const review = body as Partial<AdmissionReview>;
  if (review.apiVersion !== API_VERSION || review.kind !== KIND) {
    const got = `${String(review.apiVersion)} ${String(review.kind)}`;
    return { ok: false, error: ERRORS.NOT_ADMISSION_REVIEW, detail: `got ${got.slice(0, 80)}` };
  }
  const request = review.request;
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    return { ok: false, error: ERRORS.NO_REQUEST };
  }
  if (typeof request.uid !== 'string' || request.uid === '') {
    return { ok: false, error: ERRORS.NO_UID };
  }
  return { ok: true, request };
}

function envelope(response: AdmissionResponse): AdmissionReview {
  return { apiVersion: API_VERSION, kind: KIND, response };
}

/** Allowed, no patch: everything this webhook does not change. */
export function allowed(uid: string, warnings: string[], auditAnnotations: Record<string, string>): AdmissionReview {
  const response: AdmissionResponse = { uid, allowed: true, auditAnnotations };
  if (warnings.length > 0) response.warnings = warnings;
  return envelope(response);
}

/** Allowed with a JSON Patch; an empty patch is sent as no patch at all. */
export function patched(
  uid: string,
  patch: Operation[],
  warnings: string[],
  auditAnnotations: Record<string, string>,
): AdmissionReview {
  if (patch.length === 0) return allowed(uid, warnings, auditAnnotations);
  const review = allowed(uid, warnings, auditAnnotations);
  review.response!.patchType = 'JSONPatch';
  review.response!.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
  return review;
}
