// npm start's development CA survives a restart (the API server keeps trusting the webhook), with
// its key 0600 in a 0700 folder; an expiring CA is replaced.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEV_CA_DAYS, loadOrCreateDevCa } from '../../app/tls/dev-ca.ts';

const MAIN = join(import.meta.dirname, '..', '..', 'app', 'main.ts');
const DAY_MS = 24 * 60 * 60 * 1000;
const scratch = mkdtempSync(join(tmpdir(), 'pando-dev-ca-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Starts app/main.ts without TLS files with TMPDIR=dir; resolves with the CA file it printed and a stop(). */
async function startWebhook(dir: string, port: number) {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', TMPDIR: dir, PANDO_HOST: '127.0.0.1', PANDO_PORT: String(port), PANDO_METRICS_PORT: String(port + 1), PANDO_SHUTDOWN_DELAY_MS: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const deadline = Date.now() + 15_000;
  while (!/--cacert (\S+)/.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no curl example:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    caFile: /--cacert (\S+)/.exec(out)![1]!,
    out: () => out,
    stop: async () => {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The status of GET /readyz trusting only `ca`, as the API server trusts its caBundle. */
function readyzTrusting(port: number, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/readyz', ca }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('development CA (npm start)', () => {
  it('is kept across restarts: the CA of the first start still verifies the second', async () => {
    const dir = mkdtempSync(join(scratch, 'restart-'));
    const port = 20000 + Math.floor(Math.random() * 20000);
    const first = await startWebhook(dir, port);
    const ca = readFileSync(first.caFile, 'utf8');
    try {
      assert.match(first.out(), /a new development CA, kept for later starts/);
    } finally {
      await first.stop();
    }
    const second = await startWebhook(dir, port);
    try {
      assert.equal(second.caFile, first.caFile);
      assert.match(second.out(), /the development CA of an earlier start, kept while valid/);
      assert.equal(await readyzTrusting(port, ca), 200);
    } finally {
      await second.stop();
    }
    assert.equal(statSync(join(dir, `pando-webhook-dev-ca-${process.getuid!()}`, 'ca.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, `pando-webhook-dev-ca-${process.getuid!()}`)).mode & 0o777, 0o700);
  });

  it('is replaced when it has less than a day left, and when its files are broken', async () => {
    const dir = join(scratch, 'expiry');
    const now = new Date();
    const created = await loadOrCreateDevCa(now, dir);
    assert.equal(created.reused, false);
    const again = await loadOrCreateDevCa(new Date(now.getTime() + (DEV_CA_DAYS - 2) * DAY_MS), dir);
    assert.equal(again.reused, true);
    assert.equal(again.ca.certPem, created.ca.certPem);
    const late = await loadOrCreateDevCa(new Date(now.getTime() + (DEV_CA_DAYS - 0.5) * DAY_MS), dir);
    assert.equal(late.reused, false);
    assert.notEqual(late.ca.certPem, created.ca.certPem);
    rmSync(late.keyFile);
    assert.equal((await loadOrCreateDevCa(now, dir)).reused, false);
  });
});
