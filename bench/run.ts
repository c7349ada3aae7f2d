// npm run bench [-- --quick] [-- --servers=webhook,ceiling] [-- --loads=typical-create] [-- --cluster] [-- --node]
//
// Runs the webhook (compiled JavaScript, as in production), the ceiling (a bare Node HTTPS server
// answering a fixed AdmissionReview) and the Go peer one after another on the same certificate and
// the same six loads, each server pinned to core 0 and the load generator to core 1 where taskset
// allows, and writes a markdown table and JSON to bench/results/ (and, after a full run of
// everything, the table to bench/RESULTS.md). Asserts that each server answers each load correctly,
// never anything about timings.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { pacedLatency, post, throughput, type Target } from './load.ts';
import { clusterMain } from './cluster.ts';
import { nodeMain } from './node.ts';
import { writeFullRun } from './results-file.ts';
import { renderFuzz, runFuzz } from './fuzz.ts';
import { overloadRuns, renderOverload } from './overload.ts';
import { summariseProfile } from './profile.ts';
import { renderMarkdown, type Run } from './report.ts';
import { generateLoads, type Load } from './reviews.ts';
import {
  CLOCK_TICKS_PER_SECOND,
  RESULTS_DIR,
  ROOT,
  SERVERS,
  buildGoPeer,
  canPin,
  cpuTicks,
  goBinary,
  loadAverage,
  log,
  prepareFiles,
  quiesce,
  rssMiB,
  sleep,
  start,
  stop,
  useWebhookMain,
  writeGoConfig,
  type Files,
  type LoadResult,
  type ServerId,
  type ServerResult,
  type Settings,
  type Started,
} from './harness.ts';

function parseArgs(argv: string[]) {
  const quick = argv.includes('--quick');
  const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const servers = (value('servers')?.split(',') ?? SERVERS) as ServerId[];
  for (const s of servers) if (!SERVERS.includes(s)) throw new Error(`bench: unknown server ${s} (${SERVERS.join(', ')})`);
  // --webhook-main=PATH runs another build of the webhook (e.g. the previous commit's) for an A/B.
  const webhookMain = value('webhook-main');
  return { quick, servers, loads: value('loads')?.split(','), profile: !argv.includes('--no-profile'), webhookMain, cluster: argv.includes('--cluster'), node: argv.includes('--node') };
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
  const webhookMain = args.webhookMain ? useWebhookMain(resolve(args.webhookMain)) : join(ROOT, 'build', 'app', 'main.js');
  if (!existsSync(webhookMain)) throw new Error('bench: build/app/main.js is missing: run `npm run build` first (npm run bench does)');
  // The node bench runs only our webhook, unpinned (kubelet and containerd share the cores): no Go peer to build.
  if (args.node) return nodeMain(args.quick);
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

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
