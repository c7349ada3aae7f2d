// The self-signed certificate lifecycle as a function of (stored state, now, policy): no I/O, the
// clock is a parameter. The manager stores the state in one Secret and serves its leaf.
//
// CA rotation has two phases so that no admission call ever meets a certificate the API server does
// not trust: phase A adds the next CA to the bundle (the caBundle the API server uses) while the old
// leaf is still served; once the bundle has had time to propagate, phase B makes the next CA active
// and issues a leaf from it, keeping the old CA in the bundle until every replica serves the new
// leaf. A leaf rotation under the same CA needs no overlap at all.

import { X509Certificate } from 'node:crypto';
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
  /** How long a retired CA stays in the bundle after promotion (all replicas reload by then). */
  retireMs: number;
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
  const inPhase = now.getTime() - state.phaseSince.getTime();

  if (state.nextCaCert && state.nextCaKey) {
    if (inPhase >= policy.propagationMs) {
      const retired = state.caCert;
      state.caCert = state.nextCaCert;
      state.caKey = state.nextCaKey;
      delete state.nextCaCert;
      delete state.nextCaKey;
      state.bundle = [state.caCert, retired];
      Object.assign(state, await leafFrom(state.caCert, state.caKey, now, policy));
      state.phaseSince = now;
      events.push('ca-promoted', 'leaf-issued');
    }
  } else if (policy.forceRotation || lifetimeShare(state.caCert, now) >= policy.rotateAt) {
    const next = await createCa('pando-webhook CA', now, policy.caValidityDays);
    state.nextCaCert = next.certPem;
    state.nextCaKey = next.keyPem;
    state.bundle = [state.caCert, next.certPem];
    state.phaseSince = now;
    events.push('ca-rotation-started');
  } else {
    const wanted = [state.caCert];
    if (!samePemList(state.bundle, wanted) && inPhase >= policy.retireMs) {
      state.bundle = wanted;
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
  return { state: events.length > 0 ? state : current, events };
}
