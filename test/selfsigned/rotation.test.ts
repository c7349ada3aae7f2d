// The self-signed lifecycle with an injected clock: generation, leaf rotation, two-phase CA rotation
// and its overlap, simulated over many rotations with two replicas and an API server that sees each
// new caBundle only after a delay. Every simulated admission call must find its certificate trusted.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { bundleTrusts, decodeSecret, encodeSecret } from '../../app/selfsigned/manager.ts';
import { issuedBy, nextState, type RotationPolicy, type TlsState } from '../../app/selfsigned/rotation.ts';
import { expiryWarning, parseServingPair } from '../../app/tls.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = new Date('2026-01-01T00:00:00Z');

const policy: RotationPolicy = {
  hosts: ['pando-webhook.pando-system.svc', 'pando-webhook.pando-system.svc.cluster.local'],
  caValidityDays: 30,
  leafValidityDays: 3,
  rotateAt: 0.67,
  propagationMs: 2 * HOUR,
  retireMs: 2 * HOUR + 2 * HOUR,
};

describe('self-signed rotation', () => {
  it('creates an ECDSA P-256 CA and a leaf for the service names, signed by it', async () => {
    const { state, events } = await nextState(undefined, START, policy);
    assert.deepEqual(events, ['created', 'leaf-issued']);
    const ca = new X509Certificate(state.caCert);
    const leaf = new X509Certificate(state.leafCert);
    assert.equal(ca.ca, true);
    assert.equal(leaf.ca, false);
    assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(issuedBy(state.leafCert, state.caCert));
    assert.equal(leaf.subjectAltName, 'DNS:pando-webhook.pando-system.svc, DNS:pando-webhook.pando-system.svc.cluster.local');
    assert.equal(Math.round((Date.parse(leaf.validTo) - START.getTime()) / DAY), 3);
    assert.deepEqual(state.bundle, [state.caCert]);
    assert.doesNotThrow(() => parseServingPair(state.leafCert, state.leafKey));
  });

  it('changes nothing before a rotation is due', async () => {
    const { state } = await nextState(undefined, START, policy);
    const later = await nextState(state, new Date(START.getTime() + DAY), policy);
    assert.deepEqual(later.events, []);
    assert.equal(later.state, state);
  });

  it('rotates the leaf at two thirds of its lifetime, under the same CA', async () => {
    const { state } = await nextState(undefined, START, policy);
    const due = await nextState(state, new Date(START.getTime() + 2.1 * DAY), policy);
    assert.deepEqual(due.events, ['leaf-issued']);
    assert.equal(due.state.caCert, state.caCert);
    assert.notEqual(due.state.leafCert, state.leafCert);
    assert.deepEqual(due.state.bundle, [state.caCert]);
  });

  it('rotates the CA in two phases: trust first, then serve, then retire', async () => {
    const { state: s0 } = await nextState(undefined, START, policy);
    const a = await nextState(s0, new Date(START.getTime() + 21 * DAY), policy);
    assert.ok(a.events.includes('ca-rotation-started'));
    assert.equal(a.state.caCert, s0.caCert, 'phase A: the old CA still signs');
    assert.deepEqual(a.state.bundle, [s0.caCert, a.state.nextCaCert], 'phase A: both CAs trusted');
    assert.ok(issuedBy(a.state.leafCert, s0.caCert));

    const early = await nextState(a.state, new Date(a.state.phaseSince.getTime() + HOUR), policy);
    assert.ok(!early.events.includes('ca-promoted'), 'not promoted before the bundle propagated');

    const b = await nextState(a.state, new Date(a.state.phaseSince.getTime() + policy.propagationMs), policy);
    assert.deepEqual(b.events, ['ca-promoted', 'leaf-issued']);
    assert.equal(b.state.caCert, a.state.nextCaCert);
    assert.ok(issuedBy(b.state.leafCert, b.state.caCert));
    assert.deepEqual(b.state.bundle, [b.state.caCert, s0.caCert], 'phase B: the retired CA stays trusted');

    const c = await nextState(b.state, new Date(b.state.phaseSince.getTime() + policy.retireMs), policy);
    assert.deepEqual(c.events, ['ca-retired']);
    assert.deepEqual(c.state.bundle, [b.state.caCert]);
  });

  it('starts a CA rotation when an operator forces one', async () => {
    const { state } = await nextState(undefined, START, policy);
    const forced = await nextState(state, new Date(START.getTime() + HOUR), { ...policy, forceRotation: true });
    assert.deepEqual(forced.events, ['ca-rotation-started']);
  });

  it('re-issues the leaf when the service names change', async () => {
    const { state } = await nextState(undefined, START, policy);
    const moved = await nextState(state, new Date(START.getTime() + HOUR), { ...policy, hosts: [...policy.hosts, '127.0.0.1'] });
    assert.deepEqual(moved.events, ['leaf-issued']);
    assert.match(new X509Certificate(moved.state.leafCert).subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  });

  it('round-trips through the Secret', async () => {
    const { state } = await nextState(undefined, START, policy);
    const a = await nextState(state, new Date(START.getTime() + 21 * DAY), policy);
    const secret = encodeSecret(a.state, 'pando-webhook-tls', 'pando-system', '42');
    assert.equal(secret.type, 'kubernetes.io/tls');
    assert.equal(secret.metadata?.resourceVersion, '42');
    assert.deepEqual(decodeSecret(secret), a.state);
    assert.equal(decodeSecret({ data: {} }), undefined, 'an incomplete Secret is not a state');
    assert.ok(bundleTrusts(a.state.bundle.join(''), a.state.leafCert));
    assert.ok(!bundleTrusts(a.state.nextCaCert!, a.state.leafCert));
  });

  it('warns from 30 days before expiry', async () => {
    const { state } = await nextState(undefined, START, { ...policy, leafValidityDays: 40, caValidityDays: 400 });
    const pair = parseServingPair(state.leafCert, state.leafKey);
    assert.equal(expiryWarning(pair, START), undefined);
    assert.match(expiryWarning(pair, new Date(START.getTime() + 15 * DAY)) ?? '', /expires in 2\d days/);
    assert.match(expiryWarning(pair, new Date(START.getTime() + 41 * DAY)) ?? '', /expired/);
  });
});

/** Two replicas, one Secret, an API server whose caBundle lags each update by `lagMs`. */
async function simulate(p: RotationPolicy, days: number, lagMs: number) {
  const interval = HOUR;
  let stored: TlsState | undefined;
  const replicas = [{ served: '', offset: 0 }, { served: '', offset: interval / 2 }];
  let apiBundle: string[] = [];
  const pending: Array<{ at: number; bundle: string[] }> = [];
  let calls = 0;
  const failures: string[] = [];
  const events: string[] = [];
  const end = START.getTime() + days * DAY;
  for (let t = START.getTime(); t < end; t += interval / 4) {
    for (const r of replicas) {
      if ((t - START.getTime() - r.offset) % interval !== 0) continue;
      const step = await nextState(stored, new Date(t), p);
      events.push(...step.events);
      if (step.events.length > 0) pending.push({ at: t + lagMs, bundle: step.state.bundle });
      stored = step.state;
      r.served = stored.leafCert;
    }
    while (pending.length > 0 && pending[0]!.at <= t) apiBundle = pending.shift()!.bundle;
    if (apiBundle.length === 0) continue; // the API server has no caBundle yet: it cannot call us
    for (const r of replicas) {
      if (!r.served) continue;
      calls++;
      if (!bundleTrusts(apiBundle.join(''), r.served)) failures.push(new Date(t).toISOString());
    }
  }
  return { calls, failures, events };
}

describe('rotation under load (simulated)', () => {
  it('no admission call fails across CA and leaf rotations', async () => {
    const { calls, failures, events } = await simulate(policy, 75, 90 * 60_000);
    const count = (e: string) => events.filter((x) => x === e).length;
    assert.ok(count('ca-promoted') >= 2, `CA rotations: ${count('ca-promoted')}`);
    assert.ok(count('leaf-issued') >= 20, `leaf issues: ${count('leaf-issued')}`);
    assert.ok(calls > 10_000);
    assert.deepEqual(failures, []);
    process.stdout.write(`# simulated 75 days: ${calls} calls, ${count('ca-promoted')} CA rotations, ${count('leaf-issued')} leaves, ${failures.length} failures\n`);
  });

  it('would fail without the overlap (control: no propagation wait)', async () => {
    const { failures } = await simulate({ ...policy, propagationMs: 0, retireMs: 0 }, 45, 90 * 60_000);
    assert.ok(failures.length > 0, 'the simulation detects a missing overlap');
  });
});
