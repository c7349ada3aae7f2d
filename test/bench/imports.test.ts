// bench/ without a circle (issue 26 item 3): the entry points import the shared harness
// (bench/harness.ts) and their helpers; no file under bench/ imports one that imports it back.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { findCycle, importGraph } from '../helpers/import-graph.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BENCH = join(ROOT, 'bench');

test('the import graph of bench/ has no cycle', () => {
  const graph = importGraph(readdirSync(BENCH).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).map((f) => join(BENCH, f)));
  const cycle = findCycle(graph, (file) => file.startsWith(`${BENCH}/`));
  assert.equal(cycle?.map((f) => relative(ROOT, f)).join(' -> '), undefined);
});

test('the harness imports no entry point, and the entry points take their servers from it', () => {
  const graph = importGraph([join(BENCH, 'harness.ts')]);
  const reached = [...graph.keys()].map((f) => relative(ROOT, f)).filter((f) => f.startsWith('bench/')).sort();
  assert.deepEqual(reached, ['bench/harness.ts', 'bench/load.ts', 'bench/reviews.ts']);
  for (const entry of ['run.ts', 'ab.ts', 'cluster.ts', 'fuzz.ts', 'overload.ts']) {
    assert.ok(importGraph([join(BENCH, entry)]).get(join(BENCH, entry))!.files.includes(join(BENCH, 'harness.ts')), entry);
  }
});

test('findCycle finds a circle', () => {
  const graph = new Map([
    ['/a.ts', { files: ['/b.ts'] }],
    ['/b.ts', { files: ['/c.ts'] }],
    ['/c.ts', { files: ['/a.ts'] }],
  ]);
  assert.deepEqual(findCycle(graph), ['/a.ts', '/b.ts', '/c.ts', '/a.ts']);
  assert.equal(findCycle(new Map([['/a.ts', { files: ['/b.ts'] }], ['/b.ts', { files: [] }]])), undefined);
});
