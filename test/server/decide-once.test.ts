// One decision per review (issue 26 item 2): the server asks the pure core once, and a decision that
// needs the namespace's facts comes back pending, to be finished with the lookup, not decided again.
//
// Counted through the real route: the test parses the body itself and hands the server an
// AdmissionRequest that counts how often its `resource` is read. Only decide() reads it (to tell a
// pod from a subresource), once per call; the decoder, the answer, the log line and the metrics
// never do. Before this change a labelled pod in a checked namespace was decided twice (2 reads).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fastJsonPatch from 'fast-json-patch';
import type { NamespaceLookup, ReadinessCache } from '../../app/kube/namespaces.ts';
import type { NamespaceReadiness } from '../../app/inject/decide.ts';
import { labelledPod, podReview, testServer } from '../helpers/server.ts';

interface Counted {
  decisions: number;
  lookups: string[];
}

function countingServer(lookup: ((namespace: string) => NamespaceLookup) | undefined, env: Record<string, string> = {}) {
  const counted: Counted = { decisions: 0, lookups: [] };
  const readiness: ReadinessCache | undefined = lookup && {
    get: async (namespace: string) => {
      counted.lookups.push(namespace);
      return lookup(namespace);
    },
    size: () => 0,
  };
  const { app } = testServer({ PANDO_NAMESPACE_CHECK: lookup ? 'true' : 'false', ...env }, readiness ? { readiness } : {});
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const review = JSON.parse(body as string) as { request: Record<string, unknown> };
    review.request = new Proxy(review.request, {
      get(target, key, receiver) {
        if (key === 'resource') counted.decisions++;
        return Reflect.get(target, key, receiver);
      },
    });
    done(null, review);
  });
  return { app, counted };
}

async function send(app: ReturnType<typeof countingServer>['app'], pod: unknown) {
  const res = await app.inject({ method: 'POST', url: '/mutate', headers: { 'content-type': 'application/json' }, payload: podReview(pod) });
  assert.equal(res.statusCode, 200, res.body);
  const response = res.json().response as { patch?: string; auditAnnotations: { reason: string }; warnings?: string[] };
  const patch = response.patch ? (JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as fastJsonPatch.Operation[]) : [];
  return { reason: response.auditAnnotations.reason, patch, warnings: response.warnings ?? [] };
}

const READY: NamespaceReadiness = { serviceAccount: true, licenseSecret: true };

describe('one decision per review', () => {
  it('a labelled pod in a checked, ready namespace: decided once, looked up once, injected', async () => {
    const { app, counted } = countingServer(() => ({ ok: true, facts: READY }));
    const answer = await send(app, labelledPod());
    assert.equal(answer.reason, 'injected');
    assert.ok(answer.patch.length > 0);
    assert.equal(counted.decisions, 1, 'decide() calls for one review');
    assert.deepEqual(counted.lookups, ['shop']);
    await app.close();
  });

  it('the lookup decides the outcome it was asked for: not set up, lookup failed, LimitRange too small', async () => {
    const cases: Array<[NamespaceLookup, string]> = [
      [{ ok: true, facts: { serviceAccount: true, licenseSecret: false } }, 'namespace-not-ready'],
      [{ ok: false, reason: 'timeout' }, 'namespace-check-failed'],
      [{ ok: true, facts: { ...READY, limitRanges: [{ name: 'tight', limits: [{ type: 'Container', max: { memory: '1Mi' } }] }] } }, 'limit-range'],
    ];
    for (const [lookup, reason] of cases) {
      const { app, counted } = countingServer(() => lookup);
      const answer = await send(app, labelledPod());
      assert.equal(answer.reason, reason);
      assert.deepEqual(answer.patch, []);
      assert.equal(counted.decisions, 1, `decide() calls for one review (${reason})`);
      assert.equal(counted.lookups.length, 1);
      await app.close();
    }
  });

  it('a pod that is skipped before its namespace matters costs no lookup', async () => {
    const { app, counted } = countingServer(() => ({ ok: true, facts: READY }));
    const injected = await send(app, labelledPod());
    const pod = fastJsonPatch.applyPatch(structuredClone(labelledPod()), injected.patch, true, false).newDocument;
    counted.decisions = 0;
    counted.lookups.length = 0;
    assert.equal((await send(app, pod)).reason, 'already-injected');
    assert.equal((await send(app, { ...labelledPod(), metadata: { name: 'web', namespace: 'shop' } })).reason, 'not-labelled');
    assert.equal(counted.decisions, 2, 'one decide() per review');
    assert.deepEqual(counted.lookups, []);
    await app.close();
  });

  it('without a namespace check: decided once, no lookup, injected', async () => {
    const { app, counted } = countingServer(undefined);
    assert.equal((await send(app, labelledPod())).reason, 'injected');
    assert.equal(counted.decisions, 1);
    await app.close();
  });
});
