// The e2e control plane: etcd + kube-apiserver + kube-controller-manager on 127.0.0.1, built by
// build.sh into .tools/bin/, state (certificates, kubeconfig, logs, etcd data) in .tools/cluster/.
// As root with containerd, also one node (node.ts): kubelet, containerd and a scheduler that only
// schedules pods naming it (and tolerating the node's taint); every other pod stays Pending, which
// is all admission tests need. PANDO_NODE=0: no node.
//
// The processes are detached so that `npm run cluster:up` can return and several test files can
// share one cluster; `stopCluster()` (or `npm run cluster:down`) ends them by the pids it recorded.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { freePort } from './free-port.ts';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { createClusterPki, type ClusterPki } from './pki.ts';
import { cleanupNode, NODE_NAME, nodeRunning, prepareNode, startNode } from './node.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN_DIR = join(REPO_ROOT, '.tools/bin');
export const STATE_DIR = join(REPO_ROOT, '.tools/cluster');
const STATE_FILE = join(STATE_DIR, 'state.json');
export const KUBECONFIG_PATH = join(STATE_DIR, 'kubeconfig');

const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager'] as const;
type Component = (typeof COMPONENTS)[number];

interface State {
  pids: Record<Component, number>;
  apiserverPort: number;
  etcdPort: number;
  startedAt: string;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body (or the raw text when it is not JSON). */
  body: any;
  /** The `Warning` headers' texts (RFC 7234 format `299 - "text"`, unquoted here). */
  warnings: string[];
}

export interface Cluster {
  server: string;
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  caPem: string;
  /** True when this call started the processes (and so `stop()` ends them). */
  started: boolean;
  /** A raw request with the admin credentials: for headers (warnings), dryRun, and exact statuses. */
  request(method: string, path: string, body?: unknown, contentType?: string): Promise<ApiResponse>;
  /** Ends the processes if this call started them; a reused cluster is left running. */
  stop(): Promise<void>;
}

function readState(): State | undefined {
  if (!existsSync(STATE_FILE)) return undefined;
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Alive and still running our binary (a recorded pid may have been reused after a reboot). */
function ours(pid: number, component: Component): boolean {
  if (!alive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === join(BIN_DIR, component);
  } catch {
    return false;
  }
}


function pkiFromDisk(): ClusterPki {
  const r = (f: string) => readFileSync(join(STATE_DIR, 'pki', f), 'utf8');
  return {
    ca: { certPem: r('ca.crt'), keyPem: r('ca.key') },
    apiserver: { certPem: r('apiserver.crt'), keyPem: r('apiserver.key') },
    admin: { certPem: r('admin.crt'), keyPem: r('admin.key') },
    serviceAccount: { privateKeyPem: r('sa.key'), publicKeyPem: r('sa.pub') },
  };
}

function writePki(pki: ClusterPki): void {
  const dir = join(STATE_DIR, 'pki');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const w = (f: string, s: string) => writeFileSync(join(dir, f), s, { mode: 0o600 });
  w('ca.crt', pki.ca.certPem);
  w('ca.key', pki.ca.keyPem);
  w('apiserver.crt', pki.apiserver.certPem);
  w('apiserver.key', pki.apiserver.keyPem);
  w('admin.crt', pki.admin.certPem);
  w('admin.key', pki.admin.keyPem);
  w('sa.key', pki.serviceAccount.privateKeyPem);
  w('sa.pub', pki.serviceAccount.publicKeyPem);
}

function kubeconfigYaml(server: string, pki: ClusterPki): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
- name: pando-e2e
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(pki.ca.certPem)}
users:
- name: admin
  user:
    client-certificate-data: ${b64(pki.admin.certPem)}
    client-key-data: ${b64(pki.admin.keyPem)}
contexts:
- name: pando-e2e
  context:
    cluster: pando-e2e
    user: admin
current-context: pando-e2e
`;
}

function apiRequest(server: string, pki: ClusterPki, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<ApiResponse> {
  const url = new URL(path, server);
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((res, rej) => {
    const req = httpsRequest(
      url,
      {
        method,
        ca: pki.ca.certPem,
        cert: pki.admin.certPem,
        key: pki.admin.keyPem,
        headers: {
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) }),
        },
        timeout: 30_000,
      },
      (resp) => {
        const chunks: Buffer[] = [];
        resp.on('data', (c: Buffer) => chunks.push(c));
        resp.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON: keep the text */
          }
          const raw = resp.headers.warning;
          const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
          // The API server sends one header per warning; node joins repeated headers with ", ".
          // Header values reach node as latin1; the API server sends UTF-8 (a truncated warning ends in '…').
          const warnings = list
            .map((h) => Buffer.from(h, 'latin1').toString('utf8'))
            .flatMap((h) => h.match(/\d{3} [^ ]+ "(?:[^"\\]|\\.)*"/g) ?? [h])
            .map((w) => w.replace(/^\d{3} [^ ]+ "/, '').replace(/"$/, '').replace(/\\(.)/g, '$1'));
          res({ status: resp.statusCode ?? 0, headers: resp.headers, body: parsed, warnings });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', rej);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, died?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    const dead = died?.();
    if (dead) throw new Error(`${dead} exited while waiting for ${what}; see ${join(STATE_DIR, 'logs')}`);
    if (await check().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; see ${join(STATE_DIR, 'logs')}`);
}

function launch(component: Component, args: string[]): number {
  const bin = join(BIN_DIR, component);
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run bash test/cluster/build.sh`);
  const logDir = join(STATE_DIR, 'logs');
  mkdirSync(logDir, { recursive: true });
  const log = openSync(join(logDir, `${component}.log`), 'a');
  const child = spawn(bin, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${component}`);
  return child.pid;
}

async function healthy(state: State, pki: ClusterPki): Promise<boolean> {
  if (!COMPONENTS.every((c) => ours(state.pids[c], c))) return false;
  const r = await apiRequest(`https://127.0.0.1:${state.apiserverPort}`, pki, 'GET', '/readyz').catch(() => undefined);
  return r?.status === 200;
}

function makeCluster(state: State, pki: ClusterPki, started: boolean): Cluster {
  const server = `https://127.0.0.1:${state.apiserverPort}`;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(KUBECONFIG_PATH);
  return {
    server,
    kubeconfigPath: KUBECONFIG_PATH,
    kubeConfig,
    caPem: pki.ca.certPem,
    started,
    request: (method, path, body, contentType) => apiRequest(server, pki, method, path, body, contentType),
    stop: async () => {
      if (started) await stopCluster();
    },
  };
}

/** Starts the control plane, or reuses the one that is already running and ready. */
export async function startCluster(log: (line: string) => void = () => {}): Promise<Cluster> {
  const previous = readState();
  if (previous) {
    const pki = pkiFromDisk();
    if (await healthy(previous, pki)) {
      log(`reusing the cluster at https://127.0.0.1:${previous.apiserverPort}`);
      if (!nodeRunning(STATE_DIR, REPO_ROOT)) await maybeStartNode(`https://127.0.0.1:${previous.apiserverPort}`, pki, log);
      return makeCluster(previous, pki, false);
    }
    log('a previous cluster is not healthy: stopping what is left of it');
    await stopCluster();
  }
  const t0 = Date.now();
  await cleanupNode(STATE_DIR, REPO_ROOT, log);
  rmSync(STATE_DIR, { recursive: true, force: true });
  mkdirSync(STATE_DIR, { recursive: true });
  const pki = await createClusterPki();
  writePki(pki);
  const p = (f: string) => join(STATE_DIR, 'pki', f);
  const [etcdPort, etcdPeerPort, apiserverPort] = [await freePort(), await freePort(), await freePort()];
  const server = `https://127.0.0.1:${apiserverPort}`;
  writeFileSync(KUBECONFIG_PATH, kubeconfigYaml(server, pki), { mode: 0o600 });

  const pids = {} as Record<Component, number>;
  const state: State = { pids, apiserverPort, etcdPort, startedAt: new Date().toISOString() };
  const save = () => writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));
  const died = () => COMPONENTS.find((c) => pids[c] !== undefined && !alive(pids[c]));

  pids.etcd = launch('etcd', [
    `--data-dir=${join(STATE_DIR, 'etcd-data')}`,
    `--listen-client-url=http://127.0.0.1:${etcdPort}`,
    `--listen-peer-url=http://127.0.0.1:${etcdPeerPort}`,
  ]);
  save();
  await waitFor('etcd', 30_000, async () => (await fetch(`http://127.0.0.1:${etcdPort}/health`)).ok, died);
  log(`etcd ready on 127.0.0.1:${etcdPort}`);

  pids['kube-apiserver'] = launch('kube-apiserver', [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${apiserverPort}`,
    `--cert-dir=${join(STATE_DIR, 'pki')}`,
    `--tls-cert-file=${p('apiserver.crt')}`,
    `--tls-private-key-file=${p('apiserver.key')}`,
    `--client-ca-file=${p('ca.crt')}`,
    `--service-account-key-file=${p('sa.pub')}`,
    `--service-account-signing-key-file=${p('sa.key')}`,
    '--service-account-issuer=https://kubernetes.default.svc',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--authorization-mode=RBAC',
    '--allow-privileged=true', // as kubeadm and managed clusters run it: PodSecurity decides
    // The admission chain production has; the defaults add more, these are the ones that matter here.
    '--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,LimitRanger,ResourceQuota,DefaultStorageClass,MutatingAdmissionWebhook,ValidatingAdmissionWebhook',
    // Lean: no alpha APIs, no profiling, no endpoints for 127.0.0.1 (it is not a valid endpoint IP).
    '--runtime-config=api/alpha=false',
    '--endpoint-reconciler-type=none',
    '--profiling=false',
    '--v=1',
  ]);
  save();
  await waitFor('kube-apiserver /readyz', 90_000, async () => (await apiRequest(server, pki, 'GET', '/readyz')).status === 200, died);
  log(`kube-apiserver ready on ${server}`);

  pids['kube-controller-manager'] = launch('kube-controller-manager', [
    `--kubeconfig=${KUBECONFIG_PATH}`,
    `--authentication-kubeconfig=${KUBECONFIG_PATH}`,
    `--authorization-kubeconfig=${KUBECONFIG_PATH}`,
    '--bind-address=127.0.0.1',
    '--secure-port=0',
    '--leader-elect=false',
    `--service-account-private-key-file=${p('sa.key')}`,
    `--root-ca-file=${p('ca.crt')}`,
    '--use-service-account-credentials=false',
    '--profiling=false',
    '--v=1',
  ]);
  save();
  // The ServiceAccount admission plugin rejects pods until the controller-manager has created the
  // namespace's "default" ServiceAccount: that is the sign it works.
  await waitFor('the controller-manager (default ServiceAccount)', 60_000,
    async () => (await apiRequest(server, pki, 'GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200, died);
  log(`kube-controller-manager running; cluster up in ${Date.now() - t0} ms`);
  await maybeStartNode(server, pki, log);
  return makeCluster(state, pki, true);
}

/** Starts the node when this machine can have one, or says in one line why not. */
async function maybeStartNode(server: string, pki: ClusterPki, log: (line: string) => void): Promise<void> {
  const why = prepareNode(REPO_ROOT);
  if (why) {
    log(`no node: ${why}`);
    return;
  }
  const start = startNode({
    stateDir: STATE_DIR,
    repoRoot: REPO_ROOT,
    kubeconfigPath: KUBECONFIG_PATH,
    log,
    nodeReady: async () => {
      const r = await apiRequest(server, pki, 'GET', `/api/v1/nodes/${NODE_NAME}`);
      return r.status === 200 && (r.body?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
    },
  });
  // A node that fails to start is an error (PANDO_NODE=0 runs without one), and leaves nothing behind.
  await start.catch(async (err: unknown) => {
    await cleanupNode(STATE_DIR, REPO_ROOT, log);
    throw err;
  });
}

/** Ends the processes recorded in the state file (only those), and forgets them. */
export async function stopCluster(log: (line: string) => void = () => {}): Promise<void> {
  // The node first (it undoes its host changes even when the control plane's state is gone).
  await cleanupNode(STATE_DIR, REPO_ROOT, log);
  const state = readState();
  if (!state) {
    log('no cluster state: nothing to stop');
    return;
  }
  for (const c of [...COMPONENTS].reverse()) {
    const pid = state.pids[c];
    if (pid === undefined || !ours(pid, c)) continue;
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    log(`stopped ${c} (pid ${pid})`);
  }
  rmSync(STATE_FILE, { force: true });
  rmSync(join(STATE_DIR, 'etcd-data'), { recursive: true, force: true });
}
