// The benchmarks' shared harness: the servers (ours, the ceiling, the Go peers) started on one
// certificate, pinned to core 0, probed until they answer, stopped; their CPU time and memory read
// from /proc; the settings and result types every report uses. The entry points (run.ts, ab.ts,
// cluster.ts, fuzz.ts, overload.ts, watchdog.ts) import it; it imports none of them.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createCa, issueServingCert } from '../app/tls/certs.ts';
import { ENV } from '../app/contract.ts';
import { post, type LatencyResult, type Target, type ThroughputResult } from './load.ts';
import { BENCH_ENV, benchConfig, generateLoads, type Load, type Size } from './reviews.ts';

export const ROOT = join(import.meta.dirname, '..');
export const RESULTS_DIR = join(ROOT, 'bench', 'results');
let webhookMain = join(ROOT, 'build', 'app', 'main.js');
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

export function log(message: string) {
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

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function canPin(): boolean {
  if (cpus().length < 2 || !existsSync('/usr/bin/taskset')) return false;
  // The load generator (this process and its threads) on core 1; servers are started on core 0.
  return spawnSync('/usr/bin/taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' }).status === 0;
}

export function goBinary(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return onPath;
  return existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined;
}

export function buildGoPeer() {
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

/** The webhook build that start() runs unless told otherwise (--webhook-main=PATH: another build). */
export function useWebhookMain(path: string): string {
  webhookMain = path;
  return webhookMain;
}

export interface Files {
  dir: string;
  cert: string;
  key: string;
  ca: string;
  goConfig: string;
}

/** A CA and a serving certificate for 127.0.0.1 and `names`, in a fresh temporary directory. */
export async function prepareFiles(names: string[] = []): Promise<Files> {
  const dir = mkdtempSync(join(tmpdir(), 'pando-bench-'));
  const now = new Date();
  const ca = await createCa('pando bench CA', now, 1);
  const leaf = await issueServingCert(ca, ['127.0.0.1', ...names], now, 1);
  const files = { dir, cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: ca.certPem, goConfig: join(dir, 'go-peer.json') };
  writeFileSync(files.cert, leaf.certPem);
  writeFileSync(files.key, leaf.keyPem, { mode: 0o600 });
  return files;
}

export function writeGoConfig(files: Files, plan: ReturnType<typeof generateLoads>['plan']) {
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
  const command_ = command(server, port, metricsPort, files, options.nodeFlags ?? [], options.webhookMain ?? webhookMain);
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

/** The machine's 1-minute load average: others' work shows here. */
export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

