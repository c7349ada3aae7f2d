// npm run test:e2e: build the control plane if needed, start it (or reuse a running one), run
// test/e2e/*.e2e.ts one file at a time against it, and stop it again if this run started it.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, startCluster } from './harness.ts';

const build = spawnSync('bash', [join(REPO_ROOT, 'test/cluster/build.sh')], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const t0 = Date.now();
const cluster = await startCluster((line) => console.log(`[cluster] ${line}`));
let status = 1;
try {
  const only = process.argv.slice(2);
  const files = only.length > 0
    ? only
    : readdirSync(join(REPO_ROOT, 'test/e2e')).filter((f) => f.endsWith('.e2e.ts')).sort().map((f) => join('test/e2e', f));
  const run = spawnSync(
    process.execPath,
    ['--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=600000', ...files],
    { stdio: 'inherit', cwd: REPO_ROOT, env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath } },
  );
  status = run.status ?? 1;
} finally {
  await cluster.stop();
  console.log(`[cluster] e2e finished in ${Math.round((Date.now() - t0) / 1000)} s (exit ${status})`);
}
process.exit(status);
