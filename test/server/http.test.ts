// Every bad input gets a clear HTTP answer with {code, message}; the server never throws at the API
// server; metrics count what happened.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePatch } from '../helpers/golden.ts';
import { labelledPod, podReview, testServer } from '../helpers/server.ts';

describe('POST /mutate: bad input', () => {
  const cases: Array<{ name: string; payload: string; contentType?: string; status: number; code: string }> = [
    { name: 'not JSON', payload: '{"apiVersion":', status: 400, code: 'PANDO_BAD_JSON' },
    { name: 'empty body', payload: '', status: 400, code: 'PANDO_EMPTY_BODY' },
    { name: 'a JSON array', payload: '[]', status: 400, code: 'PANDO_NOT_ADMISSION_REVIEW' },
    { name: 'wrong apiVersion', payload: JSON.stringify({ ...podReview(labelledPod()), apiVersion: 'admission.k8s.io/v1beta1' }), status: 400, code: 'PANDO_NOT_ADMISSION_REVIEW' },
    { name: 'wrong kind', payload: JSON.stringify({ ...podReview(labelledPod()), kind: 'Pod' }), status: 400, code: 'PANDO_NOT_ADMISSION_REVIEW' },
    { name: 'no request', payload: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), status: 400, code: 'PANDO_NO_REQUEST' },
    { name: 'no uid', payload: JSON.stringify(podReview(labelledPod(), { uid: '' })), status: 400, code: 'PANDO_NO_UID' },
    { name: 'wrong content type', payload: JSON.stringify(podReview(labelledPod())), contentType: 'text/plain', status: 415, code: 'PANDO_UNSUPPORTED_MEDIA_TYPE' },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.status} ${c.code}`, async () => {
      const { app, metrics } = testServer();
      const res = await app.inject({ method: 'POST', url: '/mutate', payload: c.payload, headers: { 'content-type': c.contentType ?? 'application/json' } });
      assert.equal(res.statusCode, c.status);
      const body = res.json();
      assert.equal(body.code, c.code);
      assert.equal(typeof body.message, 'string');
      assert.ok(body.message.length > 0);
      const counted = (await metrics.requests.get()).values.find((v) => v.labels.reason === c.code);
      assert.equal(counted?.value, 1, 'counted as invalid');
      await app.close();
    });
  }

  it('over the body limit: 413, and the limit is named', async () => {
    const { app } = testServer({ PANDO_BODY_LIMIT_BYTES: '1024' });
    const res = await app.inject({ method: 'POST', url: '/mutate', payload: podReview(labelledPod({ metadata: { name: 'x'.repeat(2000) } })) });
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().code, 'PANDO_BODY_TOO_LARGE');
    assert.match(res.json().message, /1024 bytes/);
    await app.close();
  });

  it('unknown path and wrong method: 404 with code', async () => {
    const { app } = testServer();
    for (const [method, url] of [['GET', '/nope'], ['GET', '/mutate'], ['POST', '/validate']] as const) {
      const res = await app.inject({ method, url });
      assert.equal(res.statusCode, 404, `${method} ${url}`);
      assert.equal(res.json().code, 'PANDO_NOT_FOUND');
    }
    await app.close();
  });
});

describe('POST /mutate: answers', () => {
  it('admits a 3 MiB pod (the API server\'s own object limit) and injects it', async () => {
    const { app } = testServer();
    const big = labelledPod();
    // 3 MiB of annotations, as a large pod would carry (annotations are the usual bulk).
    big.metadata = { ...big.metadata, annotations: { 'example.com/blob': 'x'.repeat(3 * 1024 * 1024 - 4096) } } as typeof big.metadata;
    const payload = JSON.stringify(podReview(big));
    assert.ok(payload.length > 3 * 1024 * 1024 - 4096);
    const started = process.hrtime.bigint();
    const res = await app.inject({ method: 'POST', url: '/mutate', payload, headers: { 'content-type': 'application/json' } });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().response.auditAnnotations.reason, 'injected');
    assert.ok(decodePatch(res.json().response.patch).length > 0);
    process.stdout.write(`# 3 MiB review answered in ${ms.toFixed(1)} ms (server.inject, includes JSON parse)\n`);
    await app.close();
  });

  it('an internal error while building the patch: allowed, no patch, a warning, counted as error', async () => {
    const { app, metrics } = testServer();
    // containers: [null] passes the shape check but breaks the mutation: the path a bug would take.
    const res = await app.inject({ method: 'POST', url: '/mutate', payload: podReview(labelledPod({ spec: { containers: [null] } })) });
    assert.equal(res.statusCode, 200);
    const { response } = res.json();
    assert.equal(response.allowed, true);
    assert.equal(response.patch, undefined);
    assert.match(response.warnings[0], /^pandocore: sidecar not injected: /);
    assert.equal(response.auditAnnotations.reason, 'error-internal');
    const counted = (await metrics.requests.get()).values.find((v) => v.labels.outcome === 'error');
    assert.equal(counted?.value, 1);
    await app.close();
  });

  it('counts injections and durations by outcome', async () => {
    const { app, metrics } = testServer();
    await app.inject({ method: 'POST', url: '/mutate', payload: podReview(labelledPod()) });
    await app.inject({ method: 'POST', url: '/mutate', payload: podReview({ ...labelledPod(), metadata: { name: 'x' } }) });
    const requests = (await metrics.requests.get()).values.map((v) => `${v.labels.outcome}/${v.labels.reason}=${v.value}`).sort();
    assert.deepEqual(requests, ['allowed/not-labelled=1', 'patched/injected=1']);
    const injections = (await metrics.injections.get()).values;
    assert.deepEqual(injections.map((v) => [v.labels.mode, v.labels.reason, v.value]), [['monitor', 'injected', 1]]);
    const count = (await metrics.duration.get()).values.filter((v) => v.metricName === 'pandocore_admission_duration_seconds_count');
    assert.equal(count.reduce((n, v) => n + v.value, 0), 2);
    await app.close();
  });
});

describe('health', () => {
  it('/healthz is live; /readyz follows the certificate', async () => {
    let ready = false;
    const { app } = testServer({}, { isReady: () => ready });
    assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
    const notReady = await app.inject({ url: '/readyz' });
    assert.equal(notReady.statusCode, 503);
    assert.match(notReady.json().status, /certificate/);
    ready = true;
    assert.equal((await app.inject({ url: '/readyz' })).statusCode, 200);
    await app.close();
  });
});
