// kube-score (a linter nobody here wrote, issue 23) on the chart, as `npm run lint:chart` runs it:
// the default and production-like renders show no WARNING or CRITICAL but the accepted ones of
// charts-src/helm/kube-score.ts, each accepted one still occurs, and the runner fails, naming the
// finding, when a fix is undone or an accepted finding goes away. Builds kube-score (and helm) from
// their Go modules on first use, as the other chart tests build helm.
import { deepStrictEqual, equal, match } from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { KUBE_SCORE_RENDERS } from '../../charts-src/helm/kube-score.ts';
import { KUBE_VERSION, ensureTools, lintChart, problems, type LintResult } from '../../scripts/chart/kube-score.ts';
import { KUBE_VERSION as CHART_TEST_KUBE_VERSION } from './render.ts';

const LICENSE = { licenseKey: 'kube-score' };
const listed = (result: LintResult, render: string) => result.scores.find((s) => s.render === render)!.findings.map((f) => `${f.grade} ${f.check} ${f.object}`);

describe('kube-score on the chart', () => {
  before(() => ensureTools());

  test('default and production renders: only the accepted findings, and each of them still occurs', () => {
    const result = lintChart();
    deepStrictEqual(problems(result), []);
    deepStrictEqual(result.scores.map((s) => s.render), KUBE_SCORE_RENDERS.map((r) => r.name));
    deepStrictEqual(listed(result, 'default'), ['CRITICAL container-image-pull-policy Deployment/pando-webhook', 'WARNING pod-networkpolicy Deployment/pando-webhook']);
    deepStrictEqual(listed(result, 'production'), ['CRITICAL container-image-pull-policy Deployment/pando-webhook']);
    equal(KUBE_VERSION, CHART_TEST_KUBE_VERSION, 'kube-score reads the Kubernetes version the chart tests render for');
  });

  test('a finding not accepted fails, named: ephemeral storage and the podAntiAffinity set to null', () => {
    const values = { ...LICENSE, resources: { requests: { 'ephemeral-storage': null }, limits: { 'ephemeral-storage': null } }, affinity: { podAntiAffinity: null } };
    const result = lintChart({ renders: [{ name: 'default', description: 'fixes undone', values }] });
    deepStrictEqual(result.unaccepted.map((f) => `${f.grade} ${f.check} ${f.object}`), [
      'CRITICAL container-ephemeral-storage-request-and-limit Deployment/pando-webhook',
      'WARNING deployment-has-host-podantiaffinity Deployment/pando-webhook',
    ]);
    match(problems(result).join('\n'), /^CRITICAL not accepted: container-ephemeral-storage-request-and-limit on Deployment\/pando-webhook \(default render\): \(webhook\) Ephemeral Storage limit is not set/m);
  });

  test('an accepted finding that no longer occurs fails: image.pullPolicy Always and the egress policy on', () => {
    const values = { ...LICENSE, image: { pullPolicy: 'Always' }, networkPolicy: { egress: { enabled: true } } };
    const result = lintChart({ renders: [{ name: 'default', description: 'accepted findings gone', values }] });
    deepStrictEqual(result.unaccepted, []);
    deepStrictEqual(result.stale.map((s) => `${s.render} ${s.accepted.check}`), ['default container-image-pull-policy', 'default pod-networkpolicy']);
    match(problems(result).join('\n'), /^accepted but no longer found: container-image-pull-policy on Deployment\/pando-webhook \(default render\)/m);
  });
});
