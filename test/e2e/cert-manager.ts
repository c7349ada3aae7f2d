// cert-manager in the e2e cluster: its CRDs (from the module the binaries were built from, exported
// by test/cluster/build-cert-manager.sh) and its controller and cainjector as local processes
// against the harness's kubeconfig, as they would run in the cert-manager namespace.
// Also a Secret volume on disk: the files kubelet would mount for the webhook, updated the way
// kubelet updates them (a new timestamped directory, then an atomic swap of the ..data symlink).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN_DIR, REPO_ROOT, type Cluster } from '../cluster/harness.ts';
import { kubectl } from './chart-render.ts';
import { waitUntil } from './support.ts';

export const CRDS_FILE = join(REPO_ROOT, '.tools/cert-manager/crds.yaml');
const CRD_NAMES = ['certificates', 'certificaterequests', 'issuers', 'clusterissuers', 'orders', 'challenges'].map(
  (r) => `${r}.${r === 'orders' || r === 'challenges' ? 'acme.' : ''}cert-manager.io`,
);

export interface CertManager {
  /** What the controller and the cainjector wrote, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

function startProcess(name: string, args: string[], log: (line: string) => void): { child: ChildProcess; exited: Promise<void> } {
  const child = spawn(join(BIN_DIR, name), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (c: Buffer) => log(`[${name}] ${c.toString()}`));
  child.stderr?.on('data', (c: Buffer) => log(`[${name}] ${c.toString()}`));
  return { child, exited: new Promise<void>((res) => child.once('exit', () => res())) };
}

/** Applies the CRDs, waits until they are served, and starts the controller and the cainjector. */
export async function startCertManager(cluster: Cluster): Promise<CertManager> {
  if (!existsSync(CRDS_FILE)) throw new Error(`${CRDS_FILE} is missing: run bash test/cluster/build-cert-manager.sh (npm run test:e2e does)`);
  kubectl(cluster, ['apply', '--server-side', '--force-conflicts', '-f', CRDS_FILE]);
  for (const crd of CRD_NAMES) {
    await waitUntil(`CRD ${crd} Established`, 30_000, async () => {
      const r = await cluster.request('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd}`);
      return r.body?.status?.conditions?.some((c: any) => c.type === 'Established' && c.status === 'True');
    });
  }
  let out = '';
  const log = (text: string) => {
    out += text;
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
  };
  const kubeconfig = `--kubeconfig=${cluster.kubeconfigPath}`;
  // Out of cluster, one replica each: no leader election (our mains have none).
  const processes = [
    startProcess('cert-manager-controller', [kubeconfig, '--cluster-resource-namespace=cert-manager', '--v=2'], log),
    startProcess('cert-manager-cainjector', [kubeconfig, '--v=2'], log),
  ];
  await sleep(500);
  for (const p of processes) {
    if (p.child.exitCode !== null) throw new Error(`${p.child.spawnfile} exited with ${p.child.exitCode}:\n${out}`);
  }
  return {
    output: () => out,
    stop: async () => {
      for (const p of processes) {
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      }
      for (const p of processes) {
        const done = await Promise.race([p.exited.then(() => true), sleep(10_000).then(() => false)]);
        if (!done) p.child.kill('SIGKILL');
      }
    },
  };
}

/** Removes the CRDs (and with them every cert-manager object). */
export async function uninstallCertManagerCrds(cluster: Cluster): Promise<void> {
  kubectl(cluster, ['delete', '--ignore-not-found', '--wait=true', '-f', CRDS_FILE]);
}

export interface SecretVolume {
  dir: string;
  certFile: string;
  keyFile: string;
  /** Writes the Secret's keys as kubelet does: a new ..<timestamp> directory, then ..data swapped to it. */
  write(data: Record<string, string>): void;
  cleanup(): void;
}

export function createSecretVolume(): SecretVolume {
  const dir = mkdtempSync(join(tmpdir(), 'pando-e2e-secret-volume-'));
  let generation = 0;
  return {
    dir,
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    write(data) {
      const version = `..${new Date().toISOString().replace(/[-:.]/g, '_')}.${generation++}`;
      mkdirSync(join(dir, version));
      for (const [key, value] of Object.entries(data)) writeFileSync(join(dir, version, key), value, { mode: 0o644 });
      const previous = existsSync(join(dir, '..data')) ? readlinkSync(join(dir, '..data')) : undefined;
      symlinkSync(version, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      for (const key of Object.keys(data)) {
        if (!existsSync(join(dir, key))) symlinkSync(join('..data', key), join(dir, key));
      }
      if (previous) rmSync(join(dir, previous), { recursive: true, force: true });
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
