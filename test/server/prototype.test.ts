// Issue 19 item 6: Kubernetes accepts any key in free-form maps (CSI volumeAttributes, a ConfigMap's
// data, annotations' values), `__proto__` and `constructor` included. Such a pod is reviewed like
// any other, and no key of a parsed body ever reaches an object's prototype, on any path through
// the server.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyStrict, decodePatch } from '../helpers/golden.ts';
import { labelledPod, podReview, testServer } from '../helpers/server.ts';

// A map JSON.parse keeps as own keys; an unsafe copy (Object.assign, a recursive merge, a setter
// walk) would turn them into prototypes or prototype properties.
const POISON = '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"x":"1"}';
const POISON_KEY = '"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}}';

/** A JSON text with the poison map in every free-form place a pod has (raw text: object literals would set the prototype). */
function poisonedReview(pod: Record<string, unknown>, overrides: Record<string, unknown> = {}): string {
  const spec = pod.spec as Record<string, unknown>;
  const withVolume = {
    ...pod,
    metadata: { ...(pod.metadata as object), annotations: { ...(pod.metadata as { annotations?: object }).annotations, 'example.com/note': 'n' } },
    spec: {
      ...spec,
      nodeSelector: { placeholder: 'P' },
      volumes: [{ name: 'data', csi: { driver: 'example.csi.k8s.io', volumeAttributes: { placeholder: 'P' } } }],
    },
  };
  const text = JSON.stringify(podReview(withVolume, overrides));
  return text
    .replaceAll('{"placeholder":"P"}', POISON)
    .replace('"annotations":{', `"annotations":{${POISON_KEY},`)
    .replace('"apiVersion":"admission.k8s.io/v1"', `${POISON_KEY},"apiVersion":"admission.k8s.io/v1"`)
    .replace('"uid":', `${POISON_KEY},"uid":`)
    .replace('"name":"web","namespace"', `${POISON_KEY},"name":"web","namespace"`);
}

function prototypeSnapshot() {
  return [Object.prototype, Array.prototype, Function.prototype, String.prototype].map((p) => Object.getOwnPropertyNames(p).sort().join(','));
}

function assertNoPollution(before: string[]) {
  assert.deepEqual(prototypeSnapshot(), before, 'no built-in prototype gained a property');
  const probe: Record<string, unknown> = {};
  assert.equal(probe.polluted, undefined, 'a fresh object sees no polluted property');
  assert.equal(([] as unknown as Record<string, unknown>).polluted, undefined);
}

describe('POST /mutate: __proto__ and constructor keys (issue 19 item 6)', () => {
  it('a labelled pod with __proto__ and constructor keys in its maps is injected like any other', async () => {
    const before = prototypeSnapshot();
    const { app } = testServer();
    const payload = poisonedReview(labelledPod());
    const res = await app.inject({ method: 'POST', url: '/mutate', payload, headers: { 'content-type': 'application/json' } });
    assert.equal(res.statusCode, 200, res.body);
    const { response } = res.json();
    assert.equal(response.auditAnnotations.reason, 'injected');
    const object = (JSON.parse(payload) as { request: { object: Record<string, unknown> } }).request.object;
    const patched = applyStrict(object, decodePatch(response.patch)) as { metadata: { annotations: object }; spec: { volumes: Array<{ csi: { volumeAttributes: object } }>; initContainers: Array<{ name: string }> } };
    assert.equal(patched.spec.initContainers[0]!.name, 'pando-sidecar');
    // The maps keep their keys as data: the patch neither drops nor rewrites them.
    assert.deepEqual(Object.keys(patched.spec.volumes[0]!.csi.volumeAttributes), ['__proto__', 'constructor', 'x']);
    assert.ok(Object.keys(patched.metadata.annotations).includes('__proto__'));
    for (const op of decodePatch(response.patch)) assert.doesNotMatch(op.path, /__proto__|constructor/, 'the patch never touches those keys');
    assertNoPollution(before);
    await app.close();
  });

  it('no path through the server lets a parsed key reach a prototype', async () => {
    const before = prototypeSnapshot();
    const { app } = testServer();
    const injected = labelledPod({ metadata: { name: 'web', namespace: 'shop', labels: { 'pandocore.xyz/protect': 'true' }, annotations: { 'pandocore.xyz/status': 'injected', 'pandocore.xyz/version': '0.9.0' } } });
    const payloads: Array<[string, string]> = [
      ['injected', poisonedReview(labelledPod())],
      ['not-labelled', poisonedReview({ ...labelledPod(), metadata: { name: 'web', namespace: 'shop' } })],
      ['namespace-excluded', poisonedReview(labelledPod(), { namespace: 'kube-system' })],
      ['operation-not-create', poisonedReview(labelledPod(), { operation: 'UPDATE' })],
      ['not-a-pod', poisonedReview(labelledPod(), { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } })],
      ['reinjected', poisonedReview(injected)],
      ['error-invalid-object', poisonedReview({ metadata: { name: 'web', namespace: 'shop' }, spec: { containers: 'none' } })],
    ];
    for (const [reason, payload] of payloads) {
      const res = await app.inject({ method: 'POST', url: '/mutate', payload, headers: { 'content-type': 'application/json' } });
      assert.equal(res.statusCode, 200, `${reason}: ${res.body}`);
      assert.equal(res.json().response.auditAnnotations.reason, reason);
      assertNoPollution(before);
    }
    // Envelopes the server refuses: still parsed, still no pollution.
    for (const payload of [`{${POISON_KEY}}`, `{${POISON_KEY},"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{${POISON_KEY}}}`]) {
      const res = await app.inject({ method: 'POST', url: '/mutate', payload, headers: { 'content-type': 'application/json' } });
      assert.equal(res.statusCode, 400, res.body);
      assertNoPollution(before);
    }
    await app.close();
  });
});
