// `npm run synth` (scripts/chart/synth.ts) as a user meets it with a wrong values file: one error that
// names the key and what is allowed, no stack trace, and the previous output left as it was.
import { equal, match, doesNotMatch, ok } from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'pando-synth-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function synth(values: string) {
  const file = join(dir, 'my-values.yaml');
  writeFileSync(file, values);
  const output = join(dir, 'out');
  mkdirSync(output, { recursive: true });
  writeFileSync(join(output, 'earlier.k8s.yaml'), 'kept: true\n');
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/chart/synth.ts'), '--output', output], { encoding: 'utf8', env: { ...process.env, PANDO_VALUES: file } });
  return { ...r, output, file };
}

describe('npm run synth', () => {
  test('a misspelt key is named with the allowed keys; no stack trace; the output is kept', () => {
    const r = synth('licenseKey: abc\nreplica: 3\nsidecar:\n  imag: x\n');
    equal(r.status, 1);
    match(r.stderr, /replica: unknown key \(allowed: .*\breplicas\b/);
    match(r.stderr, /sidecar\.imag: unknown key \(allowed in sidecar: image, /);
    match(r.stderr, /my-values\.yaml/);
    doesNotMatch(r.stderr, /^\s+at /m);
    doesNotMatch(r.stderr, /must NOT have additional properties/);
    equal(readFileSync(join(r.output, 'earlier.k8s.yaml'), 'utf8'), 'kept: true\n');
  });

  test('a wrong enum value is named with the allowed values', () => {
    const r = synth('licenseKey: abc\ndefaultMode: audit\n');
    equal(r.status, 1);
    match(r.stderr, /defaultMode: "audit" is not allowed \(allowed: "monitor", "enforce", "debug"\)/);
  });

  test('a missing licenseKey names the values file', () => {
    const r = synth('replicas: 3\n');
    equal(r.status, 1);
    match(r.stderr, /licenseKey or license\.existingSecret\.name is required: add "licenseKey: YOUR_LICENSE_KEY" to the values file \(PANDO_VALUES=.*my-values\.yaml\)/);
    ok(existsSync(join(r.output, 'earlier.k8s.yaml')));
  });

  test('license.existingSecret instead of licenseKey is enough', () => {
    const r = synth('license:\n  existingSecret:\n    name: from-vault\n    key: license-key\n');
    equal(r.status, 0, r.stderr);
  });

  test('good values replace the output with the manifests', () => {
    const r = synth('licenseKey: abc\ndefaultMode: enforce\n');
    equal(r.status, 0, r.stderr);
    ok(!existsSync(join(r.output, 'earlier.k8s.yaml')));
    match(readFileSync(join(r.output, 'pando-webhook.k8s.yaml'), 'utf8'), /name: PANDO_DEFAULT_MODE\n\s+value: enforce/);
  });
});
