// The helm that scripts/tools/helm.sh builds must assume, without a cluster and without
// --kube-version, the Kubernetes version its own client-go speaks (as helm's release builds do, by
// the ldflags of helm's Makefile), not its source default v1.20.0: otherwise `helm template` of our
// chart fails on the chart's own kubeVersion (issue 23). Before the ldflags:
// "Error: chart requires kubeVersion: >=1.30.0-0 which is incompatible with Kubernetes v1.20.0".
import { equal, ok } from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CHART_DIR, NAMESPACE, find, helm, parseObjects } from './render.ts';

/** The smallest chart that prints the Kubernetes version helm assumes. */
function versionProbeChart(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'pando-kube-version-'));
  mkdirSync(join(dir, 'templates'));
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: kube-version-probe\nversion: 0.1.0\n');
  writeFileSync(join(dir, 'templates/version.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n  version: {{ .Capabilities.KubeVersion.Version | quote }}\n');
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('helm template without --kube-version assumes a Kubernetes our chart accepts (1.30 or newer), not v1.20.0', (t) => {
  const probe = versionProbeChart();
  try {
    const r = helm(['template', 'probe', probe.dir]);
    equal(r.status, 0, r.stderr);
    const version = find(parseObjects(r.stdout), 'ConfigMap', 'probe').data.version as string;
    t.diagnostic(`helm's default Kubernetes version: ${version}`);
    const minor = Number(/^v1\.(\d+)\.\d+$/.exec(version)?.[1]);
    ok(minor >= 30, `helm assumes Kubernetes ${version}`);
  } finally {
    probe.cleanup();
  }
});

test('helm template of the chart without --kube-version renders it', () => {
  const r = helm(['template', 'pando-webhook', CHART_DIR, '--namespace', NAMESPACE, '--set', 'licenseKey=test-license']);
  equal(r.status, 0, r.stderr);
  equal(find(parseObjects(r.stdout), 'Deployment', 'pando-webhook').metadata.namespace, NAMESPACE);
});
