// The license Secret of the release namespace, from licenseKey; with license.existingSecret the
// user's own Secret takes its place and the chart renders none. Sidecars read the copy in their own
// namespace (per-namespace setup); `pando setup-namespace` and namespaceSetup.auto copy from the
// Secret the webhook's env names (licenseSource).
import { ApiObject, JsonPatch } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { LICENSE_SECRET_KEY, LICENSE_SECRET_NAME } from '../app/contract.ts';
import type { PandoContext } from './context.ts';

export const LICENSE_REQUIRED =
  'licenseKey or license.existingSecret.name is required: helm upgrade --install pando-webhook oci://REGISTRY/charts/pando-webhook -n pando-system --set licenseKey=YOUR_LICENSE_KEY (or --set license.existingSecret.name=SECRET)';
export const LICENSE_BOTH = 'set licenseKey or license.existingSecret.name, not both';

/** Whether the license comes from the user's Secret (in helm mode: the template condition). */
export const EXISTING_LICENSE = 'ne $.Values.license.existingSecret.name ""';

/** Checks the two license values together; plain synth only (helm: templates/validate.yaml). */
export function checkLicense(ctx: PandoContext): void {
  const { licenseKey, license } = ctx.values;
  if (ctx.b.helm) return;
  if (licenseKey === '' && license.existingSecret.name === '') throw new Error(LICENSE_REQUIRED);
  if (licenseKey !== '' && license.existingSecret.name !== '') throw new Error(LICENSE_BOTH);
}

/** The license key as a string field (required: a missing key stops the render with a clear message). */
export function licenseKey(ctx: PandoContext): string {
  checkLicense(ctx);
  return ctx.b.str(`required ${JSON.stringify(LICENSE_REQUIRED)} $.Values.licenseKey`, ctx.values.licenseKey);
}

/** The Secret (and key) in the release namespace that holds the license: the user's, or ours. */
export function licenseSource(ctx: PandoContext): { name: string; key: string } {
  const { existingSecret } = ctx.values.license;
  const existing = existingSecret.name !== '';
  return {
    name: ctx.b.str(`default "${LICENSE_SECRET_NAME}" $.Values.license.existingSecret.name`, existing ? existingSecret.name : LICENSE_SECRET_NAME),
    key: ctx.b.str(`ternary $.Values.license.existingSecret.key "${LICENSE_SECRET_KEY}" (${EXISTING_LICENSE})`, existing ? existingSecret.key : LICENSE_SECRET_KEY),
  };
}

export interface LicenseSecretProps {
  readonly ctx: PandoContext;
  /** Namespace of the Secret. @default the release namespace */
  readonly namespace?: string;
  readonly labels?: Record<string, string>;
}

export class LicenseSecret extends Construct {
  readonly secret: kplus.Secret;

  constructor(scope: Construct, id: string, props: LicenseSecretProps) {
    super(scope, id);
    const { ctx } = props;
    this.secret = new kplus.Secret(this, 'resource', {
      metadata: { name: LICENSE_SECRET_NAME, namespace: props.namespace ?? ctx.namespace, labels: props.labels ?? { ...ctx.labels } },
      type: 'Opaque',
      stringData: { [LICENSE_SECRET_KEY]: licenseKey(ctx) },
    });
    // cdk8s-plus writes `immutable: false`; the default needs no field.
    ApiObject.of(this.secret).addJsonPatch(JsonPatch.remove('/immutable'));
  }
}
