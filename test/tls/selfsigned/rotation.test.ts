// The self-signed lifecycle with an injected clock: generation, leaf rotation, two-phase CA rotation
// and its overlap, simulated over many rotations with two replicas and an API server that sees each
// new caBundle only after a delay. Every simulated admission call must find its certificate trusted.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { bundleTrusts, decodeSecret, encodeSecret, readStored } from '../../../app/tls/selfsigned/manager.ts';
import {
  caFingerprint,
  chooseLeaf,
  issuedBy,
  nextState,
  observe,
  recoveredState,
  rememberWritten,
  withSeenAt,
  type FirstSeenMemory,
  type RotationPolicy,
  type TlsState,
} from '../../../app/tls/selfsigned/rotation.ts';
import { expiryWarning, parseServingPair } from '../../../app/tls/serving.ts';

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
  servingTtlMs: 3 * HOUR,
};

/** The state as a replica stores it after reading back a caBundle that holds the whole bundle. */
function seenAt(state: TlsState, at: Date): TlsState {
  return observe(state, at, { readBack: [state.bundle], replica: 'r', served: undefined, refreshMs: HOUR });
}

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

    const never = await nextState(a.state, new Date(a.state.phaseSince.getTime() + 10 * policy.propagationMs), policy);
    assert.ok(!never.events.includes('ca-promoted'), 'never promoted while no replica read back a caBundle with the next CA');

    const seen = seenAt(a.state, new Date(a.state.phaseSince.getTime() + HOUR));
    const early = await nextState(seen, new Date(a.state.phaseSince.getTime() + 2 * HOUR), policy);
    assert.ok(!early.events.includes('ca-promoted'), 'not promoted before the bundle propagated');

    const b = await nextState(seen, new Date(a.state.phaseSince.getTime() + HOUR + policy.propagationMs), policy);
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

interface Chaos {
  /** How long the API server's webhook client takes to use a caBundle after it was written. */
  lagMs: number;
  /** The caBundle patch fails while this holds. */
  patchFails?: (t: number) => boolean;
  /** The Secret is deleted at these times (ms after START). */
  deleteSecretAt?: number[];
  /** An operator forces a CA rotation at these times (ms after START). */
  forceAt?: number[];
  /** Controls: the defects of before, to show the simulation detects them. */
  serveStored?: boolean;
  recoverWithoutTrust?: boolean;
  /** Replicas, checking in turn (default 2). */
  replicas?: number;
  /** Each replica's clock: this much ahead (negative: behind) of the true time, by replica index. */
  clockSkewMs?: number[];
}

/**
 * Two replicas passing as the manager does (read back the caBundle, observe, decide, store, patch,
 * choose the leaf), one Secret, a webhook configuration, and an API server that uses each caBundle
 * only `lagMs` after it was written. Every simulated admission call must find its leaf trusted.
 */
async function simulate(p: RotationPolicy, days: number, chaos: Chaos) {
  const interval = HOUR;
  let stored: TlsState | undefined;
  let config: string[] = [];
  let apiBundle: string[] = [];
  const pending: Array<{ at: number; bundle: string[] }> = [];
  const n = chaos.replicas ?? 2;
  const replicas = Array.from({ length: n }, (_, i) => ({ name: `r${i}`, served: undefined as string | undefined, offset: (i * interval) / n, skew: chaos.clockSkewMs?.[i] ?? 0, memory: new Map() as FirstSeenMemory }));
  let calls = 0;
  const failures: string[] = [];
  const events: string[] = [];
  const end = START.getTime() + days * DAY;
  const at = (list: number[] | undefined, t: number) => (list ?? []).some((ms) => START.getTime() + ms === t);
  for (let t = START.getTime(); t < end; t += interval / 12) {
    if (at(chaos.deleteSecretAt, t)) stored = undefined;
    for (const r of replicas) {
      if ((t - START.getTime() - r.offset) % interval !== 0) continue;
      // The replica's own clock: every time it writes or compares is by this one.
      const now = new Date(t + r.skew);
      let step;
      if (!stored) {
        step = chaos.recoverWithoutTrust || config.length === 0 ? await nextState(undefined, now, p) : await recoveredState(config, now, p);
      } else {
        // As the manager: stored times aged from when this replica first saw them, by its clock.
        const local = withSeenAt(stored, r.memory, now);
        const observed = observe(local, now, { readBack: [config], replica: r.name, served: r.served, refreshMs: interval / 2 });
        step = await nextState(observed, now, { ...p, forceRotation: at(chaos.forceAt, t) });
      }
      events.push(...step.events);
      rememberWritten(step.state, r.memory, now);
      const { seenAt: _local, ...written } = step.state;
      stored = written;
      if (!chaos.patchFails?.(t) && stored.bundle.join('') !== config.join('')) {
        config = [...stored.bundle];
        pending.push({ at: t + chaos.lagMs, bundle: config });
      }
      r.served = chaos.serveStored ? stored.leafCert : chooseLeaf(step.state, r.served, [config], now, p);
    }
    while (pending.length > 0 && pending[0]!.at <= t) apiBundle = pending.shift()!.bundle;
    if (apiBundle.length === 0) continue; // the API server has no caBundle yet: it cannot call us
    for (const r of replicas) {
      if (!r.served) continue;
      calls++;
      if (!bundleTrusts(apiBundle.join(''), r.served)) failures.push(`${r.name} ${new Date(t).toISOString()}`);
    }
  }
  const count = (e: string) => events.filter((x) => x === e).length;
  return { calls, failures, count, stored: stored! };
}

const LAG = 90 * 60_000;

describe('rotation under load (simulated)', () => {
  it('no admission call fails across CA and leaf rotations', async () => {
    const { calls, failures, count } = await simulate(policy, 75, { lagMs: LAG });
    assert.ok(count('ca-promoted') >= 2, `CA rotations: ${count('ca-promoted')}`);
    assert.ok(count('leaf-issued') >= 20, `leaf issues: ${count('leaf-issued')}`);
    assert.ok(calls > 10_000);
    assert.deepEqual(failures, []);
    process.stdout.write(`# simulated 75 days: ${calls} calls, ${count('ca-promoted')} CA rotations, ${count('leaf-issued')} leaves, ${failures.length} failures\n`);
  });

  it('would fail without the overlap (control: no propagation wait)', async () => {
    const { failures } = await simulate({ ...policy, propagationMs: 0, retireMs: 0 }, 45, { lagMs: LAG });
    assert.ok(failures.length > 0, 'the simulation detects a missing overlap');
  });

  it('a caBundle patch that fails for days holds the promotion back; nothing untrusted is served', async () => {
    // The CA rotation starts at day 20.1 (67 % of 30 days); the patch fails from day 19 to day 24.
    const patchFails = (t: number) => t >= START.getTime() + 19 * DAY && t < START.getTime() + 24 * DAY;
    const { failures, count } = await simulate(policy, 30, { lagMs: LAG, patchFails });
    assert.deepEqual(failures, []);
    assert.equal(count('ca-promoted'), 1, 'promoted once the patch went through');
  });

  it('a deleted Secret: the new CA is trusted next to the old one, each replica switches only once it is propagated', async () => {
    const chaos = { lagMs: LAG, deleteSecretAt: [5 * DAY + HOUR / 4, 12 * DAY + HOUR / 4] };
    const { failures, calls, stored } = await simulate(policy, 20, chaos);
    assert.ok(calls > 1000);
    assert.deepEqual(failures, []);
    assert.equal(stored.bundle.length, 1, 'the lost CA was retired once nobody served it');
  });

  it('detects the defects of before (controls: serve what is stored; recover without the old trust)', async () => {
    const deleteSecretAt = [5 * DAY + HOUR / 4];
    assert.ok((await simulate(policy, 8, { lagMs: LAG, deleteSecretAt, serveStored: true })).failures.length > 0);
    assert.ok((await simulate(policy, 8, { lagMs: LAG, deleteSecretAt, recoverWithoutTrust: true })).failures.length > 0);
  });

  it('replicas whose clocks disagree: a CA is never retired while the replica behind still serves from it (issue 23 item 11)', async () => {
    // One replica 4 h behind the other with hourly checks and a 3 h serving TTL: the simulation's
    // scale of 240 s behind with the chart's 60 s checks (TTL 180 s), as the review saw it. Its
    // records carry its clock; aged by the other's clock they look stale from the moment they are
    // written. Forced rotations every 20 minutes, as above, and the one ahead 4 h, too.
    const forceAt = Array.from({ length: 36 }, (_, i) => 2 * DAY + i * 20 * 60_000);
    const behind = await simulate(policy, 8, { lagMs: 10 * 60_000, clockSkewMs: [0, -4 * HOUR], forceAt });
    const ahead = await simulate(policy, 8, { lagMs: 10 * 60_000, clockSkewMs: [0, 4 * HOUR], forceAt });
    process.stdout.write(`# clock skew: ${behind.failures.length} failed calls of ${behind.calls} (one replica 4 h behind), ${ahead.failures.length} of ${ahead.calls} (4 h ahead); CA rotations ${behind.count('ca-promoted')}, ${ahead.count('ca-promoted')}\n`);
    assert.deepEqual(behind.failures, [], 'one replica behind');
    assert.deepEqual(ahead.failures, [], 'one replica ahead');
    assert.ok(behind.count('ca-promoted') >= 2 && ahead.count('ca-promoted') >= 2, 'rotations still happen');
  });

  it('forced rotations in a row never drop a CA a replica still serves', async () => {
    // Three replicas, a caBundle used 10 minutes after its write, and an operator who forces a
    // rotation every 20 minutes for 12 hours: a new rotation starts while one replica still serves
    // the CA the last promotion retired.
    const forceAt = Array.from({ length: 36 }, (_, i) => 2 * DAY + i * 20 * 60_000);
    const { failures, count } = await simulate(policy, 4, { lagMs: 10 * 60_000, forceAt, replicas: 3 });
    assert.deepEqual(failures, []);
    assert.ok(count('ca-promoted') >= 3, `CA rotations: ${count('ca-promoted')}`);
  });
});

describe('serving decisions and recovery', () => {
  it('keeps serving the current leaf while the caBundle read back does not trust the stored one', async () => {
    const { state: s0 } = await nextState(undefined, START, policy);
    const other = await nextState(undefined, START, policy);
    assert.equal(chooseLeaf(other.state, s0.leafCert, [[s0.caCert]], START, policy), s0.leafCert, 'untrusted: not switched');
    assert.equal(chooseLeaf(other.state, undefined, [[s0.caCert]], START, policy), undefined, 'nothing trusted: nothing served');
    assert.equal(chooseLeaf(other.state, s0.leafCert, undefined, START, policy), s0.leafCert, 'unreadable configuration: not switched');
    assert.equal(chooseLeaf(other.state, undefined, [[other.state.caCert]], START, policy), other.state.leafCert);
  });

  it('a lost or corrupt Secret keeps the trust it can still find', async () => {
    const { state: s0 } = await nextState(undefined, START, policy);
    const secret = encodeSecret(s0, 'pando-webhook-tls', 'pando-system');
    const corrupt = { ...secret, data: { ...secret.data, 'pando-ca.crt': Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n').toString('base64') } };
    const read = readStored(corrupt, START);
    assert.ok('problem' in read && read.problem === 'corrupt');
    assert.deepEqual(read.salvage.map(caFingerprint), [caFingerprint(s0.caCert)], 'the bundle still names the old CA');
    const missingKey = { ...secret, data: { ...secret.data, 'pando-ca.key': undefined as unknown as string } };
    assert.ok('problem' in readStored(missingKey, START) && (readStored(missingKey, START) as { problem: string }).problem === 'incomplete');
    assert.deepEqual(readStored(undefined, START), { problem: 'missing', salvage: [] });
    assert.ok('state' in readStored(secret, START));

    const recovered = await recoveredState([...read.salvage, 'garbage', s0.caCert], new Date(START.getTime() + HOUR), policy);
    assert.deepEqual(recovered.state.bundle.slice(1), [s0.caCert], 'old CA kept once, unreadable dropped');
    assert.notEqual(recovered.state.caCert, s0.caCert);
    assert.ok(issuedBy(recovered.state.leafCert, recovered.state.caCert));
  });

  it('records what each replica serves in the Secret, and a retired CA waits for the last one', async () => {
    const { state: s0 } = await nextState(undefined, START, policy);
    const t1 = new Date(START.getTime() + HOUR);
    const a = seenAt((await nextState(s0, t1, { ...policy, forceRotation: true })).state, t1);
    const t2 = new Date(t1.getTime() + policy.propagationMs);
    const b = (await nextState(a, t2, policy)).state;
    // Replica r1 switched to the new leaf, r2 still serves the old one.
    const t3 = new Date(t2.getTime() + policy.retireMs);
    let s = observe(b, t3, { readBack: [b.bundle], replica: 'r1', served: b.leafCert, refreshMs: HOUR });
    s = observe(s, t3, { readBack: [b.bundle], replica: 'r2', served: s0.leafCert, refreshMs: HOUR });
    assert.deepEqual((await nextState(s, t3, policy)).events, [], 'not retired while r2 serves from it');
    const back = decodeSecret(encodeSecret(s, 'pando-webhook-tls', 'pando-system'));
    assert.deepEqual(back?.serving, s.serving, 'the records round-trip through the Secret');
    const gone = new Date(t3.getTime() + policy.servingTtlMs);
    const refreshed = observe(s, gone, { readBack: [b.bundle], replica: 'r1', served: b.leafCert, refreshMs: HOUR });
    assert.deepEqual((await nextState(refreshed, gone, policy)).events, ['ca-retired'], 'retired once r2\'s record is stale');
  });
});
