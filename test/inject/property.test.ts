// Property test over generated pods: the patch applies strictly, the result has exactly one
// pando-sidecar and the pod's own containers unchanged, and a second review gives no patch.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { AdmissionRequest, Container, Pod } from '../../app/admission/types.ts';
import { ANNOTATION_STATUS, LABEL_PROTECT, SIDECAR_NAME } from '../../app/contract.ts';
import { findSidecars } from '../../app/inject/decide.ts';
import { review } from '../../app/inject/review.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { applyStrict, configFor } from '../helpers/golden.ts';
import { podReview } from '../helpers/server.ts';

export const PROPERTY_RUNS = 500;

// Keys and values with the characters that JSON pointers must escape ('/' and '~').
const key = fc.stringMatching(/^[a-z~/.]([a-z0-9~/._-]{0,20})$/);
const name = fc.stringMatching(/^[a-z]([a-z0-9-]{0,10}[a-z0-9])?$/).filter((n) => n !== SIDECAR_NAME);
const containerArb = (restartPolicy?: string) =>
  fc.record(
    { name, image: fc.constantFrom('nginx:1.27', 'busybox:1.36', 'app@sha256:' + 'a'.repeat(64)), env: fc.array(fc.record({ name: fc.stringMatching(/^[A-Z_]{1,8}$/), value: fc.string() }), { maxLength: 3 }) },
    { requiredKeys: ['name', 'image'] },
  ).map((c) => (restartPolicy ? { ...c, restartPolicy } : c) as Container);

function uniqueByName(list: Container[]): Container[] {
  const seen = new Set<string>();
  return list.filter((c) => !seen.has(c.name) && seen.add(c.name));
}

const podArb = fc
  .record(
    {
      labels: fc.dictionary(key, fc.string({ maxLength: 10 }), { maxKeys: 4 }),
      annotations: fc.dictionary(key, fc.string({ maxLength: 10 }), { maxKeys: 4 }),
      containers: fc.array(containerArb(), { minLength: 1, maxLength: 4 }),
      initContainers: fc.array(fc.oneof(containerArb(), containerArb('Always')), { maxLength: 3 }),
      serviceAccountName: fc.constantFrom('default', 'payments', 'pando-sidecar', ''),
      native: fc.boolean(),
      generateName: fc.boolean(),
    },
    { requiredKeys: ['containers', 'native', 'generateName'] },
  )
  .map((p) => {
    const containers = uniqueByName([...(p.initContainers ?? []), ...p.containers]);
    const init = containers.slice(0, p.initContainers?.length ?? 0);
    const main = containers.slice(init.length);
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        ...(p.generateName ? { generateName: 'gen-' } : { name: 'pod' }),
        labels: { ...p.labels, [LABEL_PROTECT]: 'true' },
        ...(p.annotations && Object.keys(p.annotations).length > 0 ? { annotations: p.annotations } : {}),
      },
      spec: {
        containers: main.length > 0 ? main : [{ name: 'main', image: 'nginx:1.27' }],
        ...(init.length > 0 ? { initContainers: init } : {}),
        ...(p.serviceAccountName ? { serviceAccountName: p.serviceAccountName } : {}),
      },
    };
    // Annotations named like ours would make the pod look injected already; keep them out.
    for (const k of Object.keys(pod.metadata!.annotations ?? {})) if (k.startsWith('pandocore.xyz/')) delete pod.metadata!.annotations![k];
    // Reviews arrive as parsed JSON: plain objects, no null prototypes.
    return { pod: JSON.parse(JSON.stringify(pod)) as Pod, native: p.native };
  });

function request(pod: Pod): AdmissionRequest {
  return podReview(pod, { uid: 'prop' }).request as AdmissionRequest;
}

describe('injection properties', () => {
  const PROBE = JSON.stringify({ exec: { command: ['/pando-sidecar', 'probe'] }, periodSeconds: 1, failureThreshold: 30 });
  const plans = {
    native: planInjection(configFor({})),
    classic: planInjection(configFor({ PANDO_SIDECAR_NATIVE: 'false' })),
  };
  // The same with sidecar.startupProbe set: another config of the same sidecar.
  const probed = {
    native: planInjection(configFor({ PANDO_SIDECAR_STARTUP_PROBE: PROBE })),
    classic: planInjection(configFor({ PANDO_SIDECAR_NATIVE: 'false', PANDO_SIDECAR_STARTUP_PROBE: PROBE })),
  };

  it(`holds for ${PROPERTY_RUNS} generated pods`, () => {
    fc.assert(
      fc.property(podArb, fc.boolean(), ({ pod, native }, probe) => {
        const plan = (probe ? probed : plans)[native ? 'native' : 'classic'];
        const before = structuredClone(pod);
        const first = review(request(pod), plan);
        assert.equal(first.reason, 'injected', first.message);
        assert.deepEqual(pod, before, 'the review does not modify its input');
        const patched = applyStrict(pod, first.patch);
        assert.equal(findSidecars(patched).length, 1, 'exactly one pando-sidecar');
        const list = native ? patched.spec.initContainers : patched.spec.containers;
        assert.equal(list?.filter((c) => c.name === SIDECAR_NAME).length, 1, native ? 'native: in initContainers' : 'classic: in containers');
        assert.equal(patched.metadata?.annotations?.[ANNOTATION_STATUS], 'injected');
        const others = (p: Pod) => [...(p.spec.initContainers ?? []), ...p.spec.containers].filter((c) => c.name !== SIDECAR_NAME);
        assert.deepEqual(others(patched), others(pod), 'the pod\'s own containers are unchanged');
        for (const [k, v] of Object.entries(pod.metadata?.annotations ?? {})) assert.equal(patched.metadata?.annotations?.[k], v);
        const second = review(request(patched), plan);
        assert.equal(second.reason, 'already-injected');
        assert.deepEqual(second.patch, [], 'second review: empty patch');
        assert.equal(findSidecars(patched)[0]?.startupProbe !== undefined, probe, 'the sidecar has a startup probe exactly when one is configured');
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('replaces a sidecar injected with another config, never adds a second (native <-> classic)', () => {
    fc.assert(
      fc.property(podArb, ({ pod, native }) => {
        const [from, to] = native ? [plans.classic, plans.native] : [plans.native, plans.classic];
        const old = applyStrict(pod, review(request(pod), from).patch);
        const again = review(request(old), to);
        assert.equal(again.reason, 'reinjected');
        const patched = applyStrict(old, again.patch);
        assert.equal(findSidecars(patched).length, 1);
        assert.deepEqual(review(request(patched), to).patch, []);
      }),
      { numRuns: 200 },
    );
  });

  it('replaces a sidecar injected before sidecar.startupProbe was set (or after it was unset), never adds a second', () => {
    fc.assert(
      fc.property(podArb, fc.boolean(), ({ pod, native }, set) => {
        const kind = native ? 'native' : 'classic';
        const [from, to] = set ? [plans[kind], probed[kind]] : [probed[kind], plans[kind]];
        const old = applyStrict(pod, review(request(pod), from).patch);
        const again = review(request(old), to);
        assert.equal(again.reason, 'reinjected');
        const patched = applyStrict(old, again.patch);
        assert.equal(findSidecars(patched).length, 1);
        assert.equal(findSidecars(patched)[0]?.startupProbe !== undefined, set);
        assert.deepEqual(review(request(patched), to).patch, []);
      }),
      { numRuns: 200 },
    );
  });
});
