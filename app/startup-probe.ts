// The sidecar's optional startup probe (the chart's sidecar.startupProbe, PANDO_SIDECAR_STARTUP_PROBE):
// its JSON schema for values.schema.json and its parsing for app/config.ts, side by side so that
// helm and the webhook refuse the same values.
//
// Why it is opt-in: without a startup probe the kubelet counts a native sidecar as started as soon
// as its process runs and then starts the pod's next init container and the app (kubelet v1.37.2,
// pkg/kubelet/kuberuntime/kuberuntime_container.go, computeInitContainerActions). With one, it waits
// for the probe's first success, and restarts the sidecar when the probe fails failureThreshold
// times: a sidecar that never gets ready then keeps the app from starting, which the vendor's
// contract (no probe named) does not ask for.

import { ConfigError } from './errors.ts';

export interface StartupProbe {
  readonly exec?: { readonly command: readonly string[] };
  readonly httpGet?: { readonly path?: string; readonly port: number | string; readonly scheme?: 'HTTP' | 'HTTPS'; readonly httpHeaders?: readonly { readonly name: string; readonly value: string }[] };
  readonly tcpSocket?: { readonly port: number | string };
  readonly grpc?: { readonly port: number; readonly service?: string };
  readonly initialDelaySeconds?: number;
  readonly periodSeconds?: number;
  readonly timeoutSeconds?: number;
  readonly failureThreshold?: number;
  readonly successThreshold?: 1;
}

export const PROBE_HANDLERS = ['exec', 'httpGet', 'tcpSocket', 'grpc'] as const;
const TIMINGS = { initialDelaySeconds: 0, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 1 } as const;
/** The API server's defaults for unset fields (k8s.io/api core/v1 defaults: SetDefaults_Probe). */
export const PROBE_DEFAULTS = { initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3 } as const;
const MAX_SECONDS = 86400;
const MAX_FAILURES = 10000;
// IANA_SVC_NAME (k8s.io/apimachinery validation.IsValidPortName): 1-15 lowercase letters, digits and
// inner hyphens, never two in a row, at least one letter. Three patterns, as helm's validator uses
// Go's regexp (no lookahead).
const PORT_NAME = '^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$';
const isPortName = (v: string): boolean => new RegExp(PORT_NAME).test(v) && !/^[0-9]+$/.test(v) && !v.includes('--');
const HEADER_NAME = "^[-A-Za-z0-9!#$%&'*+.^_`|~]+$";

const portSchema = { anyOf: [{ type: 'integer', minimum: 1, maximum: 65535 }, { type: 'string', pattern: PORT_NAME, not: { anyOf: [{ pattern: '^[0-9]+$' }, { pattern: '--' }] } }] };
const seconds = (minimum: number, max = MAX_SECONDS) => ({ type: 'integer', minimum, maximum: max });

/**
 * values.schema.json for sidecar.startupProbe: {} (no probe) or one handler with timings. `host`
 * is refused: Pod Security baseline forbids a probe host since 1.34 (pod-security-admission
 * check_hostProbesAndhostLifecycle.go), so an injected pod would be refused in such namespaces.
 */
export const STARTUP_PROBE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    exec: { type: 'object', additionalProperties: false, required: ['command'], properties: { command: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } } } },
    httpGet: {
      type: 'object',
      additionalProperties: false,
      required: ['port'],
      properties: {
        path: { type: 'string', pattern: '^/' },
        port: portSchema,
        scheme: { type: 'string', enum: ['HTTP', 'HTTPS'] },
        httpHeaders: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['name', 'value'], properties: { name: { type: 'string', pattern: HEADER_NAME }, value: { type: 'string' } } } },
      },
    },
    tcpSocket: { type: 'object', additionalProperties: false, required: ['port'], properties: { port: portSchema } },
    grpc: { type: 'object', additionalProperties: false, required: ['port'], properties: { port: { type: 'integer', minimum: 1, maximum: 65535 }, service: { type: 'string' } } },
    initialDelaySeconds: seconds(TIMINGS.initialDelaySeconds),
    periodSeconds: seconds(TIMINGS.periodSeconds),
    timeoutSeconds: seconds(TIMINGS.timeoutSeconds),
    failureThreshold: seconds(TIMINGS.failureThreshold, MAX_FAILURES),
    successThreshold: { type: 'integer', enum: [1] },
  },
  // Empty (no probe), or exactly one handler.
  anyOf: [{ maxProperties: 0 }, { oneOf: PROBE_HANDLERS.map((h) => ({ required: [h] })) }],
} as const;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function port(name: string, where: string, value: unknown, namedAllowed = true): number | string {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535) return value;
  if (namedAllowed && typeof value === 'string' && isPortName(value)) return value;
  throw new ConfigError(name, `${where} ${JSON.stringify(value)} is not a port (1-65535${namedAllowed ? ' or a port name' : ''})`);
}

function closed(name: string, where: string, value: unknown, allowed: readonly string[]): Json {
  if (!isObject(value)) throw new ConfigError(name, `${where} must be an object`);
  const extra = Object.keys(value).find((k) => !allowed.includes(k));
  if (extra === 'host') {
    throw new ConfigError(name, `${where}.host is not allowed: Pod Security (baseline and restricted) refuses a probe host, and the probe runs against the pod itself`);
  }
  if (extra !== undefined) throw new ConfigError(name, `${where}: unknown field "${extra}" (allowed: ${allowed.join(', ')})`);
  return value;
}

function handler(name: string, key: (typeof PROBE_HANDLERS)[number], value: unknown): Json {
  switch (key) {
    case 'exec': {
      const { command } = closed(name, 'exec', value, ['command']);
      if (!Array.isArray(command) || command.length === 0 || command.some((c) => typeof c !== 'string' || c === '')) {
        throw new ConfigError(name, 'exec.command must be a non-empty list of non-empty strings');
      }
      return { command: [...command] };
    }
    case 'httpGet': {
      const h = closed(name, 'httpGet', value, ['path', 'port', 'scheme', 'httpHeaders']);
      if (h.path !== undefined && (typeof h.path !== 'string' || !h.path.startsWith('/'))) throw new ConfigError(name, 'httpGet.path must start with /');
      if (h.scheme !== undefined && h.scheme !== 'HTTP' && h.scheme !== 'HTTPS') throw new ConfigError(name, `httpGet.scheme ${JSON.stringify(h.scheme)} is neither HTTP nor HTTPS`);
      const out: Json = { ...(h.path !== undefined ? { path: h.path } : {}), port: port(name, 'httpGet.port', h.port) };
      if (h.scheme !== undefined) out.scheme = h.scheme;
      if (h.httpHeaders !== undefined) {
        if (!Array.isArray(h.httpHeaders)) throw new ConfigError(name, 'httpGet.httpHeaders must be a list of {name, value}');
        out.httpHeaders = h.httpHeaders.map((header, i) => {
          const { name: n, value: v } = closed(name, `httpGet.httpHeaders[${i}]`, header, ['name', 'value']);
          if (typeof n !== 'string' || !new RegExp(HEADER_NAME).test(n) || typeof v !== 'string') throw new ConfigError(name, `httpGet.httpHeaders[${i}] needs a header name and a string value`);
          return { name: n, value: v };
        });
      }
      return out;
    }
    case 'tcpSocket':
      return { port: port(name, 'tcpSocket.port', closed(name, 'tcpSocket', value, ['port']).port) };
    case 'grpc': {
      const g = closed(name, 'grpc', value, ['port', 'service']);
      if (g.service !== undefined && typeof g.service !== 'string') throw new ConfigError(name, 'grpc.service must be a string');
      return { port: port(name, 'grpc.port', g.port, false), ...(g.service !== undefined ? { service: g.service } : {}) };
    }
  }
}

/**
 * PANDO_SIDECAR_STARTUP_PROBE: unset, empty or `{}` is no probe (undefined); otherwise the probe,
 * frozen, with only the fields given (the API server defaults the rest). A bad value is a
 * ConfigError that names what is wrong, so the webhook does not start with it.
 */
export function parseStartupProbe(name: string, text: string | undefined): StartupProbe | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError(name, 'is not JSON (a Kubernetes probe: {"exec":{"command":[...]},"periodSeconds":1,"failureThreshold":30})');
  }
  if (parsed === null) return undefined;
  const probe = closed(name, 'the probe', parsed, [...PROBE_HANDLERS, ...Object.keys(TIMINGS), 'successThreshold']);
  if (Object.keys(probe).length === 0) return undefined;
  const handlers = PROBE_HANDLERS.filter((h) => probe[h] !== undefined);
  if (handlers.length !== 1) {
    throw new ConfigError(name, handlers.length === 0 ? `needs one of ${PROBE_HANDLERS.join(', ')}` : `has ${handlers.join(' and ')}: a probe has exactly one handler`);
  }
  const key = handlers[0]!;
  const out: Json = { [key]: handler(name, key, probe[key]) };
  for (const [field, minimum] of Object.entries(TIMINGS)) {
    const v = probe[field];
    if (v === undefined) continue;
    const max = field === 'failureThreshold' ? MAX_FAILURES : MAX_SECONDS;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < minimum || v > max) throw new ConfigError(name, `${field} ${JSON.stringify(v)} is not a whole number from ${minimum} to ${max}`);
    out[field] = v;
  }
  if (probe.successThreshold !== undefined) {
    // The API server requires 1 for a startup probe (validation.go, validateStartupProbe).
    if (probe.successThreshold !== 1) throw new ConfigError(name, `successThreshold ${JSON.stringify(probe.successThreshold)} must be 1 for a startup probe`);
    out.successThreshold = 1;
  }
  return deepFreeze(out) as StartupProbe;
}

/**
 * The longest a sidecar may take to pass the probe before the kubelet restarts it:
 * initialDelaySeconds + periodSeconds x failureThreshold (the API server's defaults for unset fields).
 */
export function startupBudgetSeconds(probe: StartupProbe): number {
  const p = { ...PROBE_DEFAULTS, ...probe };
  return p.initialDelaySeconds + p.periodSeconds * p.failureThreshold;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
