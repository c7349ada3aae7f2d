// npm run bench [-- --quick] [-- --servers=webhook,ceiling] [-- --loads=typical-create] [-- --cluster]
//
// Runs the webhook (compiled JavaScript, as in production), the ceiling (a bare Node HTTPS server
// answering a fixed AdmissionReview) and the Go peer one after another on the same certificate and
// the same six loads, each server pinned to core 0 and the load generator to core 1 where taskset
// allows, and writes a markdown table and JSON to bench/results/ (and, after a full run of
// everything, the table to bench/RESULTS.md). Asserts that each server answers each load correctly,
// never anything about timings.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { createCa, issueServingCert } from '../app/tls/certs.ts';
import { ENV } from '../app/contract.ts';
import { post, pacedLatency, throughput, type LatencyResult, type Target, type ThroughputResult } from './load.ts';
import { renderCluster, runCluster } from './cluster.ts';
import { CLUSTER_HEADING, writeFullRun, writeSection } from './results-file.ts';
import { renderFuzz, runFuzz, type FuzzResult } from './fuzz.ts';
import { overloadRuns, renderOverload, type OverloadResult } from './overload.ts';
import { summariseProfile, type ProfileEntry } from './profile.ts';
import { renderMarkdown } from './report.ts';
import { BENCH_ENV, benchConfig, generateLoads, type Load, type Size } from './reviews.ts';

const ROOT = join(import.meta.dirname, '..');
const RESULTS_DIR = join(ROOT, 'bench', 'results');
let WEBHOOK_MAIN = join(ROOT, 'build', 'app', 'main.js');
const GO_PEER = join(ROOT, '.tools', 'bin', 'pando-go-peer');
const GO_PEER_TYPED = join(ROOT, '.tools', 'bin', 'pando-go-peer-typed');
const NODE = process.execPath;

export type ServerId = 'ceiling' | 'webhook' | 'go-peer' | 'go-typed';
export const SERVERS: readonly ServerId[] = ['ceiling', 'webhook', 'go-peer', 'go-typed'];

export interface Settings {
  quick: boolean;
  connections: number;
  warmupSeconds: number;
  throughputSeconds: number;
  latencySeconds: Record<Size, number>;
  /** Paced at the same rate before each latency run, not counted. */
  latencyWarmupSeconds: number;
  /** Fixed rate of the latency runs, per pod size. */
  latencyRate: Record<Size, number>;
  coldStarts: number;
  profileSeconds: number;
  pinned: boolean;
}

export interface LoadResult {
  load: string;
  bytes: number;
  throughput: ThroughputResult;
  /** Server CPU time (user + system) during the throughput run, per answered review. */
  cpuMicrosPerReview: number;
  latency: LatencyResult;
  /** Largest RSS seen during the throughput run (warm-up included), MiB. */
  rssMiB: number;
}

export interface ServerResult {
  server: ServerId;
  /** Each cold start (process start to first successful review), ms. */
  coldStartsMs: number[];
  idleRssMiB: number;
  tls: string;
  loads: LoadResult[];
}

export interface Run {
  date: string;
  settings: Settings;
  machine: { cpu: string; cores: number; memoryGiB: number; kernel: string };
  /** 1-minute load average of the machine before and after the measurements: others' work shows here. */
  loadAverage: { before: number; after: number };
  versions: Record<string, string>;
  /** parseMicros: JSON.parse of the review alone, in the harness process (best of several rounds). */
  loads: Array<{ id: string; bytes: number; patched: boolean; parseMicros: number }>;
  servers: ServerResult[];
  profile: { load: string; seconds: number; top: ProfileEntry[] } | null;
  /** The burst of 3 MiB reviews in a memory cgroup (bench/overload.ts). */
  overload: OverloadResult[] | null;
  /** Generated and byte-mutated reviews, every answer checked (bench/fuzz.ts). */
  fuzz: FuzzResult | null;
}

function parseArgs(argv: string[]) {
  const quick = argv.includes('--quick');
  const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const servers = (value('servers')?.split(',') ?? SERVERS) as ServerId[];
  for (const s of servers) if (!SERVERS.includes(s)) throw new Error(`bench: unknown server ${s} (${SERVERS.join(', ')})`);
  // --webhook-main=PATH runs another build of the webhook (e.g. the previous commit's) for an A/B.
  const webhookMain = value('webhook-main');
  return { quick, servers, loads: value('loads')?.split(','), profile: !argv.includes('--no-profile'), webhookMain, cluster: argv.includes('--cluster') };
}

function log(message: string) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function canPin(): boolean {
  if (cpus().length < 2 || !existsSync('/usr/bin/taskset')) return false;
  // The load generator (this process and its threads) on core 1; servers are started on core 0.
  return spawnSync('/usr/bin/taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' }).status === 0;
}

function goBinary(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return onPath;
  return existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined;
}

function buildGoPeer() {
  const result = spawnSync('bash', [join(ROOT, 'bench', 'go-peer', 'build.sh')], { stdio: ['ignore', 2, 'inherit'] });
  if (result.status !== 0) throw new Error('bench: building the Go peer failed (see above)');
}

export function rssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
    return kb / 1024;
  } catch {
    return Number.NaN;
  }
}

// USER_HZ: the unit of utime and stime in /proc/PID/stat; 100 on every Linux architecture we run on.
export const CLOCK_TICKS_PER_SECOND = 100;

export function cpuTicks(pid: number): number {
  try {
    // utime and stime: fields 14 and 15, after the parenthesised command name.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return Number.NaN;
  }
}

/**
 * Waits until the server stops using CPU: autocannon closes its connections when its time is up,
 * but a server still works through the reviews it had already read (seconds' worth for 1 MiB
 * reviews), which would land in the next measurement.
 */
export async function quiesce(pid: number): Promise<void> {
  const deadline = performance.now() + 30_000;
  let last = cpuTicks(pid);
  while (performance.now() < deadline) {
    await sleep(100);
    const now = cpuTicks(pid);
    if (!(now - last > 1)) return;
    last = now;
  }
}

export interface Files {
  dir: string;
  cert: string;
  key: string;
  ca: string;
  goConfig: string;
}

export async function prepareFiles(): Promise<Files> {
  const dir = mkdtempSync(join(tmpdir(), 'pando-bench-'));
  const now = new Date();
  const ca = await createCa('pando bench CA', now, 1);
  const leaf = await issueServingCert(ca, ['127.0.0.1'], now, 1);
  const files = { dir, cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: ca.certPem, goConfig: join(dir, 'go-peer.json') };
  writeFileSync(files.cert, leaf.certPem);
  writeFileSync(files.key, leaf.keyPem, { mode: 0o600 });
  return files;
}

function writeGoConfig(files: Files, plan: ReturnType<typeof generateLoads>['plan']) {
  const config = benchConfig();
  writeFileSync(
    files.goConfig,
    JSON.stringify({
      image: config.sidecar.image,
      version: plan.version,
      configHash: plan.configHash,
      native: plan.native,
      defaultMode: plan.defaultMode,
      namespace: plan.ownNamespace,
      excludedNamespaces: [...plan.excludedNamespaces],
      requests: plan.resources.requests,
      limits: plan.resources.limits,
      runAsUser: config.sidecar.runAsUser,
    }),
  );
}

export interface Started {
  child: ChildProcess;
  target: Target;
  coldStartMs: number;
  stderr: () => string;
}

/** The node flags of the image's ENTRYPOINT: the webhook is measured as the image runs it. */
export function imageNodeFlags(): string[] {
  const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, 'Containerfile'), 'utf8'))?.[1];
  return entrypoint ? (JSON.parse(entrypoint) as string[]).filter((arg) => arg.startsWith('--')) : [];
}

function command(server: ServerId, port: number, metricsPort: number, files: Files, nodeFlags: string[], webhookMain: string) {
  switch (server) {
    case 'webhook':
      return {
        file: NODE,
        args: [...imageNodeFlags(), ...nodeFlags, webhookMain],
        env: {
          ...process.env,
          ...BENCH_ENV,
          [ENV.host]: '127.0.0.1',
          [ENV.port]: String(port),
          [ENV.metricsPort]: String(metricsPort),
          [ENV.tlsCertFile]: files.cert,
          [ENV.tlsKeyFile]: files.key,
        },
      };
    case 'ceiling':
      return { file: NODE, args: [...nodeFlags, join(ROOT, 'bench', 'ceiling.mjs'), String(port), files.cert, files.key], env: process.env };
    case 'go-peer':
    case 'go-typed':
      return { file: server === 'go-peer' ? GO_PEER : GO_PEER_TYPED, args: [`-addr=127.0.0.1:${port}`, `-cert=${files.cert}`, `-key=${files.key}`, `-config=${files.goConfig}`], env: process.env };
  }
}

export interface StartOptions {
  nodeFlags?: string[];
  webhookMain?: string;
  /** More environment for the server. */
  env?: Record<string, string>;
  /** A cgroup's `cgroup.procs`: the server starts inside it, so every page it touches is charged. */
  cgroupProcs?: string;
}

/** Starts a server on core 0 and waits for its first successful review. */
export async function start(server: ServerId, files: Files, probe: Load, pinned: boolean, options: StartOptions = {}): Promise<Started> {
  const port = await freePort();
  const metricsPort = await freePort();
  const command_ = command(server, port, metricsPort, files, options.nodeFlags ?? [], options.webhookMain ?? WEBHOOK_MAIN);
  const env = { ...command_.env, ...options.env };
  const target = { port, ca: files.ca };
  const argv = [...(pinned ? ['/usr/bin/taskset', '-c', '0'] : []), command_.file, ...command_.args];
  // A process moved into a cgroup later keeps its earlier pages uncharged: a shell joins first, then execs.
  const [file, ...args] = options.cgroupProcs ? ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', options.cgroupProcs, ...argv] : argv;
  const began = performance.now();
  // Logs go nowhere, as cheaply as the kernel allows; stderr is kept for error messages.
  const child = spawn(file!, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const deadline = began + 20_000;
  for (;;) {
    if (exited) throw new Error(`bench: ${server} exited before answering: ${stderr.trim()}`);
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`bench: ${server} did not answer within 20 s: ${stderr.trim()}`);
    }
    try {
      const answer = await post(target, probe.body);
      if (answer.status === 200) break;
    } catch {
      // not listening yet
    }
    await sleep(2);
  }
  return { child, target, coldStartMs: performance.now() - began, stderr: () => stderr };
}

export async function stop(started: Started): Promise<void> {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** The server's answer to each load must be right: the patch yields the injected pod, or no patch. */
async function checkAnswers(server: ServerId, target: Target, loads: Load[]): Promise<string> {
  let tls = '';
  for (const load of loads) {
    const answer = await post(target, load.body);
    tls = `${answer.protocol} ${answer.cipher}`;
    const fail = (why: string) => new Error(`bench: ${server} answered ${load.id} wrongly: ${why}`);
    if (answer.status !== 200) throw fail(`HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
    const review = JSON.parse(answer.body) as { response?: { uid?: string; allowed?: boolean; patch?: string; patchType?: string } };
    if (review.response?.allowed !== true) throw fail('not allowed');
    if (server === 'ceiling') continue;
    const sentUid = (JSON.parse(load.body.toString('utf8')) as { request: { uid: string } }).request.uid;
    if (review.response.uid !== sentUid) throw fail(`uid ${review.response.uid}`);
    if (!load.patched) {
      if (review.response.patch) throw fail('a patch for an injected pod (reinvocation must be a no-op)');
      continue;
    }
    if (!review.response.patch || review.response.patchType !== 'JSONPatch') throw fail('no JSONPatch');
    const patch = JSON.parse(Buffer.from(review.response.patch, 'base64').toString('utf8')) as Operation[];
    const patchedPod = fastJsonPatch.applyPatch(structuredClone(load.pod), patch, true, false).newDocument;
    if (!isDeepStrictEqual(patchedPod, load.expectedPod)) throw fail('the patched pod differs from the injected pod');
  }
  return tls;
}

async function measureLoad(server: ServerId, running: Started, load: Load, settings: Settings): Promise<LoadResult> {
  const pid = running.child.pid!;
  // Latency first, at its fixed rate after a paced warm-up that is not counted: the steady state at
  // that rate, not the garbage collector still working off the flood of a throughput run.
  const rate = settings.latencyRate[load.size];
  await pacedLatency(running.target, load.body, rate, settings.latencyWarmupSeconds);
  const latency = await pacedLatency(running.target, load.body, rate, settings.latencySeconds[load.size]);
  await quiesce(pid);

  let rss = 0;
  const sampler = setInterval(() => {
    rss = Math.max(rss, rssMiB(pid));
  }, 100);
  if (settings.warmupSeconds > 0) {
    await throughput(running.target, load.body, settings.connections, settings.warmupSeconds);
    await quiesce(pid);
  }
  const ticksBefore = cpuTicks(pid);
  const measured = await throughput(running.target, load.body, settings.connections, settings.throughputSeconds);
  // CPU time per review stays meaningful when other work shares the machine; reviews/s does not.
  const cpuMicrosPerReview = ((cpuTicks(pid) - ticksBefore) * (1e6 / CLOCK_TICKS_PER_SECOND)) / Math.max(1, measured.ok);
  clearInterval(sampler);
  rss = Math.max(rss, rssMiB(pid));
  await quiesce(pid);
  log(
    `${server.padEnd(8)} ${load.id.padEnd(21)} ${measured.reviewsPerSecond.toFixed(0).padStart(6)}/s ${cpuMicrosPerReview.toFixed(0).padStart(6)} us cpu  ` +
      `p50 ${latency.p50Ms.toFixed(2)} p99 ${latency.p99Ms.toFixed(2)} p99.9 ${latency.p999Ms.toFixed(2)} ms @${latency.rate}/s  rss ${rss.toFixed(0)} MiB` +
      (measured.non2xx + measured.errors + latency.failed > 0 ? `  (failures: ${measured.non2xx} non-2xx, ${measured.errors} errors, ${latency.failed} latency)` : ''),
  );
  return { load: load.id, bytes: load.body.length, throughput: measured, cpuMicrosPerReview, latency, rssMiB: rss };
}

/**
 * Cold starts one server after another (keeping the last start of each running), checks every
 * answer, then measures load by load with the servers taking turns, so that whatever else the
 * machine does at a moment weighs on all three alike.
 */
async function measureAll(servers: readonly ServerId[], files: Files, loads: Load[], settings: Settings): Promise<ServerResult[]> {
  const running = new Map<ServerId, Started>();
  const results = new Map<ServerId, ServerResult>();
  try {
    for (const server of servers) {
      const coldStartsMs: number[] = [];
      for (let i = 0; i < settings.coldStarts; i++) {
        const previous = running.get(server);
        if (previous) await stop(previous);
        const started = await start(server, files, loads[0]!, settings.pinned);
        running.set(server, started);
        coldStartsMs.push(started.coldStartMs);
      }
      results.set(server, { server, coldStartsMs, idleRssMiB: Number.NaN, tls: '', loads: [] });
    }
    // Idle: started and answered one small review, before any other load.
    await sleep(settings.quick ? 200 : 1000);
    for (const server of servers) results.get(server)!.idleRssMiB = rssMiB(running.get(server)!.child.pid!);
    for (const server of servers) {
      const result = results.get(server)!;
      result.tls = await checkAnswers(server, running.get(server)!.target, loads);
      log(`${server.padEnd(8)} cold start ${result.coldStartsMs.map((v) => v.toFixed(0)).join(', ')} ms, idle RSS ${result.idleRssMiB.toFixed(0)} MiB, answers checked (${result.tls})`);
    }
    for (const load of loads) {
      for (const server of servers) {
        results.get(server)!.loads.push(await measureLoad(server, running.get(server)!, load, settings));
      }
    }
    return servers.map((s) => results.get(s)!);
  } finally {
    for (const started of running.values()) await stop(started);
  }
}

/** A separate webhook run under --cpu-prof on the typical CREATE: where the time goes. */
async function profileWebhook(files: Files, load: Load, settings: Settings) {
  const dir = join(RESULTS_DIR, 'profiles');
  mkdirSync(dir, { recursive: true });
  const before = new Set(readdirSync(dir));
  const started = await start('webhook', files, load, settings.pinned, { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  // The profile starts with the process: leave out the start (modules loading) and count the load.
  const skipMicros = (started.coldStartMs + 100) * 1000;
  try {
    await throughput(started.target, load.body, settings.connections, settings.profileSeconds);
  } finally {
    await stop(started);
  }
  const written = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
  if (written.length === 0) throw new Error('bench: the webhook wrote no CPU profile');
  const file = join(dir, written.sort().at(-1)!);
  log(`profile: ${file}`);
  return { load: load.id, seconds: settings.profileSeconds, top: summariseProfile(JSON.parse(readFileSync(file, 'utf8')), ROOT, 12, skipMicros) };
}

/** What any Node webhook pays before its own work: JSON.parse of the review (the ceiling does not parse). */
function parseMicros(load: Load, quick: boolean): number {
  const text = load.body.toString('utf8');
  const iterations = Math.max(3, Math.round((quick ? 2e6 : 2e7) / load.body.length));
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 5; round++) {
    const began = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) JSON.parse(text);
    best = Math.min(best, Number(process.hrtime.bigint() - began) / 1e3 / iterations);
  }
  return best;
}

function versions(): Record<string, string> {
  const go = goBinary();
  const pkg = (name: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  return {
    node: process.version,
    go: go ? spawnSync(go, ['env', 'GOVERSION'], { encoding: 'utf8' }).stdout.trim() : 'missing',
    autocannon: pkg('autocannon'),
    fastify: pkg('fastify'),
    'fast-json-patch': pkg('fast-json-patch'),
    openssl: process.versions.openssl ?? 'unknown',
  };
}

function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

function machine() {
  const kernel = (() => {
    try {
      return readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
    } catch {
      return 'unknown';
    }
  })();
  return { cpu: cpus()[0]?.model.trim() ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), kernel };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const settings: Settings = {
    quick: args.quick,
    // Quick: fewer connections, so that the slowest server's backlog of 1 MiB reviews drains fast.
    connections: args.quick ? 8 : 32,
    warmupSeconds: args.quick ? 0 : 1,
    throughputSeconds: args.quick ? 0.4 : 4,
    // 2,000 samples for the small and typical reviews, 150 for the 1 MiB ones.
    latencyWarmupSeconds: args.quick ? 0.1 : 1,
    latencySeconds: args.quick ? { small: 0.4, typical: 0.4, large: 0.4 } : { small: 10, typical: 10, large: 15 },
    latencyRate: { small: 200, typical: 200, large: 10 },
    coldStarts: args.quick ? 1 : 3,
    profileSeconds: args.quick ? 1 : 8,
    pinned: canPin(),
  };
  if (args.webhookMain) WEBHOOK_MAIN = resolve(args.webhookMain);
  if (!existsSync(WEBHOOK_MAIN)) throw new Error('bench: build/app/main.js is missing: run `npm run build` first (npm run bench does)');
  if (args.servers.includes('go-peer') || args.servers.includes('go-typed')) buildGoPeer();
  log(settings.pinned ? 'servers pinned to core 0, load generator to core 1' : 'taskset unavailable or one core: not pinned');

  const generated = generateLoads();
  if (args.cluster) return clusterMain(args.servers, generated.plan, settings.quick);
  const loads = args.loads ? generated.loads.filter((l) => args.loads!.includes(l.id)) : generated.loads;
  if (loads.length === 0) throw new Error(`bench: no load matches ${args.loads!.join(',')}`);
  const files = await prepareFiles();
  writeGoConfig(files, generated.plan);
  const began = performance.now();
  try {
    const loadBefore = loadAverage();
    const servers = await measureAll(args.servers, files, loads, settings);
    const typical = loads.find((l) => l.id === 'typical-create') ?? loads[0]!;
    const profile = args.profile && args.servers.includes('webhook') ? await profileWebhook(files, typical, settings) : null;
    const overload = args.servers.includes('webhook') && !args.webhookMain ? await overloadRuns(files, settings.quick) : null;
    if (overload) for (const r of overload) log(`overload ${r.label}: ${r.answered}/${r.settings.reviews} answered, p100 ${(r.p100Ms / 1000).toFixed(2)} s, peak ${r.peakMiB.toFixed(0)} MiB`);
    // The full 100,000 take minutes: `npm run fuzz`; here a short run in CI, a longer one otherwise.
    const fuzz = args.servers.includes('webhook') && !args.webhookMain ? await runFuzz(files, settings.quick ? 3_000 : 20_000, 17, settings.pinned) : null;
    if (fuzz) log(`fuzz: ${fuzz.count} reviews, ${fuzz.failures.length} failures${fuzz.failures.length ? `: ${fuzz.failures.slice(0, 3).join('; ')}` : ''}`);
    if (fuzz && fuzz.failures.length > 0) process.exitCode = 1;
    const run: Run = {
      date: new Date().toISOString(),
      settings,
      machine: machine(),
      loadAverage: { before: loadBefore, after: loadAverage() },
      versions: versions(),
      loads: loads.map((l) => ({ id: l.id, bytes: l.body.length, patched: l.patched, parseMicros: parseMicros(l, settings.quick) })),
      servers,
      profile,
      overload,
      fuzz,
    };
    const markdown = renderMarkdown(run) + (overload ? `\n${renderOverload(overload)}` : '') + (fuzz ? `\n${renderFuzz(fuzz)}` : '');
    mkdirSync(RESULTS_DIR, { recursive: true });
    const stamp = run.date.replace(/[:.]/g, '-');
    const name = `${stamp}${settings.quick ? '-quick' : ''}`;
    writeFileSync(join(RESULTS_DIR, `${name}.json`), `${JSON.stringify(run, null, 2)}\n`);
    writeFileSync(join(RESULTS_DIR, `${name}.md`), markdown);
    const complete = !settings.quick && !args.loads && !args.webhookMain && args.servers.length === SERVERS.length;
    if (complete) writeFullRun(markdown);
    process.stdout.write(`\n${markdown}\n`);
    log(`done in ${((performance.now() - began) / 1000).toFixed(1)} s: bench/results/${name}.{md,json}${complete ? ' and bench/RESULTS.md' : ''}`);
  } finally {
    rmSync(files.dir, { recursive: true, force: true });
  }
}

/** --cluster: the admission overhead at the e2e control plane's API server (bench/cluster.ts). */
async function clusterMain(servers: readonly ServerId[], plan: ReturnType<typeof generateLoads>['plan'], quick: boolean) {
  const files = await prepareFiles();
  writeGoConfig(files, plan);
  try {
    const before = loadAverage();
    const results = await runCluster(files, servers, quick, log);
    const markdown = `${renderCluster(results, { before, after: loadAverage() })}`;
    mkdirSync(RESULTS_DIR, { recursive: true });
    const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-cluster${quick ? '-quick' : ''}`;
    writeFileSync(join(RESULTS_DIR, `${name}.md`), markdown);
    writeFileSync(join(RESULTS_DIR, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
    const complete = !quick && ['webhook', 'go-peer', 'go-typed'].every((s) => servers.includes(s as ServerId));
    if (complete) writeSection(CLUSTER_HEADING, markdown);
    process.stdout.write(`\n${markdown}\n`);
    log(`done: bench/results/${name}.{md,json}${complete ? ' and its section of bench/RESULTS.md' : ''}`);
    // Correctness, not timings: every labelled pod gets the sidecar, every create succeeds.
    const missed = results.flatMap((r) => [
      ...r.rates.filter((x) => (r.patches && x.labelled.injected < Math.ceil(x.sent / 2)) || x.labelled.failed + x.unlabelled.failed > 0).map((x) => `${r.server} at ${x.rate}/s`),
      ...((r.patches && r.burst.injected < r.burst.pods) || r.burst.failed > 0 ? [`${r.server} burst`] : []),
    ]);
    if (missed.length > 0) throw new Error(`bench: pods not injected or not created: ${missed.join(', ')}`);
  } finally {
    rmSync(files.dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
