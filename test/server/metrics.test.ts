// Metric label values come from fixed sets: forged reviews with made-up kinds, operations and
// namespaces must not grow the number of series (issue 19 item 5).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReadinessCache } from '../../app/kube/namespaces.ts';
import { kindLabel, operationLabel } from '../../app/server/metrics.ts';
import { labelledPod, podReview, testServer } from '../helpers/server.ts';

const FORGED = 500;

async function seriesOf(metrics: ReturnType<typeof testServer>['metrics'], name: string) {
  const metric = metrics.registry.getSingleMetric(name);
  assert.ok(metric, name);
  return (await metric.get()).values.map((v) => v.labels);
}

describe('metric labels', () => {
  it('kind and operation: the admission values, anything else is other', () => {
    assert.equal(operationLabel('CREATE'), 'CREATE');
    assert.equal(operationLabel('DELETE'), 'DELETE');
    assert.equal(operationLabel('create'), 'other');
    assert.equal(operationLabel(42), 'other');
    assert.equal(operationLabel(undefined), 'other');
    assert.equal(kindLabel('Pod'), 'Pod');
    assert.equal(kindLabel('Pod\n'), 'other');
    assert.equal(kindLabel({ toString: () => 'Pod' }), 'other');
  });

  it(`${FORGED} forged reviews with new kinds, operations and namespaces add a handful of series`, async () => {
    // "shop" exists and is half set up (ServiceAccount, no Secret); every other namespace has nothing.
    const lookups: string[] = [];
    const readiness: ReadinessCache = {
      get: async (namespace: string) => {
        lookups.push(namespace);
        return { ok: true, facts: { serviceAccount: namespace === 'shop', licenseSecret: false } };
      },
      size: () => 0,
    };
    const { app, metrics } = testServer({ PANDO_NAMESPACE_CHECK: 'true' }, { readiness });
    for (let i = 0; i < FORGED; i++) {
      const namespace = i % 5 === 0 ? 'shop' : `forged-${i}`;
      const body = podReview(labelledPod(), { namespace, kind: { group: '', version: 'v1', kind: i % 2 ? `Kind${i}` : 'Pod' }, operation: i % 3 ? `OP${i}` : 'CREATE' });
      const res = await app.inject({ method: 'POST', url: '/mutate', payload: body });
      assert.equal(res.statusCode, 200);
    }
    const requests = await seriesOf(metrics, 'pandocore_admission_requests_total');
    const notReady = await seriesOf(metrics, 'pandocore_namespace_not_ready_total');
    assert.deepEqual([...new Set(requests.map((l) => l.kind))].sort(), ['Pod', 'other']);
    assert.deepEqual([...new Set(requests.map((l) => l.operation))].sort(), ['CREATE', 'other']);
    assert.deepEqual(notReady.map((l) => l.namespace).sort(), ['other', 'shop'], 'a namespace names a series only where it is set up');
    assert.ok(requests.length <= 8, `${requests.length} request series`);
    assert.ok(lookups.length > 0, 'the namespace lookups ran');
    await app.close();
  });
});
