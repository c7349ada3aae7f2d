// Issue 19 item 9: the patch follows the change, not the pod. Putting the sidecar first in
// initContainers must not rewrite every init container behind it (100 init containers made a
// 3.64 MB patch).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AdmissionRequest, Container, Pod } from '../../app/admission/types.ts';
import { SIDECAR_NAME } from '../../app/contract.ts';
import { review } from '../../app/inject/review.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { applyStrict, configFor } from '../helpers/golden.ts';
import { labelledPod, podReview } from '../helpers/server.ts';

function initContainer(i: number): Container {
  return {
    name: `step-${i}`,
    image: 'shop/migrate:4.2',
    command: ['/migrate', '--step', String(i)],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
    resources: {},
  } as Container;
}

function podWith(initCount: number, extra: Record<string, unknown> = {}): Pod {
  const pod = labelledPod() as unknown as Pod;
  return JSON.parse(JSON.stringify({ ...pod, ...extra, spec: { ...pod.spec, initContainers: Array.from({ length: initCount }, (_, i) => initContainer(i)) } })) as Pod;
}

function request(pod: Pod): AdmissionRequest {
  return podReview(pod, { uid: 'size' }).request as AdmissionRequest;
}

describe('patch size (issue 19 item 9)', () => {
  for (const native of [true, false]) {
    it(`${native ? 'native' : 'classic'} sidecar: the same patch for 1, 10 and 100 init containers`, () => {
      const plan = planInjection(configFor({ PANDO_SIDECAR_NATIVE: String(native) }));
      const sizes = [1, 10, 100].map((n) => {
        const pod = podWith(n);
        const outcome = review(request(pod), plan);
        assert.equal(outcome.reason, 'injected');
        const patched = applyStrict(pod, outcome.patch);
        const list = native ? patched.spec.initContainers! : patched.spec.containers;
        assert.equal(list.filter((c) => c.name === SIDECAR_NAME).length, 1);
        assert.deepEqual(patched.spec.initContainers!.filter((c) => c.name !== SIDECAR_NAME), pod.spec.initContainers, 'init containers kept, in order');
        for (const op of outcome.patch) assert.doesNotMatch(op.path, /^\/spec\/initContainers\/[1-9]/, `no op behind the sidecar: ${op.op} ${op.path}`);
        return JSON.stringify(outcome.patch).length;
      });
      assert.deepEqual(sizes, [sizes[0], sizes[0], sizes[0]], `patch bytes for 1, 10, 100 init containers: ${sizes.join(', ')}`);
      assert.ok(sizes[0]! < 2048, `patch is about the size of the sidecar: ${sizes[0]} bytes`);
    });
  }

  it('replacing an old sidecar among 100 init containers touches only the sidecar', () => {
    const plan = planInjection(configFor({}));
    const old = planInjection(configFor({ PANDO_SIDECAR_IMAGE: 'registry.pandocore.xyz/pandocore/sidecar:0.9.0' }));
    const injected = applyStrict(podWith(100), review(request(podWith(100)), old).patch);
    const outcome = review(request(injected), plan);
    assert.equal(outcome.reason, 'reinjected');
    const patched = applyStrict(injected, outcome.patch);
    assert.equal(patched.spec.initContainers![0]!.image, 'registry.pandocore.xyz/pandocore/sidecar:1.0.0');
    assert.equal(patched.spec.initContainers!.length, 101);
    assert.ok(JSON.stringify(outcome.patch).length < 1024, `reinjection patch: ${JSON.stringify(outcome.patch).length} bytes`);
  });
});
