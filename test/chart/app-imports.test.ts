// Names the chart shares with the app live in app/contract.ts (issue 26 item 5): rendering the chart
// never loads a controller, nor with it the Kubernetes client.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { importGraph } from '../helpers/import-graph.ts';
import { ROOT } from './render.ts';

test('charts-src reaches only app/contract.ts, app/config.ts with its error table, the selector defaults and the startup probe schema, never the Kubernetes client', () => {
  const entries = readdirSync(join(ROOT, 'charts-src')).filter((f) => f.endsWith('.ts')).map((f) => join(ROOT, 'charts-src', f));
  const graph = importGraph(entries);
  const app = [...graph.keys()].map((f) => relative(ROOT, f)).filter((f) => f.startsWith('app/'));
  assert.deepEqual(app.filter((f) => f.startsWith('app/controllers/') || f.startsWith('app/kube/')), [], 'controllers or kube modules reached');
  const client = [...graph].filter(([, imports]) => imports.packages.some((p) => p.startsWith('@kubernetes/client-node'))).map(([f]) => relative(ROOT, f));
  assert.deepEqual(client, [], 'files importing @kubernetes/client-node');
  assert.deepEqual(app.sort(), ['app/config.ts', 'app/contract.ts', 'app/errors.ts', 'app/pods/selection.ts', 'app/startup-probe.ts']);
});
