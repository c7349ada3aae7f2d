// What every construct of the chart shares: the values binding, the namespace, the fixed names
// and labels. Names are fixed (one PandoCore per cluster): the CLI, the webhook's own Secret and
// webhook-configuration lookups and the docs rely on them.
import { Binding } from './binding.ts';
import { SELECTOR_LABELS, type Values } from './values.ts';

export const NAMES = {
  app: 'pando-webhook',
  webhookConfiguration: 'pando-webhook',
  webhook: 'inject.pandocore.xyz',
  tlsSecret: 'pando-webhook-tls',
  selfSignedIssuer: 'pando-webhook-selfsigned',
  caCertificate: 'pando-webhook-ca',
  caSecret: 'pando-webhook-ca',
  caIssuer: 'pando-webhook-ca',
  servingCertificate: 'pando-webhook-serving',
} as const;

// The Service's own ports; the pod's are the values securePort and metricsPort.
export const PORTS = { metrics: 9090, service: 443 } as const;

export interface PandoContext {
  readonly b: Binding;
  readonly values: Values;
  /** The release namespace (a token in helm mode). */
  readonly namespace: string;
  /** The webhook image version when image.tag is empty (chart appVersion). */
  readonly appVersion: string;
  /** Labels of the webhook pods; the selector of the Deployment, Service, PDB and NetworkPolicy. */
  readonly selectorLabels: Readonly<Record<string, string>>;
  /** Labels on every object (commonLabels included). */
  readonly labels: Readonly<Record<string, string>>;
  /** commonLabels alone, for objects with labels of their own (the per-namespace setup). */
  readonly commonLabels: Readonly<Record<string, string>>;
}

export function createContext(values: Values, helm: boolean, namespace: string, appVersion: string): PandoContext {
  const b = new Binding(values, helm);
  const selectorLabels = { ...SELECTOR_LABELS };
  const commonLabels = b.spliceMap('$.Values.commonLabels', values.commonLabels);
  return {
    b,
    values,
    namespace: b.str('$.Release.Namespace', namespace),
    appVersion: b.str('$.Chart.AppVersion', appVersion),
    selectorLabels,
    labels: { ...commonLabels, ...selectorLabels, 'app.kubernetes.io/part-of': 'pandocore', 'app.kubernetes.io/version': b.str('$.Chart.AppVersion', appVersion) },
    commonLabels,
  };
}

/** `namespace/name` service DNS names the serving certificate covers. */
export function serviceHosts(ctx: PandoContext): string[] {
  return [`${NAMES.app}.${ctx.namespace}.svc`, `${NAMES.app}.${ctx.namespace}.svc.cluster.local`];
}

/**
 * The chart's labels plus a map value of extra labels (a Prometheus selects monitors and rules by
 * label); the chart's own win on a clash.
 */
export function labelsWithExtra(ctx: PandoContext, valuePath: string, extra: Record<string, string>): Record<string, string> {
  const fixed = { ...ctx.labels };
  // A spliced map in the labels (commonLabels) is merged in as a map, after the chart's own labels
  // (sprig's merge keeps the first map's keys on a clash).
  const spliced: string[] = [];
  const pairs: string[] = [];
  for (const [k, v] of Object.entries(fixed)) {
    const token = ctx.b.whole(k);
    if (token?.kind === 'splice') spliced.push(token.expr);
    else pairs.push(`${JSON.stringify(k)} ${ctx.b.whole(v)?.expr ?? JSON.stringify(v)}`);
  }
  return ctx.b.block(`merge (dict ${pairs.join(' ')}) ${[...spliced, valuePath].join(' ')}`, { ...extra, ...fixed });
}
