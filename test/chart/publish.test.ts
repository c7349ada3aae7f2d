// Publishing: a local OCI registry (Debian's docker-registry on 127.0.0.1, scripts/registry.sh),
// `npm run chart:publish`, and the chart rendered back from oci:// equals the local chart; an
// umbrella chart (testdata/umbrella) depending on it from the registry renders with `global`.
import { deepStrictEqual, equal, match } from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CHART_DIR, KUBE_VERSION, NAMESPACE, ROOT, byKey, find, helm, helmTemplate, parseObjects } from './render.ts';

let registry = '';
// A registry that already runs (an e2e node pulls from it: test/cluster/node-registry.ts) is left running.
let registryWasUp = false;
before(() => {
  registryWasUp = spawnSync('bash', [`${ROOT}/scripts/registry.sh`, 'running'], { stdio: 'ignore' }).status === 0;
  registry = execFileSync('bash', [`${ROOT}/scripts/registry.sh`, 'start'], { encoding: 'utf8' }).trim();
  match(registry, /^127\.0\.0\.1:\d+$/);
});
after(() => {
  if (!registryWasUp) spawnSync('bash', [`${ROOT}/scripts/registry.sh`, 'stop']);
});

test('chart:publish pushes to oci://; helm template from the registry equals the local chart', () => {
  const r = spawnSync('npm', ['run', '-s', 'chart:publish', '--', `oci://${registry}/charts`], { cwd: ROOT, encoding: 'utf8' });
  equal(r.status, 0, r.stderr);
  const version = helm(['show', 'chart', CHART_DIR]).stdout.match(/^version: (.+)$/m)![1]!;
  equal(r.stdout.trim(), `oci://${registry}/charts/pando-webhook:${version}`);
  for (const values of [{ licenseKey: 'k' }, { licenseKey: 'k', tls: { certManager: true } }]) {
    const remote = helmTemplate(values, `oci://${registry}/charts/pando-webhook`, ['--version', version, '--plain-http']);
    deepStrictEqual(byKey(remote), byKey(helmTemplate(values)));
  }
});

test('an umbrella chart depending on it from oci:// renders, passing global and overriding values', () => {
  const version = helm(['show', 'chart', CHART_DIR]).stdout.match(/^version: (.+)$/m)![1]!;
  const published = spawnSync('npm', ['run', '-s', 'chart:publish', '--', `oci://${registry}/charts`], { cwd: ROOT, encoding: 'utf8' });
  equal(published.status, 0, published.stderr);
  const dir = mkdtempSync(join(tmpdir(), 'pando-umbrella-'));
  try {
    cpSync(`${ROOT}/test/chart/testdata/umbrella`, dir, { recursive: true });
    const chartYaml = join(dir, 'Chart.yaml');
    writeFileSync(chartYaml, readFileSync(chartYaml, 'utf8').replaceAll('REGISTRY', registry).replaceAll('VERSION', version));
    const update = helm(['dependency', 'update', dir, '--plain-http']);
    equal(update.status, 0, update.stderr + update.stdout);
    const r = helm(['template', 'platform', dir, '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION]);
    equal(r.status, 0, r.stderr);
    const objects = parseObjects(r.stdout);
    equal(find(objects, 'HorizontalPodAutoscaler').spec.minReplicas, 3);
    equal(find(objects, 'MutatingWebhookConfiguration').webhooks[0].failurePolicy, 'Fail');
    for (const o of objects) equal(o.metadata.labels?.['platform.example/owner'], 'security', `${o.kind}/${o.metadata.name}`);
    equal(find(objects, 'Secret', 'pando-license').stringData['license-key'], 'umbrella-license');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
