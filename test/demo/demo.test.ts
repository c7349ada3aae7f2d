// npm run demo's parts that need no cluster: the progress line with its estimate from the previous
// run, the timings file, recognising its own processes (a reused pid is not ours), and workloads
// that can run on the node.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { NODE_IMAGES, NODE_SCHEDULER, NODE_TAINT } from '../cluster/node.ts';
import { formatDuration, progressLine, Timings } from '../../scripts/demo/progress.ts';
import { readDemoState, runsScript, writeDemoState } from '../../scripts/demo/state.ts';

const dir = mkdtempSync(join(tmpdir(), 'pando-demo-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('demo progress', () => {
  it('formats durations as a person reads them', () => {
    assert.equal(formatDuration(4_400), '4s');
    assert.equal(formatDuration(185_000), '3m05s');
  });

  it('estimates from the previous run, or gives the first-run hint', () => {
    assert.equal(progressLine('building', 60_000, 240_000, 'hint'), '  ... building: 1m00s, last run took 4m00s: about 3m00s left');
    assert.equal(progressLine('building', 300_000, 240_000, 'hint'), '  ... building: 5m00s, last run took 4m00s: longer this time');
    assert.equal(progressLine('building', 15_000, undefined, 'first build: several minutes'), '  ... building: 15s, first build: several minutes');
  });

  it('keeps the timings of the previous run; an unreadable file is no history', () => {
    const file = join(dir, 'timings.json');
    new Timings(file).record('control-plane', 123_000);
    assert.equal(new Timings(file).previous('control-plane'), 123_000);
    assert.equal(new Timings(file).previous('helm'), undefined);
    writeFileSync(file, '{not json');
    assert.equal(new Timings(file).previous('control-plane'), undefined);
  });
});

describe('demo state', () => {
  it('round-trips, and a file without a webhook pid is no state', () => {
    const file = join(dir, 'state.json');
    const state = { webhookPid: 1, webhookArg: 'app/main.ts', webhookPort: 2, metricsPort: 3, registry: 'r', chartRef: 'c', runFrom: 'source', kubeconfig: 'k', startedAt: 't' };
    writeDemoState(file, state);
    assert.deepEqual(readDemoState(file), state);
    writeFileSync(file, '{"webhookPort": 2}');
    assert.equal(readDemoState(file), undefined);
    assert.equal(readDemoState(join(dir, 'missing.json')), undefined);
  });

  it('a pid is ours only while it runs the recorded script', async () => {
    const child = spawn('sleep', ['30']);
    await once(child, 'spawn');
    assert.equal(runsScript(child.pid!, '30'), true);
    assert.equal(runsScript(child.pid!, 'app/main.ts'), false);
    child.kill();
    await once(child, 'exit');
    assert.equal(runsScript(child.pid!, '30'), false);
  });
});

describe('demo workloads', () => {
  it('every pod of scripts/demo/workloads.yaml can run on the node: its scheduler, its taint tolerated, an image it has', () => {
    const docs = parseAllDocuments(readFileSync(join(import.meta.dirname, '../../scripts/demo/workloads.yaml'), 'utf8')).map((d) => d.toJS());
    assert.equal(docs.length, 3);
    for (const doc of docs) {
      const spec = doc.kind === 'Pod' ? doc.spec : doc.spec.template.spec;
      assert.equal(spec.schedulerName, NODE_SCHEDULER, `${doc.kind} ${doc.metadata.name}: schedulerName`);
      assert.deepEqual(spec.tolerations, [{ key: NODE_TAINT.key, operator: 'Equal', value: NODE_TAINT.value, effect: NODE_TAINT.effect }], `${doc.kind} ${doc.metadata.name}: tolerations`);
      for (const c of spec.containers) assert.equal(c.image, NODE_IMAGES.pause, `${doc.kind} ${doc.metadata.name}: container ${c.name}`);
    }
  });
});
