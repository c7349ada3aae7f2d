// npm run synth [-- --output DIR]: plain manifests for custom builds from the values of PANDO_VALUES.
// It runs the cdk8s app of cdk8s.yaml (charts-src/main.ts) as `cdk8s synth` does, but into a
// temporary folder: cdk8s-cli empties its output folder before the app runs and answers a failing
// app with its own stack trace. Here a bad values file gets the app's one-line error (the key and
// the allowed values, as helm words it) and the output folder (default cdk8s.out) is replaced only
// by a successful synth.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const at = process.argv.indexOf('--output');
const output = resolve(at >= 0 && process.argv[at + 1] ? process.argv[at + 1]! : 'cdk8s.out');
const work = mkdtempSync(join(tmpdir(), 'pando-synth-'));
try {
  const r = spawnSync(process.execPath, [join(root, 'charts-src/main.ts')], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, CDK8S_OUTDIR: work } });
  if (r.status !== 0) {
    process.stderr.write(`${output} is unchanged\n`);
    process.exitCode = 1;
  } else {
    rmSync(output, { recursive: true, force: true });
    cpSync(work, output, { recursive: true });
    for (const f of readdirSync(output)) process.stdout.write(`wrote ${join(output, f)}\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
