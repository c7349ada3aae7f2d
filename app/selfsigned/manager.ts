// Keeps the self-signed serving certificate (tls.certManager=false) for all replicas: one Secret in
// the webhook's namespace holds the CA, the leaf and the trusted bundle; the webhook configuration's
// caBundle is kept equal to that bundle. Two replicas starting together agree on one CA because
// the Secret is created atomically (the loser gets 409 AlreadyExists and reads the winner's) and
// replaced with its resourceVersion (a stale writer gets 409 Conflict and reads again).

import { X509Certificate } from 'node:crypto';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1OwnerReference,
  type V1Secret,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { DOMAIN } from '../contract.ts';
import { parseServingPair, type ServingPair } from '../tls.ts';
import { issuedBy, nextState, type RotationPolicy, type TlsState } from './rotation.ts';

export const ANNOTATION_PHASE_SINCE = `${DOMAIN}/tls-phase-since`;
/** Set this annotation on the Secret (any value) to start a CA rotation. */
export const ANNOTATION_ROTATE = `${DOMAIN}/rotate`;

const KEYS = {
  leafCert: 'tls.crt',
  leafKey: 'tls.key',
  bundle: 'ca.crt',
  caCert: 'pando-ca.crt',
  caKey: 'pando-ca.key',
  nextCaCert: 'pando-next-ca.crt',
  nextCaKey: 'pando-next-ca.key',
} as const;

export interface SelfSignedOptions {
  namespace: string;
  secretName: string;
  webhookConfigName: string;
  policy: Omit<RotationPolicy, 'forceRotation'>;
  checkIntervalMs: number;
  logger: Logger;
  /** Called with the leaf this replica must serve, whenever it changes. */
  onServe: (pair: ServingPair) => void;
  /** Called after each check with whether the webhook configuration trusts the served leaf. */
  onBundleCheck?: (inSync: boolean) => void;
  now?: () => Date;
  /** Set on the Secret whenever it is written (the webhook's Deployment, app/owner.ts). */
  ownerReferences?: V1OwnerReference[];
}

function splitPems(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((p) => (p.endsWith('\n') ? p : `${p}\n`)) ?? [];
}

/** True when one of the bundle's CAs issued (and signed) the leaf. */
export function bundleTrusts(bundlePem: string, leafPem: string): boolean {
  try {
    return splitPems(bundlePem).some((ca) => issuedBy(leafPem, ca));
  } catch {
    return false;
  }
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

function unb64(value: string | undefined): string | undefined {
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
}

export function decodeSecret(secret: V1Secret): TlsState | undefined {
  const data = secret.data ?? {};
  const get = (key: string) => unb64(data[key]);
  const caCert = get(KEYS.caCert);
  const caKey = get(KEYS.caKey);
  const leafCert = get(KEYS.leafCert);
  const leafKey = get(KEYS.leafKey);
  const bundle = get(KEYS.bundle);
  const since = secret.metadata?.annotations?.[ANNOTATION_PHASE_SINCE];
  if (!caCert || !caKey || !leafCert || !leafKey || !bundle || !since || Number.isNaN(Date.parse(since))) return undefined;
  return {
    caCert,
    caKey,
    nextCaCert: get(KEYS.nextCaCert),
    nextCaKey: get(KEYS.nextCaKey),
    bundle: splitPems(bundle),
    leafCert,
    leafKey,
    phaseSince: new Date(since),
  };
}

export function encodeSecret(state: TlsState, name: string, namespace: string, resourceVersion?: string, ownerReferences?: V1OwnerReference[]): V1Secret {
  const data: Record<string, string> = {
    [KEYS.leafCert]: b64(state.leafCert),
    [KEYS.leafKey]: b64(state.leafKey),
    [KEYS.bundle]: b64(state.bundle.join('')),
    [KEYS.caCert]: b64(state.caCert),
    [KEYS.caKey]: b64(state.caKey),
  };
  if (state.nextCaCert && state.nextCaKey) {
    data[KEYS.nextCaCert] = b64(state.nextCaCert);
    data[KEYS.nextCaKey] = b64(state.nextCaKey);
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: {
      name,
      namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { 'app.kubernetes.io/managed-by': 'pando-webhook' },
      annotations: { [ANNOTATION_PHASE_SINCE]: state.phaseSince.toISOString() },
      ...(ownerReferences && ownerReferences.length > 0 ? { ownerReferences } : {}),
    },
    data,
  };
}

function status(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'number'
    ? (err as { code: number }).code
    : undefined;
}

export interface SelfSignedManager {
  /** One pass: read, rotate if due, store, sync caBundle, serve. */
  reconcile(): Promise<void>;
  start(): void;
  stop(): void;
}

export function createSelfSignedManager(kc: KubeConfig, options: SelfSignedOptions): SelfSignedManager {
  const core = kc.makeApiClient(CoreV1Api);
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const now = options.now ?? (() => new Date());
  const { namespace, secretName, logger } = options;
  let served: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  async function readSecret(): Promise<V1Secret | undefined> {
    try {
      return await core.readNamespacedSecret({ name: secretName, namespace });
    } catch (err) {
      if (status(err) === 404) return undefined;
      throw err;
    }
  }

  /** Stores the next state; returns the state now stored (ours, or the winner's after a race). */
  async function store(): Promise<TlsState> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const secret = await readSecret();
      const current = secret ? decodeSecret(secret) : undefined;
      if (secret && !current) logger.warn({ secret: secretName }, 'TLS Secret is incomplete; issuing a new CA and certificate');
      const forceRotation = secret?.metadata?.annotations?.[ANNOTATION_ROTATE] !== undefined;
      const { state, events } = await nextState(current, now(), { ...options.policy, forceRotation });
      if (events.length === 0 && !forceRotation && current) return current;
      const body = encodeSecret(state, secretName, namespace, secret?.metadata?.resourceVersion, options.ownerReferences);
      try {
        if (secret) await core.replaceNamespacedSecret({ name: secretName, namespace, body });
        else await core.createNamespacedSecret({ namespace, body });
        logger.info({ secret: secretName, events }, 'TLS certificates updated');
        return state;
      } catch (err) {
        // Another replica wrote first: read its state and decide again.
        if (status(err) === 409) continue;
        throw err;
      }
    }
    throw new Error(`TLS Secret ${namespace}/${secretName} kept changing under us`);
  }

  async function syncCaBundle(bundlePem: string): Promise<void> {
    const config = await admission.readMutatingWebhookConfiguration({ name: options.webhookConfigName });
    const wanted = b64(bundlePem);
    const ops = (config.webhooks ?? []).flatMap((webhook, i) =>
      webhook.clientConfig.caBundle === wanted ? [] : [{ op: 'replace', path: `/webhooks/${i}/clientConfig/caBundle`, value: wanted }],
    );
    if (ops.length === 0) return;
    const patch = [{ op: 'test', path: '/metadata/resourceVersion', value: config.metadata?.resourceVersion }, ...ops];
    await admission.patchMutatingWebhookConfiguration(
      { name: options.webhookConfigName, body: patch },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    logger.info({ webhookConfiguration: options.webhookConfigName, webhooks: ops.length }, 'caBundle updated');
  }

  async function pass(): Promise<void> {
    const state = await store();
    const bundlePem = state.bundle.join('');
    let inSync = false;
    try {
      await syncCaBundle(bundlePem);
      const config = await admission.readMutatingWebhookConfiguration({ name: options.webhookConfigName });
      inSync = (config.webhooks ?? []).length > 0 &&
        (config.webhooks ?? []).every((w) => bundleTrusts(unb64(w.clientConfig.caBundle) ?? '', state.leafCert));
    } catch (err) {
      logger.error({ webhookConfiguration: options.webhookConfigName, reason: (err as Error).message }, 'could not sync caBundle');
    }
    options.onBundleCheck?.(inSync);
    if (served !== state.leafCert) {
      options.onServe(parseServingPair(state.leafCert, state.leafKey));
      served = state.leafCert;
      const leaf = new X509Certificate(state.leafCert);
      logger.info({ notAfter: new Date(leaf.validTo).toISOString(), fingerprint: leaf.fingerprint256 }, 'serving self-signed certificate');
    }
  }

  function reconcile(): Promise<void> {
    // One pass at a time; a tick during a pass waits for it.
    running ??= pass().finally(() => {
      running = undefined;
    });
    return running;
  }

  return {
    reconcile,
    start() {
      timer = setInterval(() => {
        reconcile().catch((err: unknown) => logger.error({ reason: (err as Error).message }, 'TLS reconcile failed'));
      }, options.checkIntervalMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
