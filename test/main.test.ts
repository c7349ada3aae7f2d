// The process as operators run it: a bad variable exits non-zero naming it; with no certificate it
// serves a throw-away one on 127.0.0.1; SIGTERM drains and exits 0 well within 10 s.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const MAIN = join(import.meta.dirname, '..', 'app', 'main.ts');

function start(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return { child, out: () => stdout, err: () => stderr };
}

async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('app/main.ts', () => {
  it('exits 2 and names the variable on a bad value', async () => {
    const { child, err } = start({ PANDO_DEFAULT_MODE: 'paranoid' });
    const [code] = await once(child, 'exit');
    assert.equal(code, 2);
    assert.match(err(), /PANDO_CONFIG_INVALID: invalid configuration: PANDO_DEFAULT_MODE: "paranoid" is not one of/);
  });

  it('serves a throw-away certificate, prints a curl example, and stops on SIGTERM within 10 s', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const { child, out } = start({ PANDO_HOST: '127.0.0.1', PANDO_PORT: String(port), PANDO_METRICS_PORT: String(port + 1) });
    try {
      await waitFor(() => out().includes('curl --cacert'), 15_000);
      assert.match(out(), new RegExp(`https://127\\.0\\.0\\.1:${port}/mutate`));
      const metrics = await fetch(`http://127.0.0.1:${port + 1}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /pandocore_build_info\{version="\d+\.\d+\.\d+"/);
      const stopped = Date.now();
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0);
      assert.ok(Date.now() - stopped < 10_000);
      assert.match(out(), /"msg":"stopped"/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
