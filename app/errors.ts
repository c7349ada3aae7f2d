// One table of error codes (the shape of fastify's lib/errors.js). Every HTTP error the server
// answers and every failure it logs carries one of these codes, so logs, tests and docs agree.

export interface ErrorSpec {
  readonly code: string;
  readonly statusCode: number;
  readonly message: string;
}

function spec(code: string, statusCode: number, message: string): ErrorSpec {
  return Object.freeze({ code, statusCode, message });
}

export const ERRORS = Object.freeze({
  BAD_JSON: spec('PANDO_BAD_JSON', 400, 'request body is not valid JSON'),
  NOT_ADMISSION_REVIEW: spec(
    'PANDO_NOT_ADMISSION_REVIEW',
    400,
    'request body is not an admission.k8s.io/v1 AdmissionReview',
  ),
  NO_REQUEST: spec('PANDO_NO_REQUEST', 400, 'AdmissionReview has no request'),
  NO_UID: spec('PANDO_NO_UID', 400, 'AdmissionReview request has no uid'),
  EMPTY_BODY: spec('PANDO_EMPTY_BODY', 400, 'request body is empty'),
  BODY_TOO_LARGE: spec('PANDO_BODY_TOO_LARGE', 413, 'request body is larger than the limit'),
  BODY_TIMEOUT: spec('PANDO_BODY_TIMEOUT', 408, 'request body did not arrive in time; connection closed'),
  BODY_STALLED: spec('PANDO_BODY_STALLED', 408, 'request body stopped arriving; connection closed'),
  UNSUPPORTED_MEDIA_TYPE: spec(
    'PANDO_UNSUPPORTED_MEDIA_TYPE',
    415,
    'content type must be application/json',
  ),
  NOT_FOUND: spec('PANDO_NOT_FOUND', 404, 'no such route'),
  INTERNAL: spec('PANDO_INTERNAL', 500, 'internal error'),
  MUTATION_FAILED: spec('PANDO_MUTATION_FAILED', 200, 'building the patch failed; answered allowed without a patch'),
  CONFIG_INVALID: spec('PANDO_CONFIG_INVALID', 0, 'invalid configuration'),
  NAMESPACE_LOOKUP_FAILED: spec('PANDO_NAMESPACE_LOOKUP_FAILED', 0, 'namespace lookup failed; labelled pods there are created without the sidecar (namespace-check-failed)'),
  TLS_LOAD_FAILED: spec('PANDO_TLS_LOAD_FAILED', 0, 'could not load the TLS certificate'),
});

/** The body of every HTTP error answer: `{ code, message }`. */
export interface ErrorBody {
  code: string;
  message: string;
}

export function errorBody(error: ErrorSpec, detail?: string): ErrorBody {
  return { code: error.code, message: detail ? `${error.message}: ${detail}` : error.message };
}

/** A configuration error names the variable and the reason; main.ts prints it and exits non-zero. */
export class ConfigError extends Error {
  readonly code = ERRORS.CONFIG_INVALID.code;
  readonly variable: string;
  constructor(variable: string, reason: string) {
    super(`${variable}: ${reason}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}
