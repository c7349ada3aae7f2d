// Prometheus metrics on a Registry passed in (never prom-client's global one), so every test and
// every server instance has its own.

import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';

export interface Metrics {
  readonly requests: Counter<'operation' | 'kind' | 'outcome' | 'reason'>;
  readonly duration: Histogram<'outcome'>;
  readonly injections: Counter<'mode' | 'reason'>;
  readonly certExpiry: Gauge;
  readonly caBundleInSync: Gauge;
  readonly tlsSecretRecoveries: Counter<'reason'>;
  readonly namespaceNotReady: Counter<'namespace'>;
  readonly namespaceLookups: Counter;
  readonly namespaceLookupErrors: Counter<'reason'>;
  readonly bodiesRefused: Counter<'reason'>;
  readonly registry: Registry;
}

export interface BuildInfo {
  version: string;
  sidecarVersion: string;
}

// Label values come from fixed sets: a value taken from a request body as it is would let any
// in-cluster client create series (and memory) without bound.
const OPERATIONS: ReadonlySet<string> = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);
const KINDS: ReadonlySet<string> = new Set(['Pod']);
/** The label value for anything outside a fixed set. */
export const OTHER = 'other';

/** `operation` label: an admission operation, else `other`. */
export function operationLabel(value: unknown): string {
  return typeof value === 'string' && OPERATIONS.has(value) ? value : OTHER;
}

/** `kind` label: a kind the webhook is registered for, else `other`. */
export function kindLabel(value: unknown): string {
  return typeof value === 'string' && KINDS.has(value) ? value : OTHER;
}

// From 0.1 ms: the typical review takes well under a millisecond.
const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createMetrics(registry: Registry, build: BuildInfo, processMetrics = true): Metrics {
  if (processMetrics) collectDefaultMetrics({ register: registry, prefix: 'pandocore_' });
  const info = new Gauge({
    name: 'pandocore_build_info',
    help: 'Build information of the webhook; always 1.',
    labelNames: ['version', 'sidecar_version', 'node_version'],
    registers: [registry],
  });
  info.set({ version: build.version, sidecar_version: build.sidecarVersion, node_version: process.version }, 1);
  const metrics: Metrics = {
    registry,
    requests: new Counter({
      name: 'pandocore_admission_requests_total',
      help: 'Admission reviews answered, by operation, kind, outcome (patched, allowed, error) and reason.',
      labelNames: ['operation', 'kind', 'outcome', 'reason'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'pandocore_admission_duration_seconds',
      help: 'Time to answer one admission review, from parsed body to serialised answer.',
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    injections: new Counter({
      name: 'pandocore_injections_total',
      help: 'Sidecars injected (reason injected) or replaced (reason reinjected), by mode.',
      labelNames: ['mode', 'reason'],
      registers: [registry],
    }),
    certExpiry: new Gauge({
      name: 'pandocore_tls_cert_expiry_timestamp_seconds',
      help: 'Expiry (Unix time) of the serving certificate in use.',
      registers: [registry],
    }),
    namespaceNotReady: new Counter({
      name: 'pandocore_namespace_not_ready_total',
      help: 'Labelled pods created without the sidecar because their namespace lacks the ServiceAccount or license Secret; namespace is other unless the lookup found part of the setup there.',
      labelNames: ['namespace'],
      registers: [registry],
    }),
    namespaceLookups: new Counter({
      name: 'pandocore_namespace_lookups_total',
      help: 'Namespace lookups sent to the API server (ServiceAccount, Secrets, LimitRanges); cached answers are not counted.',
      registers: [registry],
    }),
    namespaceLookupErrors: new Counter({
      name: 'pandocore_namespace_lookup_errors_total',
      help: 'Namespace lookups that failed (labelled pods there are created without the sidecar: namespace-check-failed), by reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    bodiesRefused: new Counter({
      name: 'pandocore_review_bodies_refused_total',
      help: 'Requests answered 408 and closed because their body did not arrive: timeout (not complete within PANDO_BODY_TIMEOUT_MS) or stalled (nothing sent for PANDO_BODY_STALL_MS).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    caBundleInSync: new Gauge({
      name: 'pandocore_cabundle_in_sync',
      help: '1 when the webhook configuration\'s caBundle verifies the certificate this replica serves, 0 when not, absent when not checked.',
      registers: [registry],
    }),
    tlsSecretRecoveries: new Counter({
      name: 'pandocore_tls_secret_recoveries_total',
      help: 'Self-signed: times the TLS Secret was missing (while a caBundle was set), incomplete or held a corrupt CA, and a new CA replaced it next to the CAs still trusted.',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
  for (const reason of ['missing', 'incomplete', 'corrupt']) metrics.tlsSecretRecoveries.inc({ reason }, 0);
  for (const reason of ['timeout', 'stalled']) metrics.bodiesRefused.inc({ reason }, 0);
  return metrics;
}
