// buildServer(config, deps) -> FastifyInstance. It never listens: tests drive it with inject(),
// app/main.ts is the only place that binds ports.

import Fastify, { LogController, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { SecureContextOptions } from 'node:tls';
import { allowed, decodeReview, patched } from '../admission/codec.ts';
import type { AdmissionRequest, AdmissionReview, Pod } from '../admission/types.ts';
import type { Config } from '../config.ts';
import { PATH_HEALTHZ, PATH_METRICS, PATH_MUTATE, PATH_READYZ } from '../contract.ts';
import { ERRORS, errorBody, type ErrorSpec } from '../errors.ts';
import { warning } from '../inject/reasons.ts';
import { decide } from '../inject/decide.ts';
import { outcomeOf, type Outcome } from '../inject/review.ts';
import type { ReadinessCache } from '../kube/namespaces.ts';
import { planInjection, type InjectionPlan } from '../inject/sidecar.ts';
import { createReviewGate, type ReviewGate } from './review-gate.ts';
import { meteredBody } from './body-deadline.ts';
import { OTHER, kindLabel, operationLabel, type Metrics } from './metrics.ts';

export interface ServerDeps {
  metrics: Metrics;
  /** A pino logger, or false for none (tests). */
  logger: Logger | false;
  /** Serving certificate; without it the server speaks plain HTTP (inject() tests, metrics). */
  tls?: SecureContextOptions;
  /** Namespace readiness (ServiceAccount and license Secret); without it, namespaces are not checked. */
  readiness?: ReadinessCache;
  /** Ready to serve admission reviews (a valid certificate is loaded). */
  isReady?: () => boolean;
  /** Bounds the review bytes held at once; default: config.reviewBytesInFlight. */
  gate?: ReviewGate;
}

// The API server's webhook client keeps idle connections for 90 s (IdleConnTimeout of
// k8s.io/apimachinery's SetTransportDefaults). Keeping ours a little longer means the client, not
// the server, closes an idle connection, so a review is never sent on a socket we just closed.
const KEEP_ALIVE_TIMEOUT_MS = 95_000;

const reviewResponseSchema = {
  type: 'object',
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    response: {
      type: 'object',
      properties: {
        uid: { type: 'string' },
        allowed: { type: 'boolean' },
        patchType: { type: 'string' },
        // base64 has no character JSON must escape: written as is, not scanned for escapes.
        patch: { type: 'string', format: 'unsafe' },
        warnings: { type: 'array', items: { type: 'string' } },
        auditAnnotations: { type: 'object', additionalProperties: { type: 'string' } },
      },
      required: ['uid', 'allowed'],
    },
  },
  required: ['apiVersion', 'kind', 'response'],
} as const;

const errorSchema = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' } },
  required: ['code', 'message'],
} as const;

/** Maps fastify's own body errors onto our table. */
function errorFor(err: { code?: string; statusCode?: number }): ErrorSpec {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return ERRORS.BODY_TOO_LARGE;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return ERRORS.UNSUPPORTED_MEDIA_TYPE;
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return ERRORS.EMPTY_BODY;
    case ERRORS.BODY_TIMEOUT.code:
      return ERRORS.BODY_TIMEOUT;
    case ERRORS.BODY_STALLED.code:
      return ERRORS.BODY_STALLED;
    default:
      return err.statusCode === 400 ? ERRORS.BAD_JSON : ERRORS.INTERNAL;
  }
}

function podName(request: AdmissionRequest): string | undefined {
  const meta = (request.object as Pod | undefined)?.metadata;
  if (meta?.name) return meta.name;
  if (meta?.generateName) return `${meta.generateName}*`;
  return request.name || undefined;
}

// namespaceSetUp: the readiness lookup found the ServiceAccount or the Secret, so the namespace
// exists and was set up: only then may it name a metric series.
type SafeOutcome = Outcome & { error?: Error; namespaceSetUp?: boolean };

function failOpen(err: unknown): SafeOutcome {
  // Fail open, as failurePolicy Ignore would, but never silently: warn, log, count.
  const error = err instanceof Error ? err : new Error(String(err));
  return {
    reason: 'error-internal',
    message: error.message,
    patch: [],
    warnings: [warning(`sidecar not injected: ${error.message}`)],
    error,
  };
}

/**
 * The review, decided once: synchronous unless the decision is pending the namespace's readiness,
 * which is then looked up and handed to it. A review with nothing to wait for does not pay for
 * promises and microtask turns. Exported for the test that counts decisions per review.
 */
export function reviewAdmission(request: AdmissionRequest, plan: InjectionPlan, readiness: ReadinessCache | undefined): SafeOutcome | Promise<SafeOutcome> {
  try {
    const decision = decide(request, plan);
    if (decision.action !== 'needs-namespace') return outcomeOf(decision, plan);
    if (!readiness || !request.namespace) return outcomeOf(decision.resolve({}), plan);
    return readiness
      .get(request.namespace)
      .then((lookup): SafeOutcome => ({
        ...outcomeOf(decision.resolve(lookup.ok ? { namespace: lookup.facts } : { namespaceLookupFailed: lookup.reason }), plan),
        namespaceSetUp: lookup.ok && (lookup.facts.serviceAccount || lookup.facts.licenseSecret),
      }))
      .catch(failOpen);
  } catch (err) {
    return failOpen(err);
  }
}

export function buildServer(config: Config, deps: ServerDeps): FastifyInstance {
  const plan = planInjection(config);
  const { metrics } = deps;
  const isReady = deps.isReady ?? (() => true);
  const gate = deps.gate ?? createReviewGate(config.reviewBytesInFlight);
  let closing = false;

  const options: FastifyServerOptions = {
    bodyLimit: config.bodyLimitBytes,
    // One log line per review, written by the handler with uid, pod and reason; no request/response pair.
    logController: new LogController({ disableRequestLogging: true }),
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // In-flight and keep-alive requests keep being answered while we drain; a 503 would be a
    // failed webhook call, and under failurePolicy Ignore an uninjected pod.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // Kubernetes accepts any key in free-form maps (CSI volumeAttributes, annotations), so a legal
    // pod may carry `__proto__` or `constructor`: refusing it (fastify's default, a 400) lets that
    // pod dodge injection. JSON.parse keeps such keys as plain own properties; nothing here copies
    // them with a setter (spreads and diff() only), and test/server/prototype.test.ts proves no
    // prototype gains a property on any path. Not scanning also saves a pass over 3 MiB bodies.
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
  };
  // fastify's typings bind the server type to the options literal; the instance API is the same.
  const serverOptions = deps.tls
    ? ({ ...options, https: { ...deps.tls, minVersion: 'TLSv1.2' } } as unknown as FastifyServerOptions)
    : options;
  const app = Fastify(serverOptions) as unknown as FastifyInstance;

  // AdmissionReviews are JSON; fastify's built-in text/plain parser would let other bodies through.
  app.removeContentTypeParser('text/plain');

  // /readyz fails from here on. A review still arriving on a kept-alive connection is answered
  // with `connection: close` by fastify itself (test/server/closing.test.ts), and, earlier, during
  // main.ts's drain delay, by server/drain.ts.
  app.addHook('preClose', async () => {
    closing = true;
  });

  // Every body (to /mutate or to any other path, which is answered 404 only once it has been read)
  // is read through the gate, charged by the bytes that arrive (never by the Content-Length a
  // client declares) and within its deadlines (body-deadline.ts); its bytes are freed when the
  // response is done or the connection closes.
  app.addHook('preParsing', (request, reply, payload, done) => {
    if (request.headers['content-length'] === undefined && request.headers['transfer-encoding'] === undefined) return done(null, payload);
    const body = meteredBody(payload, gate.open(), { timeoutMs: config.bodyTimeoutMs, stallMs: config.bodyStallMs }, (reason) => {
      metrics.bodiesRefused.inc({ reason });
    });
    reply.raw.once('close', body.stop);
    reply.raw.once('finish', body.stop);
    done(null, body.stream);
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody(ERRORS.NOT_FOUND, `${request.method} ${request.url.slice(0, 100)}`));
  });

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, request, reply) => {
    const spec = errorFor(err);
    metrics.requests.inc({ operation: 'unknown', kind: 'unknown', outcome: 'invalid', reason: spec.code });
    request.log.warn({ code: spec.code, err: { message: err.message, code: err.code } }, spec.message);
    const detail = spec === ERRORS.BODY_TOO_LARGE ? `limit is ${config.bodyLimitBytes} bytes` : undefined;
    reply.code(spec.statusCode).send(errorBody(spec, detail));
  });

  app.get(PATH_HEALTHZ, async () => ({ status: 'ok' }));
  app.get(PATH_READYZ, async (_request, reply) => {
    if (closing) return reply.code(503).send({ status: 'shutting down' });
    if (!isReady()) return reply.code(503).send({ status: 'no valid serving certificate loaded' });
    return { status: 'ready' };
  });

  app.post<{ Body: unknown }>(
    PATH_MUTATE,
    {
      schema: { response: { 200: reviewResponseSchema, 400: errorSchema } },
    },
    (request, reply) => {
      const started = process.hrtime.bigint();
      const decoded = decodeReview(request.body);
      if (!decoded.ok) {
        metrics.requests.inc({ operation: 'unknown', kind: 'unknown', outcome: 'invalid', reason: decoded.error.code });
        request.log.warn({ code: decoded.error.code }, decoded.error.message);
        reply.code(decoded.error.statusCode).send(errorBody(decoded.error, decoded.detail));
        return undefined;
      }
      const admission = decoded.request;
      // A synchronous handler's return value is sent as a returned promise's value would be.
      const result = reviewAdmission(admission, plan, deps.readiness);
      return result instanceof Promise ? result.then((outcome) => answerFor(request, admission, outcome, started)) : answerFor(request, admission, result, started);
    },
  );

  /** The AdmissionReview answer, with its metrics and its one log line. */
  function answerFor(request: FastifyRequest, admission: AdmissionRequest, outcome: SafeOutcome, started: bigint): AdmissionReview {
    const audit = { reason: outcome.reason };
    const answer: AdmissionReview = outcome.patch.length > 0
      ? patched(admission.uid, outcome.patch, outcome.warnings, audit)
      : allowed(admission.uid, outcome.warnings, audit);

    const result = outcome.error ? 'error' : outcome.patch.length > 0 ? 'patched' : 'allowed';
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const operation = operationLabel(admission.operation);
    const kind = kindLabel(admission.kind?.kind);
    metrics.requests.inc({ operation, kind, outcome: result, reason: outcome.reason });
    metrics.duration.observe({ outcome: result }, seconds);
    if (outcome.mode && outcome.patch.length > 0) {
      metrics.injections.inc({ mode: outcome.mode, reason: outcome.reason });
    }
    if (outcome.reason === 'namespace-not-ready' && admission.namespace) {
      metrics.namespaceNotReady.inc({ namespace: outcome.namespaceSetUp ? admission.namespace : OTHER });
    }
    const fields = {
      uid: admission.uid,
      namespace: admission.namespace,
      pod: podName(admission),
      operation,
      kind,
      reason: outcome.reason,
      dryRun: admission.dryRun === true || undefined,
      durationMs: Math.round(seconds * 1e6) / 1e3,
    };
    if (outcome.error) {
      request.log.error({ ...fields, code: ERRORS.MUTATION_FAILED.code, err: outcome.error }, outcome.message);
    } else {
      request.log.info(fields, outcome.message);
    }
    return answer;
  }
  return app;
}

/** The plain-HTTP metrics server on its own port, so scraping never needs the serving cert. */
export function buildMetricsServer(registry: Registry): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get(PATH_METRICS, async (_request, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  app.get(PATH_HEALTHZ, async () => ({ status: 'ok' }));
  return app;
}
