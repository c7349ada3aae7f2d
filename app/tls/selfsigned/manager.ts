// Keeps the self-signed serving certificate (tls.certManager=false) for all replicas: one Secret in
// the webhook's namespace holds the CA, the leaf and the trusted bundle; the webhook configuration's
// caBundle is kept equal to that bundle. Two replicas starting together agree on one CA because
// the Secret is created atomically (the loser gets 409 AlreadyExists and reads the winner's) and
// replaced with its resourceVersion (a stale writer gets 409 Conflict and reads again).

import { X509Certificate, createHash } from 'node:crypto';
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
import { DOMAIN } from '../../contract.ts';
import { parseServingPair, type ServingPair } from '../serving.ts';
import {
  chooseLeaf,
  issuedBy,
  nextState,
  observe,
  readBackTrusts,
  recordAt,
  recoveredState,
  rememberWritten,
  withSeenAt,
  type FirstSeenMemory,
  trustableCas,
  usableCa,
  type Rotation,
  type RotationPolicy,
  type ServingRecord,
  type TlsState,
} from './rotation.ts';

export const ANNOTATION_PHASE_SINCE = `${DOMAIN}/tls-phase-since`;
export const ANNOTATION_BUNDLE_SEEN_SINCE = `${DOMAIN}/tls-bundle-seen-since`;
/** One per replica (a hash of its pod name): `<CA fingerprint> <time>` of the leaf it serves. */
export const ANNOTATION_SERVING_PREFIX = `${DOMAIN}/serving-`;
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
  /** Called when the Secret was lost, incomplete or held a corrupt CA and a new CA replaced it. */
  onRecovery?: (reason: SecretProblem) => void;
  /** This replica's name (the pod name), recorded with the CA it serves. */
  replica: string;
  now?: () => Date;
  /** Set on the Secret whenever it is written (the webhook's Deployment, app/kube/owner.ts). */
  ownerReferences?: V1OwnerReference[];
}

/** Why a stored Secret could not be used as it is; a fixed set (a metric label). */
export type SecretProblem = 'missing' | 'incomplete' | 'corrupt';

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
  const annotations = secret.metadata?.annotations ?? {};
  const since = annotations[ANNOTATION_PHASE_SINCE];
  if (!caCert || !caKey || !leafCert || !leafKey || !bundle || !since || Number.isNaN(Date.parse(since))) return undefined;
  const seen = annotations[ANNOTATION_BUNDLE_SEEN_SINCE];
  const serving: Record<string, ServingRecord> = {};
  for (const [key, value] of Object.entries(annotations)) {
    if (!key.startsWith(ANNOTATION_SERVING_PREFIX)) continue;
    const [ca, at] = value.split(' ');
    if (ca && at && !Number.isNaN(Date.parse(at))) serving[key.slice(ANNOTATION_SERVING_PREFIX.length)] = { ca, at: new Date(at) };
  }
  return {
    caCert,
    caKey,
    nextCaCert: get(KEYS.nextCaCert),
    nextCaKey: get(KEYS.nextCaKey),
    bundle: splitPems(bundle),
    leafCert,
    leafKey,
    phaseSince: new Date(since),
    ...(seen && !Number.isNaN(Date.parse(seen)) ? { bundleSeenSince: new Date(seen) } : {}),
    ...(Object.keys(serving).length > 0 ? { serving } : {}),
  };
}

/** The stored state, or why there is none; `salvage` is every CA the Secret still names readably. */
export function readStored(secret: V1Secret | undefined, now: Date): { state: TlsState } | { problem: SecretProblem; salvage: string[] } {
  if (!secret) return { problem: 'missing', salvage: [] };
  const state = decodeSecret(secret);
  const data = secret.data ?? {};
  const salvage = trustableCas([KEYS.caCert, KEYS.nextCaCert, KEYS.bundle].flatMap((k) => splitPems(unb64(data[k]) ?? '')), now);
  if (!state) return { problem: 'incomplete', salvage };
  const nextUsable = state.nextCaCert === undefined ? state.nextCaKey === undefined : usableCa(state.nextCaCert, state.nextCaKey, now);
  if (!usableCa(state.caCert, state.caKey, now) || !nextUsable) return { problem: 'corrupt', salvage };
  return { state };
}

/** The annotation suffix for a replica: short, and valid whatever the pod name is. */
export function replicaKey(replica: string): string {
  return createHash('sha256').update(replica).digest('hex').slice(0, 12);
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
      annotations: {
        [ANNOTATION_PHASE_SINCE]: state.phaseSince.toISOString(),
        ...(state.bundleSeenSince ? { [ANNOTATION_BUNDLE_SEEN_SINCE]: state.bundleSeenSince.toISOString() } : {}),
        ...Object.fromEntries(Object.entries(state.serving ?? {}).map(([k, r]) => [`${ANNOTATION_SERVING_PREFIX}${k}`, `${r.ca} ${r.at.toISOString()}`])),
      },
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

  const replica = replicaKey(options.replica);
  const policy: RotationPolicy = { ...options.policy };
  let lastVerified: { trusted: boolean; at: number } | undefined;
  // When this replica first saw each time stored in the Secret, by its own clock (issue 23 item 11).
  const firstSeen: FirstSeenMemory = new Map();

  async function readSecret(): Promise<V1Secret | undefined> {
    try {
      return await core.readNamespacedSecret({ name: secretName, namespace });
    } catch (err) {
      if (status(err) === 404) return undefined;
      throw err;
    }
  }

  /** The caBundle of each webhook of the configuration, as PEMs. */
  async function readBack(): Promise<string[][]> {
    const config = await admission.readMutatingWebhookConfiguration({ name: options.webhookConfigName });
    return (config.webhooks ?? []).map((w) => splitPems(unb64(w.clientConfig.caBundle) ?? ''));
  }

  /** Drops records of replicas gone for long, so the annotations do not grow with every pod ever run. */
  function pruned(state: TlsState, at: Date): TlsState {
    const serving = Object.fromEntries(Object.entries(state.serving ?? {}).filter(([name, r]) => at.getTime() - recordAt(state, name, r).getTime() < 10 * policy.servingTtlMs));
    return Object.keys(serving).length === Object.keys(state.serving ?? {}).length ? state : { ...state, serving };
  }

  /** Stores the next state; returns the state now stored (ours, or the winner's after a race). */
  async function store(seen: string[][] | undefined): Promise<TlsState> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const secret = await readSecret();
      const at = now();
      const read = readStored(secret, at);
      let step: Rotation;
      let recovered: SecretProblem | undefined;
      const forceRotation = secret?.metadata?.annotations?.[ANNOTATION_ROTATE] !== undefined;
      if ('state' in read) {
        const local = withSeenAt(read.state, firstSeen, at);
        const observed = pruned(observe(local, at, { readBack: seen, replica, served, refreshMs: options.checkIntervalMs / 2 }), at);
        step = await nextState(observed, at, { ...policy, forceRotation });
        if (step.events.length === 0 && !forceRotation && step.state === local) return local;
      } else {
        // Without knowing what the API server trusts, a new CA could replace the trust in what is
        // being served: wait for a pass that can read the webhook configuration.
        if (!seen) throw new Error(`TLS Secret ${namespace}/${secretName} is ${read.problem} and the webhook configuration is unreadable; not replacing it yet`);
        const keep = [...seen.flat(), ...read.salvage];
        if (secret || keep.length > 0) recovered = read.problem;
        step = await recoveredState(keep, at, policy);
      }
      const body = encodeSecret(step.state, secretName, namespace, secret?.metadata?.resourceVersion, options.ownerReferences);
      try {
        if (secret) await core.replaceNamespacedSecret({ name: secretName, namespace, body });
        else await core.createNamespacedSecret({ namespace, body });
      } catch (err) {
        // Another replica wrote first: read its state and decide again.
        if (status(err) === 409) continue;
        throw err;
      }
      rememberWritten(step.state, firstSeen, at);
      if (recovered) {
        logger.warn({ code: 'PANDO_TLS_SECRET_RECOVERED', secret: secretName, reason: recovered, keptCas: step.state.bundle.length - 1 }, 'TLS Secret was unusable; a new CA now stands next to the CAs still trusted');
        options.onRecovery?.(recovered);
      }
      if (step.events.length > 0) logger.info({ secret: secretName, events: step.events }, 'TLS certificates updated');
      return step.state;
    }
    throw new Error(`TLS Secret ${namespace}/${secretName} kept changing under us`);
  }

  /** Sets every webhook's caBundle to the bundle; true when it wrote. */
  async function syncCaBundle(bundlePem: string): Promise<boolean> {
    const config = await admission.readMutatingWebhookConfiguration({ name: options.webhookConfigName });
    const wanted = b64(bundlePem);
    const ops = (config.webhooks ?? []).flatMap((webhook, i) =>
      webhook.clientConfig.caBundle === wanted ? [] : [{ op: 'replace', path: `/webhooks/${i}/clientConfig/caBundle`, value: wanted }],
    );
    if (ops.length === 0) return false;
    const patch = [{ op: 'test', path: '/metadata/resourceVersion', value: config.metadata?.resourceVersion }, ...ops];
    await admission.patchMutatingWebhookConfiguration(
      { name: options.webhookConfigName, body: patch },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    logger.info({ webhookConfiguration: options.webhookConfigName, webhooks: ops.length }, 'caBundle updated');
    return true;
  }

  async function tryReadBack(): Promise<string[][] | undefined> {
    try {
      return await readBack();
    } catch (err) {
      logger.error({ webhookConfiguration: options.webhookConfigName, reason: (err as Error).message }, 'could not read the webhook configuration');
      return undefined;
    }
  }

  async function pass(): Promise<void> {
    let seen = await tryReadBack();
    const state = await store(seen);
    try {
      if (await syncCaBundle(state.bundle.join(''))) seen = await readBack();
    } catch (err) {
      logger.error({ webhookConfiguration: options.webhookConfigName, reason: (err as Error).message }, 'could not sync caBundle');
      seen = await tryReadBack();
    }
    const at = now();
    const leaf = chooseLeaf(state, served, seen, at, policy);
    if (leaf && leaf !== served) {
      options.onServe(parseServingPair(leaf, state.leafKey));
      served = leaf;
      const cert = new X509Certificate(leaf);
      logger.info({ notAfter: new Date(cert.validTo).toISOString(), fingerprint: cert.fingerprint256 }, 'serving self-signed certificate');
    } else if (leaf !== state.leafCert) {
      logger.info({ webhookConfiguration: options.webhookConfigName }, 'the stored certificate is not served yet: the caBundle read back does not trust it long enough');
    }
    // A failed read keeps the last answer for a while: one hiccup must not unready every replica.
    if (seen) lastVerified = { trusted: readBackTrusts(seen, served), at: at.getTime() };
    const inSync = lastVerified !== undefined && lastVerified.trusted && at.getTime() - lastVerified.at < policy.servingTtlMs;
    options.onBundleCheck?.(inSync);
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
