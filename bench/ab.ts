// node bench/ab.ts A/app/main.js B/app/main.js [--load=typical-create] [--rounds=8] [--seconds=2]
//
// Two builds of the webhook side by side, for the before/after of a change: both run at once (on
// core 0 where taskset allows), and take turns (A B B A ...) under the same autocannon load, so that
// other work on a shared machine weighs on both alike. Reports the median server CPU time per review
// and reviews/s of each; copy a build to compare with `cp -r build/app SOMEWHERE/app` first.

import { resolve } from 'node:path';
import { throughput } from './load.ts';
import { CLOCK_TICKS_PER_SECOND, canPin, cpuTicks, prepareFiles, quiesce, rssMiB, start, stop, type Started } from './harness.ts';
import { generateLoads } from './reviews.ts';

const argv = process.argv.slice(2);
const value = (name: string, fallback: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const [a, b] = argv.filter((x) => !x.startsWith('--'));
if (!a || !b) {
  process.stderr.write('usage: node bench/ab.ts A/app/main.js B/app/main.js [--load=typical-create] [--rounds=8] [--seconds=2]\n');
  process.exit(2);
}
const load = generateLoads().loads.find((l) => l.id === value('load', 'typical-create'));
if (!load) throw new Error(`bench: no load ${value('load', '')}`);
const rounds = Number(value('rounds', '8'));
const seconds = Number(value('seconds', '2'));

const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;

const pinned = canPin();
const files = await prepareFiles();
const servers: Array<{ name: string; started: Started; cpu: number[]; rate: number[]; rss: number }> = [];
try {
  for (const [name, main] of [['A', a], ['B', b]] as const) {
    // --flags-a=--max-semi-space-size=32,... : node flags for one side (same build, other settings).
    const flags = value(`flags-${name.toLowerCase()}`, '').split(',').filter((f) => f !== '');
    servers.push({ name, started: await start('webhook', files, load, pinned, { nodeFlags: flags, webhookMain: resolve(main) }), cpu: [], rate: [], rss: 0 });
  }
  for (const s of servers) await throughput(s.started.target, load.body, 32, 1); // warm-up
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? servers : [...servers].reverse();
    for (const s of order) {
      const pid = s.started.child.pid!;
      await quiesce(pid);
      const before = cpuTicks(pid);
      const result = await throughput(s.started.target, load.body, 32, seconds);
      s.cpu.push(((cpuTicks(pid) - before) * (1e6 / CLOCK_TICKS_PER_SECOND)) / Math.max(1, result.ok));
      s.rate.push(result.reviewsPerSecond);
      s.rss = Math.max(s.rss, rssMiB(pid));
    }
  }
  for (const s of servers) {
    process.stdout.write(
      `${s.name} ${s.name === 'A' ? a : b} ${value(`flags-${s.name.toLowerCase()}`, '')}: ${load.id} median ${median(s.cpu).toFixed(1)} µs CPU per review, ${median(s.rate).toFixed(0)} reviews/s, RSS ${s.rss.toFixed(0)} MiB after a run ` +
        `(CPU per round: ${s.cpu.map((v) => v.toFixed(0)).join(' ')})\n`,
    );
  }
} finally {
  for (const s of servers) await stop(s.started);
}
