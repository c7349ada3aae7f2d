// Publishing: a local OCI registry (Debian's docker-registry on 127.0.0.1, scripts/registry.sh),
// `npm run chart:publish`, and the chart rendered back from oci:// equals the local chart.
import { deepStrictEqual, equal, match } from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { CHART_DIR, ROOT, byKey, helm, helmTemplate } from './render.ts';

let registry = '';
before(() => {
  registry = execFileSync('bash', [`${ROOT}/scripts/registry.sh`, 'start'], { encoding: 'utf8' }).trim();
  match(registry, /^127\.0\.0\.1:\d+$/);
});
after(() => {
  spawnSync('bash', [`${ROOT}/scripts/registry.sh`, 'stop']);
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
