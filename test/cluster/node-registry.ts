// How images reach the e2e node (node.ts): as in a cluster, containerd pulls them from registries,
// here two Debian docker-registry instances on 127.0.0.1 (scripts/registry.sh):
//   - the project registry (no authentication): `pando.test/...` (the pause image, the sidecar
//     stand-in and its versions) and, under its own address, what the e2e runner publishes there
//     (the webhook image);
//   - the private registry (htpasswd): `pando-private.test/...` (the stand-in again), so that a pod
//     runs only with a pull Secret and `sidecar.imagePullSecrets` is exercised by a real pull.
// The image names stay fixed (`pando.test`, `pando-private.test`); containerd's registry host
// configuration (CRI `config_path`, one hosts.toml per name) maps each to http://127.0.0.1:PORT.
// The kubelet sends a pull Secret's credentials with an empty server address, so containerd offers
// them to whatever host the name maps to (`ParseAuth` in containerd's pkg/cri/server/image_pull.go).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const PROJECT_REGISTRY_HOST = 'pando.test';
export const PRIVATE_REGISTRY_HOST = 'pando-private.test';
/** Images only the private registry has (pushed there at node start): pulled with a pull Secret only. */
export const NODE_PRIVATE_IMAGES = { sidecar: `${PRIVATE_REGISTRY_HOST}/sidecar-standin:1` } as const;

type RegistryName = '' | 'private';
const REGISTRIES: readonly RegistryName[] = ['', 'private'];

/** An image tar (OCI layout, written by build-node.sh) and the name it gets on the node. */
export interface NodeImage {
  tar: string;
  name: string;
}

/** The registries the node pulls from: addresses, and the pids of those the node started itself. */
export interface NodeRegistries {
  /** 127.0.0.1:PORT per registry ('' the project one, 'private'). */
  addresses: Record<RegistryName, string>;
  /** Registries this node start had to start (pid): stopped with the node, the others are left. */
  started: Partial<Record<RegistryName, number>>;
}

const registryDir = (repoRoot: string, name: RegistryName) => join(repoRoot, '.tools', name ? `registry-${name}` : 'registry');
const script = (repoRoot: string) => join(repoRoot, 'scripts/registry.sh');

function registryPid(repoRoot: string, name: RegistryName): number | undefined {
  try {
    return Number(readFileSync(join(registryDir(repoRoot, name), 'pid'), 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** The private registry's pull credentials (made by scripts/registry.sh at its start). */
export function privateRegistryCredentials(repoRoot: string): { username: string; password: string } {
  const [username, password] = readFileSync(join(registryDir(repoRoot, 'private'), 'credentials'), 'utf8').split(':') as [string, string];
  return { username, password };
}

/** Starts both registries, reusing one that already runs (the e2e runner starts the project one first). */
export function startRegistries(repoRoot: string): NodeRegistries {
  const out: NodeRegistries = { addresses: { '': '', private: '' }, started: {} };
  for (const name of REGISTRIES) {
    const wasUp = spawnSync('bash', [script(repoRoot), 'running', name], { stdio: 'ignore' }).status === 0;
    const r = spawnSync('bash', [script(repoRoot), 'start', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`scripts/registry.sh start ${name} failed (exit ${r.status})`);
    out.addresses[name] = r.stdout.trim();
    if (!wasUp) out.started[name] = registryPid(repoRoot, name)!;
  }
  return out;
}

/** Whether both registries run and answer (`scripts/registry.sh running`). */
export function registriesRunning(repoRoot: string): boolean {
  return REGISTRIES.every((name) => spawnSync('bash', [script(repoRoot), 'running', name], { stdio: 'ignore' }).status === 0);
}

/** Stops the registries a node start started, when they are still the same processes. */
export function stopRegistries(repoRoot: string, started: NodeRegistries['started'] | undefined, log: (line: string) => void): void {
  for (const [name, pid] of Object.entries(started ?? {}) as [RegistryName, number][]) {
    if (registryPid(repoRoot, name) !== pid) continue;
    spawnSync('bash', [script(repoRoot), 'stop', name], { stdio: 'ignore' });
    log(`stopped the ${name || 'project'} registry (pid ${pid})`);
  }
}

function copy(repoRoot: string, tar: string, dest: string, creds?: string): Promise<void> {
  const args = ['copy', '--quiet', '--policy', join(repoRoot, 'scripts/image/policy.json'), '--dest-tls-verify=false', ...(creds ? ['--dest-creds', creds] : []), `oci-archive:${tar}`, `docker://${dest}`];
  return new Promise((resolve, reject) => {
    const child = spawn('skopeo', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`skopeo copy ${tar} to ${dest} failed (exit ${code}): ${stderr.trim()}`))));
  });
}

/**
 * Pushes the node's images (unchanged: skopeo keeps the build's manifest) into their registry:
 * `pando.test/R:T` to the project registry as R:T, `pando-private.test/R:T` to the private one.
 * skopeo skips blobs the registry has, so pushing again is cheap.
 */
export async function publishNodeImages(repoRoot: string, registries: NodeRegistries, images: readonly NodeImage[]): Promise<void> {
  const creds = readFileSync(join(registryDir(repoRoot, 'private'), 'credentials'), 'utf8');
  await Promise.all(images.map(({ tar, name }) => {
    const [host, path] = [name.slice(0, name.indexOf('/')), name.slice(name.indexOf('/') + 1)];
    if (host === PROJECT_REGISTRY_HOST) return copy(repoRoot, tar, `${registries.addresses['']}/${path}`);
    if (host === PRIVATE_REGISTRY_HOST) return copy(repoRoot, tar, `${registries.addresses.private}/${path}`, creds);
    throw new Error(`${name}: the node's images are named ${PROJECT_REGISTRY_HOST}/... or ${PRIVATE_REGISTRY_HOST}/...`);
  }));
}

/**
 * containerd's registry host configuration (CRI `config_path`, containerd docs/hosts.md): one
 * directory per registry name with a hosts.toml whose host is the registry on 127.0.0.1 over plain
 * HTTP. containerd 1.6 needs a `[host]` table: without one 1.6.20 drops the file and resolves the
 * name itself (https://pando.test through the host's DNS, seen with `ctr images pull --hosts-dir`).
 */
export function writeRegistryHosts(dir: string, registries: NodeRegistries): void {
  const hosts: Array<[string, string]> = [
    [PROJECT_REGISTRY_HOST, registries.addresses['']],
    // The project registry by its own address too: the webhook image the e2e runner publishes.
    [registries.addresses[''], registries.addresses['']],
    [PRIVATE_REGISTRY_HOST, registries.addresses.private],
  ];
  for (const [name, address] of hosts) {
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, name, 'hosts.toml'), `server = "http://${address}"\n\n[host."http://${address}"]\n  capabilities = ["pull", "resolve"]\n`);
  }
}
