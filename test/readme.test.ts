// The README's pipe command lines, run as written (`... | kubectl apply -f -`): kubectl is a stand-in
// that reads standard input as kubectl does (every YAML document an object with apiVersion and kind,
// else kubectl's own `error parsing STDIN`) and keeps what it got. npm's banner on standard output
// is exactly what broke the pipe once.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'pando-readme-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Lines of the README's sh code blocks that pipe into `kubectl apply -f -`, without their trailing comment. */
function pipeLines(readme: string): string[] {
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks.flatMap((b) => b.split('\n')).filter((l) => l.includes('| kubectl apply -f -')).map((l) => l.replace(/\s+#.*$/, ''));
}

function kubectlStandIn(): string {
  const yaml = pathToFileURL(join(ROOT, 'node_modules/yaml/dist/index.js')).href;
  writeFileSync(join(dir, 'kubectl.mjs'), `import { readFileSync, writeFileSync } from 'node:fs';
import { parseAllDocuments } from ${JSON.stringify(yaml)};
const [verb, flag, file] = process.argv.slice(2);
if (verb !== 'apply' || flag !== '-f' || file !== '-') { console.error('stand-in knows only apply -f -'); process.exit(2); }
const text = readFileSync(0, 'utf8');
writeFileSync(${JSON.stringify(join(dir, 'applied.yaml'))}, text);
const objects = [];
for (const doc of parseAllDocuments(text)) {
  const o = doc.errors.length ? undefined : doc.toJS();
  if (o === null) continue;
  if (!o || typeof o !== 'object' || !o.apiVersion || !o.kind) { console.error('error: error parsing STDIN: not a Kubernetes object'); process.exit(1); }
  objects.push(o);
}
if (objects.length === 0) { console.error('error: no objects passed to apply'); process.exit(1); }
for (const o of objects) console.log(o.kind.toLowerCase() + '/' + o.metadata.name + ' created');
`);
  const bin = join(dir, 'bin');
  spawnSync('mkdir', ['-p', bin]);
  writeFileSync(join(bin, 'kubectl'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(dir, 'kubectl.mjs'))} "$@"\n`);
  chmodSync(join(bin, 'kubectl'), 0o755);
  return bin;
}

describe('README command lines', () => {
  const lines = pipeLines(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  const bin = kubectlStandIn();
  // As a user types it: no npm settings inherited from the npm that runs the tests (-s among them).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_config_')));
  const runLine = (line: string) => spawnSync('bash', ['-o', 'pipefail', '-c', line], { cwd: ROOT, encoding: 'utf8', env: { ...env, PATH: `${bin}:${process.env.PATH}` } });

  it('has pipe lines to run', () => assert.ok(lines.length >= 1, 'the README shows a pando inject ... | kubectl apply -f - line'));

  for (const line of lines) {
    it(`runs as written: ${line}`, () => {
      const r = runLine(line);
      assert.equal(r.status, 0, `${r.stderr}${r.stdout}`);
      assert.match(r.stdout, /^deployment\/\S+ created$/m);
      assert.match(readFileSync(join(dir, 'applied.yaml'), 'utf8'), /name: pando-sidecar/);
    });
  }

  it('the stand-in fails on npm\'s banner, as kubectl does (without -s)', () => {
    const r = runLine('npm run pando -- inject -f scripts/demo/try.yaml | kubectl apply -f -');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /error parsing STDIN/);
  });
});
