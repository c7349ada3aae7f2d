// npm run test:e2e: build the control plane if needed, start it (or reuse a running one), run
// test/e2e/*.e2e.ts one file at a time against it, and stop it again if this run started it.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, startCluster } from './harness.ts';

const build = spawnSync('bash', [join(REPO_ROOT, 'test/cluster/build.sh')], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
// cert-manager controller + cainjector and its CRDs, for test/e2e/tls-cert-manager.e2e.ts.
const buildCertManager = spawnSync('bash', [join(REPO_ROOT, 'test/cluster/build-cert-manager.sh')], { stdio: 'inherit' });
if (buildCertManager.status !== 0) process.exit(buildCertManager.status ?? 1);

// The chart comes from a local OCI registry, as users get it: publish dist/pando-webhook there.
function run(command: string, args: string[]): string {
  const r = spawnSync(command, args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) {
    console.error(`${command} ${args.join(' ')} failed (exit ${r.status})`);
    process.exit(1);
  }
  return r.stdout.trim();
}
run('bash', [join(REPO_ROOT, 'scripts/tools/helm.sh')]);
// A registry that already runs (a cluster:up's node pulls from it) is reused and left running.
const registryWasUp = spawnSync('bash', [join(REPO_ROOT, 'scripts/registry.sh'), 'running'], { stdio: 'ignore' }).status === 0;
const registry = run('bash', [join(REPO_ROOT, 'scripts/registry.sh'), 'start']);
const chartRef = run('bash', [join(REPO_ROOT, 'scripts/chart/publish.sh'), `oci://${registry}/charts`]);
console.log(`[e2e] chart published as ${chartRef}`);

// The webhook runs from its image, published beside the chart, wherever that is possible (root for
// buildah, the mount namespace and chroot); PANDO_E2E_FROM=source runs app/main.ts instead.
let imageRef = '';
const fromSource = process.env.PANDO_E2E_FROM === 'source';
if (!fromSource && process.getuid?.() === 0) {
  run('bash', [join(REPO_ROOT, 'scripts/image/build.sh'), '--reuse']);
  imageRef = run('bash', [join(REPO_ROOT, 'scripts/image/publish.sh'), `${registry}/pando-webhook`]).split('\n').pop()!;
  console.log(`[e2e] webhook image published as ${imageRef}; the scenarios run it`);
} else {
  console.log(`[e2e] the scenarios run the webhook from source (${fromSource ? 'PANDO_E2E_FROM=source' : 'not root: the image runtime needs a mount namespace and chroot'})`);
}

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
    { stdio: 'inherit', cwd: REPO_ROOT, env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath, PANDO_E2E_CHART: chartRef, ...(imageRef ? { PANDO_E2E_IMAGE: imageRef } : {}) } },
  );
  status = run.status ?? 1;
} finally {
  await cluster.stop();
  if (!registryWasUp) spawnSync('bash', [join(REPO_ROOT, 'scripts/registry.sh'), 'stop']);
  console.log(`[cluster] e2e finished in ${Math.round((Date.now() - t0) / 1000)} s (exit ${status})`);
}
process.exit(status);
