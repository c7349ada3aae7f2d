// The self-signed certificate lifecycle as a function of (stored state, now, policy): no I/O, the
// clock is a parameter. The manager stores the state in one Secret and serves its leaf.
//
// CA rotation has two phases so that no admission call ever meets a certificate the API server does
// not trust: phase A adds the next CA to the bundle (the caBundle the API server uses) while the old
// leaf is still served; once the bundle has had time to propagate, phase B makes the next CA active
// and issues a leaf from it, keeping the old CA in the bundle until every replica serves the new
// leaf. A leaf rotation under the same CA needs no overlap at all.
//
// Nothing here trusts a clock started by a write alone: the propagation wait counts from the moment a
// replica read back a caBundle holding the whole bundle (`bundleSeenSince`), a replica serves a leaf
// only while the caBundle it read back trusts it (`chooseLeaf`), and a CA leaves the bundle only when
// no replica's fresh record (`serving`) says it serves a leaf from that CA. A lost or corrupt Secret
// is replaced by a new CA next to every CA the webhook configuration still trusts (`recoveredState`).
//
// Nor is a time written by another replica ever compared with this replica's clock (issue 23 item 11:
// with one replica 240 s behind, its fresh records looked stale to the others, which retired the CA
// it still served). Each replica ages a stored time from the moment it first saw that time, by its
// own clock (`withSeenAt`, kept in `seenAt`, never stored); skew between replicas then only delays a
// step by up to one check interval, never hastens one.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createCa, issueServingCert } from '../certs.ts';

export interface TlsState {
  caCert: string;
  caKey: string;
  nextCaCert?: string;
  nextCaKey?: string;
  /** Every CA certificate the API server must trust now, PEM, the active one first. */
  bundle: string[];
  leafCert: string;
  leafKey: string;
  /** When the current CA phase began (created, rotation started, promoted). */
  phaseSince: Date;
  /** When a replica first read back a caBundle that holds every CA of `bundle`; unset after a change. */
  bundleSeenSince?: Date;
  /** What each replica serves: the SHA-256 fingerprint of its leaf's CA, and when it said so. */
  serving?: Record<string, ServingRecord>;
  /** When this replica first saw each stored time, by its own clock; not stored (`withSeenAt`). */
  seenAt?: SeenAt;
}

export interface SeenAt {
  phaseSince?: Date;
  bundleSeenSince?: Date;
  /** By replica name, as `serving`. */
  serving?: Record<string, Date>;
}

/**
 * What one replica remembers between passes: for each stored time (by key), the value it saw and
 * when it first saw it, by its own clock.
 */
export type FirstSeenMemory = Map<string, { value: string; at: Date }>;

/**
 * The stored state with `seenAt` filled from `memory` (a time not seen before is seen `now`): every
 * age below is measured from there, by the clock that measures `now`.
 */
export function withSeenAt(state: TlsState, memory: FirstSeenMemory, now: Date): TlsState {
  const present = new Set<string>();
  const seen = (key: string, value: string): Date => {
    present.add(key);
    const known = memory.get(key);
    if (known && known.value === value) return known.at;
    memory.set(key, { value, at: now });
    return now;
  };
  const seenAt: SeenAt = { phaseSince: seen('phase-since', state.phaseSince.toISOString()) };
  if (state.bundleSeenSince) seenAt.bundleSeenSince = seen('bundle-seen-since', state.bundleSeenSince.toISOString());
  if (state.serving) {
    seenAt.serving = Object.fromEntries(Object.entries(state.serving).map(([name, r]) => [name, seen(`serving/${name}`, `${r.ca} ${r.at.toISOString()}`)]));
  }
  for (const key of memory.keys()) if (!present.has(key)) memory.delete(key);
  return { ...state, seenAt };
}

/**
 * After this replica stored `state`, written at `now` by its own clock: the times it wrote itself
 * are seen from then (exactly, not from its next read).
 */
export function rememberWritten(state: TlsState, memory: FirstSeenMemory, now: Date): void {
  const mine = (key: string, value: string, time: Date) => {
    if (time.getTime() === now.getTime()) memory.set(key, { value, at: now });
  };
  mine('phase-since', state.phaseSince.toISOString(), state.phaseSince);
  if (state.bundleSeenSince) mine('bundle-seen-since', state.bundleSeenSince.toISOString(), state.bundleSeenSince);
  for (const [name, r] of Object.entries(state.serving ?? {})) mine(`serving/${name}`, `${r.ca} ${r.at.toISOString()}`, r.at);
}

/** When the current phase began, by this replica's clock. */
function phaseStart(state: TlsState): Date {
  return state.seenAt?.phaseSince ?? state.phaseSince;
}

/** When a replica first read back the whole bundle, by this replica's clock. */
function bundleSeenAt(state: TlsState): Date | undefined {
  return state.bundleSeenSince && (state.seenAt?.bundleSeenSince ?? state.bundleSeenSince);
}

/** When a replica's serving record was written, by this replica's clock. */
export function recordAt(state: TlsState, name: string, record: ServingRecord): Date {
  return state.seenAt?.serving?.[name] ?? record.at;
}

/** `seenAt` without the entries whose stored times were just set by this replica (its own clock). */
function dropSeen(state: TlsState, which: { phaseSince?: boolean; bundleSeenSince?: boolean; serving?: string }): SeenAt | undefined {
  if (!state.seenAt) return undefined;
  const next: SeenAt = { ...state.seenAt };
  if (which.phaseSince) delete next.phaseSince;
  if (which.bundleSeenSince) delete next.bundleSeenSince;
  if (which.serving && next.serving) {
    const { [which.serving]: _, ...rest } = next.serving;
    next.serving = rest;
  }
  return next;
}

export interface ServingRecord {
  ca: string;
  at: Date;
}

export interface RotationPolicy {
  /** DNS names and IPs of the serving certificate. */
  hosts: string[];
  caValidityDays: number;
  leafValidityDays: number;
  /** Rotate a certificate once this share of its lifetime has passed (0 < x < 1). */
  rotateAt: number;
  /** How long a new bundle is given to reach the API server before a leaf depends on it. */
  propagationMs: number;
  /** How long a retired CA stays in the bundle after promotion, at least. */
  retireMs: number;
  /** A replica's serving record older than this no longer counts (the replica is gone or unready). */
  servingTtlMs: number;
  /** Start a CA rotation now (an operator asked for one). */
  forceRotation?: boolean;
}

export type RotationEvent = 'created' | 'ca-rotation-started' | 'ca-promoted' | 'ca-retired' | 'leaf-issued' | 'bundle-repaired';

export interface Rotation {
  state: TlsState;
  events: RotationEvent[];
}

function lifetimeShare(pem: string, now: Date): number {
  const cert = new X509Certificate(pem);
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  return (now.getTime() - from) / (to - from);
}

function sameHosts(leafPem: string, hosts: string[]): boolean {
  const san = new X509Certificate(leafPem).subjectAltName ?? '';
  const names = san.split(', ').map((entry) => entry.replace(/^(DNS|IP Address):/, ''));
  return names.length === hosts.length && hosts.every((h) => names.includes(h));
}

export function issuedBy(leafPem: string, caPem: string): boolean {
  const leaf = new X509Certificate(leafPem);
  const ca = new X509Certificate(caPem);
  return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
}

function leafNeedsIssue(state: TlsState, now: Date, policy: RotationPolicy): boolean {
  try {
    return (
      !issuedBy(state.leafCert, state.caCert) ||
      lifetimeShare(state.leafCert, now) >= policy.rotateAt ||
      !sameHosts(state.leafCert, policy.hosts)
    );
  } catch {
    return true; // unreadable: issue a new one
  }
}

function samePemList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((pem, i) => pem === b[i]);
}

export function caFingerprint(caPem: string): string {
  return new X509Certificate(caPem).fingerprint256;
}

/** True when a CA's certificate and key are readable, belong together and the CA is still valid. */
export function usableCa(certPem: string | undefined, keyPem: string | undefined, now: Date): boolean {
  if (!certPem || !keyPem) return false;
  try {
    const cert = new X509Certificate(certPem);
    return cert.ca && cert.checkPrivateKey(createPrivateKey(keyPem)) && Date.parse(cert.validTo) > now.getTime();
  } catch {
    return false;
  }
}

/** The readable, unexpired CA certificates among `pems`, each once, in order. */
export function trustableCas(pems: Iterable<string>, now: Date): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const pem of pems) {
    try {
      const cert = new X509Certificate(pem);
      if (!cert.ca || Date.parse(cert.validTo) <= now.getTime() || seen.has(cert.fingerprint256)) continue;
      seen.add(cert.fingerprint256);
      out.push(pem);
    } catch {
      // unreadable: nobody can be served from it
    }
  }
  return out;
}

/** True when every caBundle read back from the webhook configuration trusts the leaf. */
export function readBackTrusts(readBack: string[][] | undefined, leafPem: string | undefined): boolean {
  if (!readBack || readBack.length === 0 || !leafPem) return false;
  return readBack.every((bundle) =>
    bundle.some((ca) => {
      try {
        return issuedBy(leafPem, ca);
      } catch {
        return false;
      }
    }),
  );
}

function propagated(state: TlsState, now: Date, policy: RotationPolicy): boolean {
  const seen = bundleSeenAt(state);
  return seen !== undefined && now.getTime() - seen.getTime() >= policy.propagationMs;
}

function servedByAnyone(caPem: string, state: TlsState, now: Date, policy: RotationPolicy): boolean {
  let fingerprint: string;
  try {
    fingerprint = caFingerprint(caPem);
  } catch {
    return false;
  }
  return Object.entries(state.serving ?? {}).some(([name, r]) => r.ca === fingerprint && now.getTime() - recordAt(state, name, r).getTime() < policy.servingTtlMs);
}

export interface Observation {
  /** The caBundle of each webhook of the configuration as read back now, PEMs; undefined: the read failed. */
  readBack: string[][] | undefined;
  /** This replica's name in `serving`, and the leaf it serves now. */
  replica: string;
  served: string | undefined;
  /** Refresh this replica's record once it is this old. */
  refreshMs: number;
}

/**
 * What one replica adds to the stored state before deciding: that the caBundle it read back holds
 * the whole bundle (the propagation clock starts then, not at the Secret write), and which CA its
 * served leaf comes from. Returns `state` itself when nothing changed.
 */
export function observe(state: TlsState, now: Date, seen: Observation): TlsState {
  let next = state;
  const holdsAll = seen.readBack !== undefined && seen.readBack.length > 0 && seen.readBack.every((b) => state.bundle.every((ca) => b.includes(ca)));
  if (state.bundleSeenSince === undefined && holdsAll) next = { ...next, bundleSeenSince: now, seenAt: dropSeen(next, { bundleSeenSince: true }) };
  const issuer = seen.served ? state.bundle.find((ca) => readBackTrusts([[ca]], seen.served)) : undefined;
  if (issuer) {
    const ca = caFingerprint(issuer);
    // Its own record: written by this clock (the same pod name), so compared with it.
    const mine = state.serving?.[seen.replica];
    if (!mine || mine.ca !== ca || now.getTime() - mine.at.getTime() >= seen.refreshMs) {
      next = { ...next, serving: { ...state.serving, [seen.replica]: { ca, at: now } }, seenAt: dropSeen(next, { serving: seen.replica }) };
    }
  }
  return next;
}

/**
 * The leaf a replica serves after a pass: the stored one once the caBundle read back trusts it and
 * switching cannot hurt (the current one is untrusted, expired or from the same CA, or the bundle
 * has had its propagation time); otherwise the one it serves now.
 */
export function chooseLeaf(stored: TlsState, served: string | undefined, readBack: string[][] | undefined, now: Date, policy: RotationPolicy): string | undefined {
  if (served === stored.leafCert || !readBackTrusts(readBack, stored.leafCert)) return served;
  if (!served || !readBackTrusts(readBack, served) || propagated(stored, now, policy)) return stored.leafCert;
  let servedExpired = true;
  let sameCa = false;
  try {
    servedExpired = lifetimeShare(served, now) >= 1;
    sameCa = issuedBy(served, stored.caCert);
  } catch {
    // unreadable: replace it
  }
  return servedExpired || sameCa ? stored.leafCert : served;
}

/**
 * A new CA for a Secret that is gone, incomplete or holds a corrupt CA, trusted next to `keep`
 * (what the webhook configuration and the Secret still trust), so no replica's leaf loses trust.
 */
export async function recoveredState(keep: string[], now: Date, policy: RotationPolicy): Promise<Rotation> {
  const created = await nextState(undefined, now, policy);
  const kept = trustableCas(keep, now).filter((ca) => ca !== created.state.caCert);
  return { state: { ...created.state, bundle: [created.state.caCert, ...kept] }, events: created.events };
}

async function leafFrom(caCert: string, caKey: string, now: Date, policy: RotationPolicy) {
  const leaf = await issueServingCert({ certPem: caCert, keyPem: caKey }, policy.hosts, now, policy.leafValidityDays);
  return { leafCert: leaf.certPem, leafKey: leaf.keyPem };
}

export async function nextState(current: TlsState | undefined, now: Date, policy: RotationPolicy): Promise<Rotation> {
  if (!current) {
    const ca = await createCa('pando-webhook CA', now, policy.caValidityDays);
    const leaf = await leafFrom(ca.certPem, ca.keyPem, now, policy);
    return {
      state: { caCert: ca.certPem, caKey: ca.keyPem, bundle: [ca.certPem], ...leaf, phaseSince: now },
      events: ['created', 'leaf-issued'],
    };
  }
  const state: TlsState = { ...current, bundle: [...current.bundle] };
  const events: RotationEvent[] = [];
  const inPhase = now.getTime() - phaseStart(state).getTime();

  if (state.nextCaCert && state.nextCaKey) {
    if (propagated(state, now, policy)) {
      const retired = state.caCert;
      state.caCert = state.nextCaCert;
      state.caKey = state.nextCaKey;
      delete state.nextCaCert;
      delete state.nextCaKey;
      state.bundle = [state.caCert, ...state.bundle.filter((ca) => ca !== state.caCert)];
      if (!state.bundle.includes(retired)) state.bundle.push(retired);
      Object.assign(state, await leafFrom(state.caCert, state.caKey, now, policy));
      state.phaseSince = now;
      events.push('ca-promoted', 'leaf-issued');
    }
  } else if (policy.forceRotation || lifetimeShare(state.caCert, now) >= policy.rotateAt) {
    const next = await createCa('pando-webhook CA', now, policy.caValidityDays);
    state.nextCaCert = next.certPem;
    state.nextCaKey = next.keyPem;
    // A CA retired earlier stays while a replica still serves from it (two rotations in a row).
    state.bundle = [state.caCert, next.certPem, ...state.bundle.filter((ca) => ca !== state.caCert)];
    state.phaseSince = now;
    events.push('ca-rotation-started');
  }
  if (inPhase >= policy.retireMs && !events.includes('ca-rotation-started') && !events.includes('ca-promoted')) {
    const kept = state.bundle.filter((ca) => ca === state.caCert || ca === state.nextCaCert || servedByAnyone(ca, state, now, policy));
    if (!samePemList(state.bundle, kept)) {
      state.bundle = kept;
      events.push('ca-retired');
    }
  }
  if (!events.includes('leaf-issued') && leafNeedsIssue(state, now, policy)) {
    Object.assign(state, await leafFrom(state.caCert, state.caKey, now, policy));
    events.push('leaf-issued');
  }
  // The active (and next) CA are always trusted, whatever the stored bundle said.
  for (const ca of [state.nextCaCert, state.caCert]) {
    if (ca && !state.bundle.includes(ca)) {
      state.bundle.unshift(ca);
      events.push('bundle-repaired');
    }
  }
  // A CA the API server has not been seen to trust restarts the propagation clock; a removal does not.
  if (state.bundle.some((ca) => !current.bundle.includes(ca))) delete state.bundleSeenSince;
  // Times this pass set are this replica's own: no first sighting stands in for them.
  const seenAt = dropSeen(state, { phaseSince: state.phaseSince !== current.phaseSince, bundleSeenSince: state.bundleSeenSince !== current.bundleSeenSince });
  if (seenAt) state.seenAt = seenAt;
  return { state: events.length > 0 ? state : current, events };
}
