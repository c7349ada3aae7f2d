// Every golden case through the real server (server.inject), compared with its expectation files,
// validated against the Kubernetes Pod schema, and reviewed again after patching: empty patch.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, after } from 'node:test';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { Registry } from 'prom-client';
import type { AdmissionReview } from '../../app/admission/types.ts';
import { createMetrics } from '../../app/server/metrics.ts';
import { createReadinessCache } from '../../app/kube/namespaces.ts';
import { buildServer } from '../../app/server/server.ts';
import {
  EXPECTATION_FILES,
  INPUT_FILES,
  UPDATE_GOLDEN,
  applyStrict,
  caseNames,
  configFor,
  decodePatch,
  loadCase,
  readJson,
  writeJson,
  type GoldenCase,
} from '../helpers/golden.ts';

// What each case is about: the reason a user would see. A case folder missing here fails the suite.
const EXPECTED_REASON: Record<string, string> = {
  'minimal-pod': 'injected',
  'init-containers': 'injected',
  'many-init-containers': 'injected',
  'own-native-sidecar': 'injected',
  'already-injected': 'already-injected',
  'injected-older-version': 'reinjected',
  'hand-added-sidecar': 'unmanaged-sidecar',
  'custom-service-account': 'injected',
  'mode-enforce': 'injected',
  'mode-invalid': 'injected',
  'excluded-namespace': 'namespace-excluded',
  'own-namespace': 'own-namespace',
  unlabelled: 'not-labelled',
  'label-false': 'not-labelled',
  'label-not-true': 'not-labelled',
  update: 'operation-not-create',
  delete: 'operation-not-create',
  deployment: 'not-a-pod',
  'dry-run': 'injected',
  'generate-name-only': 'injected',
  'classic-sidecar': 'injected',
  'existing-annotations': 'injected',
  'namespace-not-ready': 'namespace-not-ready',
  'namespace-no-sa-custom-account': 'injected',
  'pod-resources-fit': 'injected',
  'pod-resources-too-small': 'pod-resources-too-small',
  'pod-resources-grow': 'injected',
  'pod-resources-init-peak': 'pod-resources-too-small',
  'windows-os-name': 'unsupported-os',
  'windows-node-selector': 'unsupported-os',
  'windows-affinity': 'unsupported-os',
  'windows-beta-node-selector': 'unsupported-os',
  'windows-beta-affinity': 'unsupported-os',
  'linux-affinity-or-windows': 'injected',
  'limit-range-fitted': 'injected',
  'limit-range-below-request': 'limit-range',
  'limit-range-ratio': 'injected',
  'limit-range-pod': 'limit-range',
  'limit-range-min': 'injected',
  'limit-range-max-defaults': 'injected',
  'limit-range-default-pod-max': 'limit-range',
  'pull-secrets': 'injected',
  'pull-secret-missing': 'namespace-not-ready',
  'namespace-check-failed': 'namespace-check-failed',
  // sidecar.startupProbe set: the sidecar gains it; a pod injected before the value was set is stale
  // (its config hash differs, as after a resources change) and gets the sidecar replaced.
  'startup-probe': 'injected',
  'startup-probe-classic': 'injected',
  'startup-probe-set-after-injection': 'reinjected',
};

async function post(c: GoldenCase, review: AdmissionReview): Promise<AdmissionReview> {
  const config = configFor(c.env);
  const namespace = c.context?.namespace;
  // context.json's namespaceLookupFailed: the lookup fails as a 403 from missing RBAC does.
  const failed = c.context?.namespaceLookupFailed;
  const fetch = async () => {
    if (failed || !namespace) throw Object.assign(new Error('lookup failed'), { code: 403 });
    return namespace;
  };
  const app = buildServer(config, {
    metrics: createMetrics(new Registry(), { version: 'test', sidecarVersion: config.sidecar.version }, false),
    logger: false,
    readiness: namespace || failed ? createReadinessCache({ fetch }) : undefined,
  });
  try {
    const res = await app.inject({ method: 'POST', url: '/mutate', payload: review });
    assert.equal(res.statusCode, 200, res.body);
    return res.json() as AdmissionReview;
  } finally {
    await app.close();
  }
}

function expectationOf(review: AdmissionReview) {
  const { patch, ...response } = review.response!;
  return { response, patch: decodePatch(patch) };
}

async function run(c: GoldenCase) {
  if (c.derivedFrom && UPDATE_GOLDEN) {
    const source = loadCase(c.derivedFrom);
    const pod = readJson(join(source.dir, 'pod.json'));
    const input = structuredClone(source.review);
    input.request!.uid = `${input.request!.uid.slice(0, -4)}d${input.request!.uid.slice(-3)}`;
    input.request!.object = pod;
    writeJson(join(c.dir, 'input.json'), input);
    c.review = input;
  }
  const answer = await post(c, c.review);
  const { response, patch } = expectationOf(answer);
  const object = c.review.request!.object;
  const patched = object == null ? undefined : applyStrict(object, patch);
  if (UPDATE_GOLDEN) {
    writeJson(join(c.dir, 'response.json'), response);
    writeJson(join(c.dir, 'patch.json'), patch);
    if (patched !== undefined) writeJson(join(c.dir, 'pod.json'), patched);
    else rmSync(join(c.dir, 'pod.json'), { force: true });
  }
  return { answer, response, patch, patched };
}

const names = caseNames();

describe('golden cases', () => {
  it('has at least 15 cases, each with an expectation in this file and only known files', () => {
    assert.ok(names.length >= 15, `only ${names.length} golden cases`);
    for (const name of names) {
      assert.ok(EXPECTED_REASON[name], `golden case ${name} has no expectation in golden.test.ts`);
      const files = readdirSync(join(loadCase(name).dir));
      for (const file of files) {
        assert.ok([...INPUT_FILES, ...EXPECTATION_FILES].includes(file), `${name}/${file} is used by no test`);
      }
    }
    for (const name of Object.keys(EXPECTED_REASON)) assert.ok(names.includes(name), `golden case ${name} is missing`);
  });

  // Derived cases read their source's pod.json, so sources run first.
  const ordered = [...names].sort((a, b) => Number(Boolean(loadCase(a).derivedFrom)) - Number(Boolean(loadCase(b).derivedFrom)));
  for (const name of ordered) {
    it(`${name}: ${EXPECTED_REASON[name] ?? '?'}`, async () => {
      const c = loadCase(name);
      const { answer, response, patch, patched } = await run(c);
      const uid = c.review.request!.uid;

      assert.equal(answer.apiVersion, 'admission.k8s.io/v1');
      assert.equal(answer.kind, 'AdmissionReview');
      assert.equal(answer.response!.uid, uid, 'response.uid echoes the request');
      assert.equal(answer.response!.allowed, true, 'this webhook never denies');
      assert.equal(answer.response!.auditAnnotations?.reason, EXPECTED_REASON[name]);
      if (patch.length > 0) assert.equal(answer.response!.patchType, 'JSONPatch');
      else assert.equal(answer.response!.patchType, undefined, 'no patchType without a patch');
      for (const w of answer.response!.warnings ?? []) assert.ok(w.length <= 120, `warning over 120 characters: ${w}`);

      assert.deepEqual(response, readJson(join(c.dir, 'response.json')), 'response.json');
      assert.deepEqual(patch, readJson(join(c.dir, 'patch.json')), 'patch.json');
      const podFile = join(c.dir, 'pod.json');
      if (patched === undefined) assert.ok(!existsSync(podFile), 'pod.json for a request without object');
      else assert.deepEqual(patched, readJson(podFile), 'pod.json');

      const isPod = (c.review.request!.kind?.kind ?? '') === 'Pod' && patched !== undefined;
      if (isPod) {
        assert.doesNotThrow(() => new PodModel(patched as ConstructorParameters<typeof PodModel>[0]).validate(), 'patched pod validates');
        const again = structuredClone(c.review);
        again.request!.object = patched;
        const second = await post(c, again);
        assert.equal(second.response!.patch, undefined, 'a second review of the patched pod gives no patch');
      }
    });
  }
});

after(() => {
  if (UPDATE_GOLDEN) process.stdout.write('golden files rewritten\n');
});
