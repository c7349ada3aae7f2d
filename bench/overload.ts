// The overload burst (issue 17 item 5): 32 reviews of 3 MiB sent at once over 32 open keep-alive
// connections to a webhook started inside a memory cgroup at the chart's limit (cgroup v1, as
// root; without it the burst runs unconfined and says so). Reports each answer's time from the
// burst's start (p50, p100 against the chart's timeoutSeconds), how far answers strayed from the
// order they were sent in, the cgroup's peak and OOM count, and checks every answer (uid, patch).
// `node bench/overload.ts [--quick] [--bytes-in-flight=N] [--webhook-main=OTHER/app/main.js]` runs it alone; `npm run bench` runs it too.

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ENV } from '../app/contract.ts';
import { canPin, cpuTicks, CLOCK_TICKS_PER_SECOND, prepareFiles, start, stop, type Files } from './harness.ts';
import { generateLoads, sizedCreate } from './reviews.ts';
import { post, type Target } from './load.ts';

// The chart's defaults (charts-src/values.ts): the container's memory limit and the webhook's
// timeoutSeconds, which the API server applies to each call.
export const CHART_MEMORY_LIMIT_MIB = 256;
export const CHART_TIMEOUT_SECONDS = 5;
const MEMORY_CGROUPS = '/sys/fs/cgroup/memory';

export interface OverloadSettings {
  reviews: number;
  bytes: number;
  memoryLimitMiB: number;
  /** PANDO_REVIEW_BYTES_IN_FLIGHT for this run; undefined: the webhook's default. */
  bytesInFlight?: number;
  /** Another build of the webhook (e.g. the previous commit's), for a before/after. */
  webhookMain?: string;
}

export interface OverloadResult {
  settings: OverloadSettings;
  label: string;
  reviewBytes: number;
  /** Where the webhook ran: a memory cgroup with the limit, or unconfined. */
  confinement: string;
  answered: number;
  failed: number;
  /** Answers whose patch or uid was wrong. */
  wrong: number;
  p50Ms: number;
  p100Ms: number;
  /** Largest |answer rank - send rank|: 0 is strictly first come, first served. */
  maxDisplacement: number;
  /** memory.max_usage_in_bytes of the cgroup, MiB; NaN unconfined. */
  peakMiB: number;
  oomKills: number;
  survived: boolean;
  cpuSeconds: number;
  loadAverage: number;
}

export function cgroupFile(dir: string, name: string): string {
  return readFileSync(join(dir, name), 'utf8').trim();
}

/** A fresh memory cgroup with the limit, or undefined where cgroup v1 memory is not writable. */
export function makeCgroup(limitMiB: number): string | undefined {
  if (!existsSync(join(MEMORY_CGROUPS, 'cgroup.procs'))) return undefined;
  const dir = join(MEMORY_CGROUPS, `pando-bench-overload-${process.pid}-${Date.now()}`);
  try {
    mkdirSync(dir);
    writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitMiB * 1024 * 1024));
    return dir;
  } catch {
    return undefined;
  }
}

export function oomKills(dir: string): number {
  // "oom_kill N" on kernels that count them; otherwise failing to stay alive is the signal.
  const match = /oom_kill (\d+)/.exec(cgroupFile(dir, 'memory.oom_control'));
  return match ? Number(match[1]) : 0;
}

interface Timed {
  index: number;
  status: number;
  ms: number;
  body: string;
}

async function send(target: Target, agent: Agent, body: Buffer, index: number, began: number): Promise<Timed> {
  const answer = await post(target, body, agent).catch(() => ({ status: 0, body: '' }));
  return { index, status: answer.status, ms: performance.now() - began, body: answer.body };
}

function isRightAnswer(answer: Timed, uid: string): boolean {
  if (answer.status !== 200) return false;
  const response = (JSON.parse(answer.body) as { response?: { uid?: string; patch?: string; auditAnnotations?: Record<string, string> } }).response;
  if (response?.uid !== uid || response.auditAnnotations?.reason !== 'injected' || !response.patch) return false;
  const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Array<{ path: string }>;
  // The sidecar's patch, not a rewrite of the pod's 16 containers.
  return patch.length > 0 && patch.length < 10 && !patch.some((op) => op.path.startsWith('/spec/containers'));
}

export async function runOverload(files: Files, settings: OverloadSettings, label: string, pinned = canPin()): Promise<OverloadResult> {
  const uids = Array.from({ length: settings.reviews }, (_, i) => `0f0e0d0c-0000-4000-8000-${String(i).padStart(12, '0')}`);
  const bodies = uids.map((uid) => sizedCreate(settings.bytes, uid));
  const probe = generateLoads().loads[0]!;
  const cgroup = makeCgroup(settings.memoryLimitMiB);
  const env: Record<string, string> = settings.bytesInFlight === undefined ? {} : { [ENV.reviewBytesInFlight]: String(settings.bytesInFlight) };
  const started = await start('webhook', files, probe, pinned, { env, ...(settings.webhookMain ? { webhookMain: settings.webhookMain } : {}), ...(cgroup ? { cgroupProcs: join(cgroup, 'cgroup.procs') } : {}) });
  const agent = new Agent({ keepAlive: true, maxSockets: settings.reviews, ca: files.ca });
  try {
    // The API server keeps its connections open: TLS handshakes are not part of the burst.
    await Promise.all(Array.from({ length: settings.reviews }, (_, i) => send(started.target, agent, probe.body, i, 0)));
    const pid = started.child.pid!;
    const ticks = cpuTicks(pid);
    const began = performance.now();
    const answers = await Promise.all(bodies.map((body, i) => send(started.target, agent, body, i, began)));
    const cpuSeconds = (cpuTicks(pid) - ticks) / CLOCK_TICKS_PER_SECOND;
    const ok = answers.filter((a) => a.status === 200);
    const byTime = [...answers].sort((a, b) => a.ms - b.ms);
    const times = byTime.map((a) => a.ms);
    const survived = started.child.exitCode === null && started.child.signalCode === null;
    return {
      settings,
      label,
      reviewBytes: bodies[0]!.length,
      confinement: cgroup ? `memory cgroup, limit ${settings.memoryLimitMiB} MiB` : 'unconfined (no writable cgroup v1 memory)',
      answered: ok.length,
      failed: answers.length - ok.length,
      wrong: answers.filter((a) => !isRightAnswer(a, uids[a.index]!)).length,
      p50Ms: times[Math.floor((times.length - 1) / 2)]!,
      p100Ms: times.at(-1)!,
      maxDisplacement: Math.max(...byTime.map((a, rank) => Math.abs(rank - a.index))),
      peakMiB: cgroup ? Number(cgroupFile(cgroup, 'memory.max_usage_in_bytes')) / 2 ** 20 : Number.NaN,
      oomKills: cgroup ? oomKills(cgroup) : 0,
      survived,
      cpuSeconds,
      loadAverage: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
    };
  } finally {
    agent.destroy();
    await stop(started);
    if (cgroup) {
      try {
        rmdirSync(cgroup);
      } catch {
        // still emptying; the kernel removes nothing by itself, but an empty leftover costs nothing
      }
    }
  }
}

const fixed = (v: number, digits = 0) => (Number.isNaN(v) ? '–' : v.toFixed(digits));

export function renderOverload(results: OverloadResult[]): string {
  const out: string[] = [];
  const first = results[0];
  if (!first) return '';
  out.push(`## Overload: ${first.settings.reviews} reviews of ${(first.reviewBytes / 2 ** 20).toFixed(2)} MiB at once`);
  out.push('');
  out.push(
    `Sent at once over ${first.settings.reviews} open HTTPS keep-alive connections to the webhook on one core, ${first.confinement}; ` +
      `times from the start of the burst to each full answer; the chart's timeoutSeconds is ${CHART_TIMEOUT_SECONDS} s. ` +
      'Order: the largest distance between an answer\'s rank and its send rank (0: first come, first served). Every answer is checked (uid, reason, a patch of the sidecar only).',
  );
  out.push('');
  out.push('| webhook | answered | wrong or failed | p50 (s) | p100 (s) | p100 <= timeoutSeconds | order (max displacement) | peak memory (MiB) | OOM kills | CPU (s) | load avg |');
  out.push('| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    out.push(
      `| ${r.label} | ${r.answered}/${r.settings.reviews} | ${r.wrong} | ${fixed(r.p50Ms / 1000, 2)} | ${fixed(r.p100Ms / 1000, 2)} | ${r.p100Ms <= CHART_TIMEOUT_SECONDS * 1000 ? 'yes' : 'no'} | ` +
        `${r.maxDisplacement} | ${fixed(r.peakMiB)} | ${r.oomKills}${r.survived ? '' : ' (died)'} | ${fixed(r.cpuSeconds, 1)} | ${r.loadAverage} |`,
    );
  }
  out.push('');
  return out.join('\n');
}

/** The webhook as shipped, and (full run) the same build with the gate opened wide, for the difference. */
export async function overloadRuns(files: Files, quick: boolean): Promise<OverloadResult[]> {
  const base: OverloadSettings = { reviews: quick ? 8 : 32, bytes: 3 * 1024 * 1024, memoryLimitMiB: CHART_MEMORY_LIMIT_MIB };
  const results = [await runOverload(files, base, 'default (bodies in flight: 8 MiB)')];
  if (!quick) results.push(await runOverload(files, { ...base, bytesInFlight: 1024 ** 3 }, 'gate opened wide (1 GiB: every body at once)'));
  return results;
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const inFlight = value('bytes-in-flight');
  const webhookMain = value('webhook-main');
  const files = await prepareFiles();
  const one = { reviews: quick ? 8 : 32, bytes: 3 * 1024 * 1024, memoryLimitMiB: CHART_MEMORY_LIMIT_MIB };
  const results = inFlight || webhookMain
    ? [await runOverload(files, { ...one, ...(inFlight ? { bytesInFlight: Number(inFlight) } : {}), ...(webhookMain ? { webhookMain: resolve(webhookMain) } : {}) }, webhookMain ? `build ${webhookMain}` : `bodies in flight: ${inFlight} bytes`)]
    : await overloadRuns(files, quick);
  process.stdout.write(`${renderOverload(results)}\n`);
}
