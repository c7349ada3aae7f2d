// The license Secret of the release namespace, from licenseKey. Sidecars read the copy in their own
// namespace (per-namespace setup); `pando setup-namespace` copies this one.
import { ApiObject, JsonPatch } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { LICENSE_SECRET_KEY, LICENSE_SECRET_NAME } from '../app/contract.ts';
import type { PandoContext } from './context.ts';

export const LICENSE_REQUIRED =
  'licenseKey is required: helm upgrade --install pando-webhook oci://REGISTRY/charts/pando-webhook -n pando-system --set licenseKey=YOUR_LICENSE_KEY';

/** The license key as a string field (required: a missing key stops the render with a clear message). */
export function licenseKey(ctx: PandoContext): string {
  if (!ctx.b.helm && ctx.values.licenseKey === '') throw new Error(LICENSE_REQUIRED);
  return ctx.b.str(`required ${JSON.stringify(LICENSE_REQUIRED)} $.Values.licenseKey`, ctx.values.licenseKey);
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
