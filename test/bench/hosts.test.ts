// bench/hosts.ts: the cluster benchmark's hosts-file entry goes away at the end, and one left by a
// killed run is cleaned up by the next; other lines stay as they were.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { addHostsEntry } from '../../bench/hosts.ts';

test('the entry is there while the run lasts, then the file is as before', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pando-hosts-'));
  try {
    const file = join(dir, 'hosts');
    const before = '127.0.0.1 localhost\n::1 localhost ip6-localhost\n';
    // A line a run killed outright left behind (pid 2^22 + 1 is above Linux's pid_max): removed.
    writeFileSync(file, `${before}127.0.0.1 webhook.pando-bench.test # pando-bench pid 4194305\n`);
    const entry = addHostsEntry('webhook.pando-bench.test', file);
    const during = readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('pando-bench'));
    assert.deepEqual(during, [`127.0.0.1 webhook.pando-bench.test # pando-bench pid ${process.pid}`]);
    entry.remove();
    entry.remove();
    assert.equal(readFileSync(file, 'utf8'), before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('localhost and malformed names are refused', () => {
  assert.throws(() => addHostsEntry('localhost', '/nonexistent'), /not a host name/);
  assert.throws(() => addHostsEntry('a b', '/nonexistent'), /not a host name/);
});
