// One node beside the e2e control plane, when run as root with containerd: kubelet and
// kube-scheduler (built by build.sh), Debian's containerd 1.6 and runc, our CNI plugin and images
// (built by build-node.sh, pushed to the registries on 127.0.0.1 and pulled from there by containerd:
// node-registry.ts). Everything listens on 127.0.0.1 and lives under .tools/cluster/node/. See ../../../README.md ("A node") and NOTES ("A real node") for why each
// setting is what it is.
//
// The node cannot disturb the e2e that expect Pending pods: it is tainted
// pandocore.xyz/test-node=true:NoSchedule at registration, and the only scheduler is one whose only
// profile is `pando-test-node`: a pod runs only if it names that scheduler and tolerates the taint.
//
// Host changes the kubelet makes, all undone by stopNode(): sysctls (vm.overcommit_memory,
// kernel.panic, kernel.panic_on_oops: read before the start, written back after), iptables and
// ip6tables chains (those that did not exist before), the kubepods cgroups, mounts under the node
// dir, and the /var/log/containers links it made.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { freePort } from './free-port.ts';
import { NODE_PRIVATE_IMAGES, publishNodeImages, registriesRunning, startRegistries, stopRegistries, writeRegistryHosts, type NodeImage, type NodeRegistries } from './node-registry.ts';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const NODE_NAME = '127.0.0.1';
export const NODE_SCHEDULER = 'pando-test-node';
export const NODE_TAINT = { key: 'pandocore.xyz/test-node', value: 'true', effect: 'NoSchedule' } as const;
/** Images the node pulls from the project registry (built by build-node.sh; node-registry.ts). */
export const NODE_IMAGES = { pause: 'pando.test/pause:1', sidecar: 'pando.test/sidecar-standin:1' } as const;
/**
 * The stand-in's versions, each its own image `pando.test/sidecar-standin:<version>` (built by
 * build-node.sh, which lists the same): good ones and one whose sidecar exits 1 at every start
 * (CrashLoopBackOff on the kubelet), for the rollout on the node (test/e2e/rollout-node.e2e.ts);
 * one that allocates 256 MiB 2 s after it is ready, above the chart's 128Mi sidecar limit, so the kernel
 * OOM-kills it (test/e2e/node-heal.e2e.ts); one ready 3 s after it starts, for the startup probe
 * (test/e2e/node-startup-probe.e2e.ts).
 */
export const STANDIN_VERSIONS = { good: ['0.1.0', '0.2.0', '0.3.1'], crash: '0.3.0-crash', oom: '0.3.2-oom', slow: '0.3.3-slow' } as const;
const STANDIN_ALL = [...STANDIN_VERSIONS.good, STANDIN_VERSIONS.crash, STANDIN_VERSIONS.oom, STANDIN_VERSIONS.slow];
const STANDIN_TARS = STANDIN_ALL.map((v) => `sidecar-standin-${v}.tar`);

const SYSCTLS = ['vm/overcommit_memory', 'kernel/panic', 'kernel/panic_on_oops'] as const;
const IPTABLES_TABLES = ['filter', 'nat', 'mangle'] as const;
const CGROUP_ROOT = '/sys/fs/cgroup';
const POD_LOG_LINKS = '/var/log/containers';
/**
 * Host directories containerd and the kubelet create whatever their config says (shim sockets in
 * /run/containerd/s, libcni's result cache, the kubelet's device-plugins socket): removed at stop
 * when they did not exist before the start.
 */
const HOST_DIRS = ['/run/containerd', '/var/lib/cni', '/var/lib/kubelet'] as const;
const CNI_RESULTS = '/var/lib/cni/results';

type NodeComponent = 'containerd' | 'kubelet' | 'kube-scheduler';

interface NodeState {
  pids: Partial<Record<NodeComponent, number>>;
  /** Values before the kubelet started, written back at stop. */
  sysctls: Record<string, string>;
  /** `iptables-save`/`ip6tables-save` chains per table before the start: only newer ones are removed. */
  chains: Record<string, string[]>;
  /** Whether /var/log/containers existed before (the kubelet creates it). */
  podLogLinksExisted: boolean;
  /** HOST_DIRS that did not exist before the start. */
  hostDirsAbsent: string[];
  /** libcni's cached results before the start (only newer ones are removed). */
  cniResultsBefore: string[];
  /** The registries this start had to start (pid), stopped with the node. */
  registries?: NodeRegistries['started'];
}

export interface NodePaths {
  dir: string;
  binDir: string;
  nodeToolsDir: string;
  logDir: string;
}

function paths(stateDir: string, repoRoot: string): NodePaths {
  return {
    dir: join(stateDir, 'node'),
    binDir: join(repoRoot, '.tools/bin'),
    nodeToolsDir: join(repoRoot, '.tools/node'),
    logDir: join(stateDir, 'logs'),
  };
}

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Why this machine gets no node (undefined: it gets one). */
export function noNodeReason(): string | undefined {
  if (process.env.PANDO_NODE === '0') return 'PANDO_NODE=0';
  if (process.getuid?.() !== 0) return 'not root (the kubelet and containerd need root)';
  if (process.platform !== 'linux') return `${process.platform} is not Linux`;
  for (const c of ['containerd', 'runc', 'ctr', 'iptables-save', 'skopeo']) if (!which(c)) return `${c} is not installed (run as root: test/cluster/build-node.sh installs it)`;
  return undefined;
}

/**
 * Why this machine gets no node, after installing containerd/runc when missing (root) and building
 * the node's programs and images; undefined: it gets one.
 */
export function prepareNode(repoRoot: string): string | undefined {
  if (process.env.PANDO_NODE === '0') return 'PANDO_NODE=0';
  if (process.getuid?.() !== 0) return 'not root (the kubelet and containerd need root)';
  const r = spawnSync('bash', [join(repoRoot, 'test/cluster/build-node.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) return `test/cluster/build-node.sh failed (exit ${r.status})`;
  return noNodeReason();
}

function stateFile(p: NodePaths): string {
  return join(p.dir, 'state.json');
}

function readNodeState(p: NodePaths): NodeState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(p), 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}


function launch(p: NodePaths, name: string, bin: string, args: string[]): number {
  mkdirSync(p.logDir, { recursive: true });
  const log = openSync(join(p.logDir, `${name}.log`), 'a');
  const child = spawn(bin, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  return child.pid;
}

function readSysctl(name: string): string {
  return readFileSync(`/proc/sys/${name}`, 'utf8').trim();
}

/** Chain names per table, e.g. { 'iptables filter': ['INPUT', ...] } (empty when the tool fails). */
function chains(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const tool of ['iptables', 'ip6tables']) {
    for (const table of IPTABLES_TABLES) {
      const r = spawnSync(`${tool}-save`, ['-t', table], { encoding: 'utf8' });
      out[`${tool} ${table}`] = r.status === 0 ? r.stdout.split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]!) : [];
    }
  }
  return out;
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const points = lines
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(`${dir}/`)))
    .map((m) => m.replace(/\\040/g, ' '));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Every `kubepods` cgroup directory, deepest first, in every v1 controller. */
function kubepodsCgroups(): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    let entries: string[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) walk(join(d, e));
    found.push(d);
  };
  let controllers: string[] = [];
  try {
    controllers = readdirSync(CGROUP_ROOT);
  } catch {
    return [];
  }
  for (const c of controllers) {
    const top = join(CGROUP_ROOT, c, 'kubepods');
    if (existsSync(top)) walk(top);
  }
  return found;
}

function cgroupPids(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) pids.add(Number(l));
    } catch {
      /* gone */
    }
  }
  return [...pids];
}

/** containerd-shim processes started by our containerd (their -address names our socket). */
function shimPids(socket: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const argv = cmdline(Number(e));
    if (argv[0]?.includes('containerd-shim') && argv.includes(socket)) pids.push(Number(e));
  }
  return pids;
}

async function stopPid(pid: number, name: string, log: (line: string) => void, graceMs = 10_000): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < graceMs / 100 && alive(pid); i++) await sleep(100);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  log(`stopped ${name} (pid ${pid})`);
}

function containerdConfig(dir: string): string {
  const q = (s: string) => JSON.stringify(s);
  return `version = 2
root = ${q(join(dir, 'containerd/root'))}
state = ${q(join(dir, 'containerd/state'))}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = ${q(join(dir, 'containerd.sock'))}

[ttrpc]
  address = ${q(join(dir, 'containerd-ttrpc.sock'))}

[plugins."io.containerd.internal.v1.opt"]
  path = ${q(join(dir, 'containerd/opt'))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(NODE_IMAGES.pause)}
  # Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj fails every sandbox in runc.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir (unmounted at stop), not in /run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Where each registry name is served (node-registry.ts): http://127.0.0.1:PORT.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ${q(join(dir, 'registry-hosts'))}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${q(join(dir, 'runc'))}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${q(join(dir, 'cni/bin'))}
    conf_dir = ${q(join(dir, 'cni/conf'))}
`;
}

function kubeletConfig(dir: string, port: number, healthzPort: number): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 here: the default (true since 1.35) makes the kubelet exit.
failCgroupV1: false
cgroupDriver: cgroupfs
address: 127.0.0.1
port: ${port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${healthzPort}
# Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj cannot be set.
oomScoreAdj: 0
# Pods never query the host's resolver (it is on a private address).
resolvConf: ${join(dir, 'resolv.conf')}
containerRuntimeEndpoint: unix://${join(dir, 'containerd.sock')}
podLogsDir: ${join(dir, 'pod-logs')}
# Only 127.0.0.1 can reach it; the API server (logs, exec) presents no client certificate.
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
registerNode: true
registerWithTaints:
- key: ${NODE_TAINT.key}
  value: "${NODE_TAINT.value}"
  effect: ${NODE_TAINT.effect}
failSwapOn: false
# Images are pulled once per node start: no image garbage collection.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
maxPods: 30
serializeImagePulls: false
`;
}

function schedulerConfig(kubeconfig: string): string {
  return `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: ${kubeconfig}
leaderElection:
  leaderElect: false
profiles:
- schedulerName: ${NODE_SCHEDULER}
`;
}

export interface NodeOptions {
  stateDir: string;
  repoRoot: string;
  kubeconfigPath: string;
  /** Whether the node reports Ready (GET /api/v1/nodes/127.0.0.1). */
  nodeReady: () => Promise<boolean>;
  log: (line: string) => void;
}

/**
 * Starts the registries (or reuses them) and pushes the node's images there, starts containerd
 * (which pulls the images when pods need them), starts the kubelet and the scheduler, and waits for the
 * node to be Ready. The kubelet and the scheduler use the admin kubeconfig: the API server runs with
 * RBAC only (no Node authorizer), where a system:node identity is bound to nothing.
 */
export async function startNode(o: NodeOptions): Promise<void> {
  const p = paths(o.stateDir, o.repoRoot);
  const t0 = Date.now();
  await cleanupNode(o.stateDir, o.repoRoot, o.log);
  if (mountsUnder(p.dir).length > 0) throw new Error(`still mounted under ${p.dir}: ${mountsUnder(p.dir).join(', ')}`);
  rmSync(p.dir, { recursive: true, force: true });
  for (const d of ['cni/bin', 'cni/conf', 'containerd', 'kubelet', 'pod-logs']) mkdirSync(join(p.dir, d), { recursive: true });

  const state: NodeState = {
    pids: {},
    sysctls: Object.fromEntries(SYSCTLS.map((s) => [s, readSysctl(s)])),
    chains: chains(),
    podLogLinksExisted: existsSync(POD_LOG_LINKS),
    hostDirsAbsent: HOST_DIRS.filter((d) => !existsSync(d)),
    cniResultsBefore: existsSync(CNI_RESULTS) ? readdirSync(CNI_RESULTS) : [],
  };
  const save = () => writeFileSync(stateFile(p), JSON.stringify(state, null, 2));
  save();

  copyFileSync(join(p.nodeToolsDir, 'bin/pando-cni'), join(p.dir, 'cni/bin/pando-cni'));
  copyFileSync('/usr/lib/cni/loopback', join(p.dir, 'cni/bin/loopback'));
  spawnSync('chmod', ['0755', join(p.dir, 'cni/bin/pando-cni'), join(p.dir, 'cni/bin/loopback')]);
  writeFileSync(join(p.dir, 'cni/conf/10-pando.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'pando', plugins: [{ type: 'pando-cni' }] }));
  writeFileSync(join(p.dir, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  const registries = startRegistries(o.repoRoot);
  state.registries = registries.started;
  save();
  const images: NodeImage[] = [
    { tar: 'pause.tar', name: NODE_IMAGES.pause },
    { tar: 'sidecar-standin.tar', name: NODE_IMAGES.sidecar },
    ...STANDIN_TARS.map((tar) => ({ tar, name: `pando.test/sidecar-standin:${tar.slice('sidecar-standin-'.length, -'.tar'.length)}` })),
    { tar: 'sidecar-standin.tar', name: NODE_PRIVATE_IMAGES.sidecar },
  ].map((i) => ({ ...i, tar: join(p.nodeToolsDir, 'images', i.tar) }));
  const tPush = Date.now();
  await publishNodeImages(o.repoRoot, registries, images);
  writeRegistryHosts(join(p.dir, 'registry-hosts'), registries);
  o.log(`${images.length} images pushed in ${Date.now() - tPush} ms: pando.test/* to the project registry ${registries.addresses['']}, ${NODE_PRIVATE_IMAGES.sidecar} to the private one ${registries.addresses.private} (htpasswd)`);
  writeFileSync(join(p.dir, 'containerd.toml'), containerdConfig(p.dir));
  const socket = join(p.dir, 'containerd.sock');

  const died = (): string | undefined => (Object.entries(state.pids) as [string, number][]).find(([, pid]) => !alive(pid))?.[0];
  const waitFor = async (what: string, timeoutMs: number, check: () => Promise<boolean> | boolean) => {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
      const dead = died();
      if (dead) throw new Error(`${dead} exited while waiting for ${what}; see ${p.logDir}/${dead}.log`);
      if (await Promise.resolve().then(check).catch(() => false)) return;
      await sleep(250);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; see ${p.logDir}`);
  };
  const ctr = (...args: string[]) => spawnSync('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args], { encoding: 'utf8' });

  state.pids.containerd = launch(p, 'containerd', which('containerd')!, ['--config', join(p.dir, 'containerd.toml')]);
  save();
  await waitFor('containerd', 30_000, () => existsSync(socket) && ctr('version').status === 0);
  o.log(`containerd ${spawnSync('containerd', ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ')[2]} ready; it pulls ${Object.values(NODE_IMAGES).join(', ')} and the stand-in's versions ${STANDIN_ALL.join(', ')} from the project registry`);

  const [port, healthzPort] = [await freePort(), await freePort()];
  writeFileSync(join(p.dir, 'kubelet.yaml'), kubeletConfig(p.dir, port, healthzPort));
  state.pids.kubelet = launch(p, 'kubelet', join(p.binDir, 'kubelet'), [
    `--config=${join(p.dir, 'kubelet.yaml')}`,
    `--kubeconfig=${o.kubeconfigPath}`,
    // --node-ip=127.0.0.1 is refused (loopback); this names the node 127.0.0.1 with that address.
    `--hostname-override=${NODE_NAME}`,
    `--root-dir=${join(p.dir, 'kubelet')}`,
    `--cert-dir=${join(p.dir, 'kubelet/pki')}`,
    '--v=1',
  ]);
  save();
  writeFileSync(join(p.dir, 'scheduler.yaml'), schedulerConfig(o.kubeconfigPath));
  state.pids['kube-scheduler'] = launch(p, 'kube-scheduler', join(p.binDir, 'kube-scheduler'), [
    `--config=${join(p.dir, 'scheduler.yaml')}`,
    '--secure-port=0',
    '--v=1',
  ]);
  save();
  await waitFor(`node ${NODE_NAME} Ready`, 90_000, o.nodeReady);
  o.log(`node ${NODE_NAME} Ready in ${Date.now() - t0} ms (kubelet :${port}, scheduler ${NODE_SCHEDULER}, taint ${NODE_TAINT.key}=${NODE_TAINT.value}:${NODE_TAINT.effect})`);
}

/**
 * True when the recorded node processes are all alive and the registries it pulls from answer (one
 * stopped under it, say by another run's `scripts/registry.sh stop`, makes the next start replace
 * the node, with registries and images anew).
 */
export function nodeRunning(stateDir: string, repoRoot: string): boolean {
  const s = readNodeState(paths(stateDir, repoRoot));
  return !!s && (['containerd', 'kubelet', 'kube-scheduler'] as const).every((c) => s.pids[c] !== undefined && alive(s.pids[c]!)) && registriesRunning(repoRoot);
}

/**
 * Stops the node and undoes its host changes. Safe to call with no node (and twice): processes come
 * from the state file (checked against their command line), mounts and cgroups are found on the host.
 */
export async function cleanupNode(stateDir: string, repoRoot: string, log: (line: string) => void): Promise<void> {
  const p = paths(stateDir, repoRoot);
  const state = readNodeState(p);
  const socket = join(p.dir, 'containerd.sock');
  const pidOf = (c: NodeComponent): number | undefined => {
    const pid = state?.pids[c];
    return pid !== undefined && cmdline(pid).some((a) => a.includes(c === 'containerd' ? 'containerd' : join(p.binDir, c)) || a.includes(p.dir)) ? pid : undefined;
  };
  for (const c of ['kube-scheduler', 'kubelet'] as const) {
    const pid = pidOf(c);
    if (pid !== undefined) await stopPid(pid, c, log);
  }
  // The pods' processes (in the kubepods cgroups), then the shims, then containerd. Only when this
  // checkout started a node: another kubelet on the host would own the kubepods cgroups.
  const podPids = state ? cgroupPids(kubepodsCgroups()) : [];
  for (const pid of podPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (podPids.length > 0) log(`killed ${podPids.length} pod processes`);
  const shims = existsSync(p.dir) ? shimPids(socket) : [];
  for (const pid of shims) await stopPid(pid, 'containerd-shim', () => {}, 3_000);
  if (shims.length > 0) log(`stopped ${shims.length} containerd shims`);
  const containerd = pidOf('containerd');
  if (containerd !== undefined) await stopPid(containerd, 'containerd', log);

  const mounts = existsSync(p.dir) ? mountsUnder(p.dir) : [];
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  if (mounts.length > 0) log(`unmounted ${mounts.length} mounts under ${p.dir} (${mountsUnder(p.dir).length} left)`);

  const cgroups = state ? kubepodsCgroups() : [];
  let removed = 0;
  for (const d of cgroups) {
    for (let i = 0; i < 20; i++) {
      try {
        rmdirSync(d);
        removed++;
        break;
      } catch {
        await sleep(50);
      }
    }
  }
  if (cgroups.length > 0) log(`removed ${removed} of ${cgroups.length} kubepods cgroups`);

  if (state) {
    for (const [name, value] of Object.entries(state.sysctls)) {
      if (readSysctl(name) !== value) {
        writeFileSync(`/proc/sys/${name}`, `${value}\n`);
        log(`restored ${name.replace('/', '.')} = ${value}`);
      }
    }
    const now = chains();
    for (const [key, before] of Object.entries(state.chains)) {
      const [tool, table] = key.split(' ') as [string, string];
      const added = (now[key] ?? []).filter((c) => !before.includes(c));
      if (added.length === 0) continue;
      // Rules in chains that stay and jump to an added chain go first, then the chains themselves.
      const rules = spawnSync(`${tool}-save`, ['-t', table], { encoding: 'utf8' }).stdout.split('\n');
      for (const rule of rules) {
        const m = /^-A (\S+) (.*)$/.exec(rule);
        if (!m || added.includes(m[1]!)) continue;
        if (added.some((c) => rule.includes(`-j ${c}`))) spawnSync('sh', ['-c', `${tool} -t ${table} -D ${m[1]} ${m[2]}`]);
      }
      for (const c of added) spawnSync(tool, ['-t', table, '-F', c]);
      for (const c of added) spawnSync(tool, ['-t', table, '-X', c]);
      log(`removed ${tool} ${table} chains ${added.join(', ')}`);
    }
    if (existsSync(POD_LOG_LINKS)) {
      for (const e of readdirSync(POD_LOG_LINKS)) {
        try {
          if (readlinkSync(join(POD_LOG_LINKS, e)).startsWith(p.dir)) rmSync(join(POD_LOG_LINKS, e));
        } catch {
          /* not a link */
        }
      }
      if (!state.podLogLinksExisted && readdirSync(POD_LOG_LINKS).length === 0) rmdirSync(POD_LOG_LINKS);
    }
    for (const d of state.hostDirsAbsent ?? []) {
      if (!existsSync(d) || mountsUnder(d).length > 0) continue;
      rmSync(d, { recursive: true, force: true });
      log(`removed ${d} (it did not exist before the node)`);
    }
    if (!(state.hostDirsAbsent ?? []).includes('/var/lib/cni') && existsSync(CNI_RESULTS)) {
      const added = readdirSync(CNI_RESULTS).filter((e) => !(state.cniResultsBefore ?? []).includes(e));
      for (const e of added) rmSync(join(CNI_RESULTS, e), { force: true });
      if (added.length > 0) log(`removed ${added.length} cached CNI results`);
    }
    stopRegistries(repoRoot, state.registries, log);
    rmSync(stateFile(p), { force: true });
  }
  // Nothing is mounted under the node dir any more: its files (containerd's root) can go.
  if (existsSync(p.dir) && mountsUnder(p.dir).length === 0) rmSync(p.dir, { recursive: true, force: true });
}
