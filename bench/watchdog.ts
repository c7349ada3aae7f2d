// The watchdog with many labelled pods in the e2e API server (test/cluster/harness.ts; no kubelet:
// the pods stay Pending, which is all the watchdog reads). Creates N labelled pods that carry the
// current sidecar (the steady state after the webhook injected them), then starts the webhook twice
// from source, without and with the watchdog (both with the namespace check on, as the chart sets
// it, so the Kubernetes client is loaded either way), and measures: RSS added by the watchdog, CPU and time
// of the initial list + classification, and how long a new unprotected pod takes to be reported.
//
//   node bench/watchdog.ts [--pods 10000]     (needs the cluster binaries: npm run cluster:up)
//   node bench/watchdog.ts --cgroup-mib 256   (as root, cgroup v1: each webhook runs as the image
//       runs it, build/ with the Containerfile's node flags, inside a memory cgroup of that limit,
//       as the chart's resources.limits.memory; reports the cgroup's peak and whether it survived)
//
// Requests go to the API server on 127.0.0.1 only; creation is bounded (N pods, 16 at a time).
import { spawn } from 'node:child_process';
import { readFileSync, rmdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../app/config.ts';
import { ENV, LABEL_PROTECT, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, SIDECAR_SERVICE_ACCOUNT } from '../app/contract.ts';
import { mutate } from '../app/inject/mutate.ts';
import { planInjection } from '../app/inject/sidecar.ts';
import { KUBECONFIG_PATH, REPO_ROOT, startCluster } from '../test/cluster/harness.ts';
import { cgroupFile, makeCgroup, oomKills } from './overload.ts';
import { imageNodeFlags } from './harness.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const PODS = arg('pods', 10_000);
const CGROUP_MIB = arg('cgroup-mib', 0);
const NAMESPACE = 'bench-watchdog';
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function procStatus(pid: number): { rssKiB: number; hwmKiB: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]); // utime + stime, after pid and (comm)
  return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM'), cpuSeconds: ticks / 100 };
}

async function metric(port: number, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : Number.NaN;
}

async function run(watchdog: boolean, onClassified?: (port: number) => Promise<Record<string, number>>) {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const started = Date.now();
  const cgroup = CGROUP_MIB > 0 ? makeCgroup(CGROUP_MIB) : undefined;
  if (CGROUP_MIB > 0 && !cgroup) throw new Error('--cgroup-mib needs a writable cgroup v1 memory hierarchy (root)');
  // In a cgroup: a shell that writes its own PID into cgroup.procs, then execs node (same PID).
  const [command, args] = cgroup
    ? ['/bin/sh', ['-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh', cgroup, process.execPath, ...imageNodeFlags(), join(REPO_ROOT, 'build/app/main.js')]]
    : [process.execPath, [join(REPO_ROOT, 'app/main.ts')]];
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', KUBECONFIG: KUBECONFIG_PATH, [ENV.host]: '127.0.0.1', [ENV.port]: String(port), [ENV.metricsPort]: String(metricsPort), [ENV.logLevel]: 'info', [ENV.watchdog]: String(watchdog), [ENV.namespaceCheck]: 'true', [ENV.podName]: `bench-${process.pid}` },
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  child.stderr!.on('data', (c: Buffer) => (out += c));
  const result: Record<string, number> = {};
  try {
    const deadline = Date.now() + 120_000;
    const ready = watchdog ? /labelled pods classified/ : /pando-webhook listening/;
    while (!ready.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`webhook not ready:\n${out}`);
      await sleep(20);
    }
    result.readyMs = Date.now() - started;
    if (watchdog) {
      const line = out.split('\n').find((l) => l.includes('labelled pods classified'))!;
      const logged = JSON.parse(line) as Record<string, number>;
      result.classifyMs = logged.durationMs!;
      result.protected = logged.protected!;
      result.cpuToClassified = procStatus(child.pid!).cpuSeconds;
    }
    await sleep(5_000); // settle: GC, timers
    Object.assign(result, onClassified ? await onClassified(metricsPort) : {});
    const p = procStatus(child.pid!);
    result.rssMiB = p.rssKiB / 1024;
    await sleep(25_000); // and half a minute after: what V8 gave back
    result.rssLaterMiB = procStatus(child.pid!).rssKiB / 1024;
    // Where it is: V8's heap (used, total) and memory outside it, from the process metrics.
    result.heapUsedMiB = (await metric(metricsPort, 'pandocore_nodejs_heap_size_used_bytes')) / 1048576;
    result.heapTotalMiB = (await metric(metricsPort, 'pandocore_nodejs_heap_size_total_bytes')) / 1048576;
    result.externalMiB = (await metric(metricsPort, 'pandocore_nodejs_external_memory_bytes')) / 1048576;
    result.peakMiB = p.hwmKiB / 1024;
    result.cpuSeconds = p.cpuSeconds;
  } catch (err) {
    // In a cgroup, dying (OOM kill) is a result, not a failure of the bench.
    if (!cgroup || (child.exitCode === null && child.signalCode === null)) throw err;
    console.error(`[bench] webhook ${watchdog ? 'with' : 'without'} the watchdog died (${child.signalCode ?? child.exitCode}); last output:\n${out.slice(-1500)}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    } else result.died = 1;
    if (cgroup) {
      result.cgroupPeakMiB = Number(cgroupFile(cgroup, 'memory.max_usage_in_bytes')) / 1048576;
      result.cgroupFailcnt = Number(cgroupFile(cgroup, 'memory.failcnt'));
      result.cgroupOomKills = oomKills(cgroup);
      rmdirSync(cgroup);
    }
  }
  return result;
}

async function main() {
  const cluster = await startCluster((l) => console.error(`[cluster] ${l}`));
  try {
    // The watchdog's Lease lives in the webhook's namespace.
    await cluster.request('POST', '/api/v1/namespaces', { metadata: { name: 'pando-system' } });
    const exists = await cluster.request('GET', `/api/v1/namespaces/${NAMESPACE}`);
    if (exists.status === 404) await cluster.request('POST', '/api/v1/namespaces', { metadata: { name: NAMESPACE } });
    for (let i = 0; i < 240 && (await cluster.request('GET', `/api/v1/namespaces/${NAMESPACE}/serviceaccounts/default`)).status !== 200; i++) await sleep(250);
    // Injected pods use the sidecar's ServiceAccount, which the API server requires to exist.
    await cluster.request('POST', `/api/v1/namespaces/${NAMESPACE}/serviceaccounts`, { metadata: { name: SIDECAR_SERVICE_ACCOUNT } });
    // With the license Secret too, the namespace is set up: a new pod without the sidecar is unprotected, not skipped.
    await cluster.request('POST', `/api/v1/namespaces/${NAMESPACE}/secrets`, { metadata: { name: LICENSE_SECRET_NAME }, type: 'Opaque', stringData: { [LICENSE_SECRET_KEY]: 'bench' } });
    const have = (await cluster.request('GET', `/api/v1/namespaces/${NAMESPACE}/pods?labelSelector=${encodeURIComponent(`${LABEL_PROTECT}=true`)}&limit=1`)).body;
    const existing = Number(have?.metadata?.remainingItemCount ?? 0) + (have?.items?.length ?? 0);
    const plan = planInjection(loadConfig({}));
    const t0 = Date.now();
    let next = existing;
    const worker = async () => {
      while (next < PODS) {
        const i = next++;
        const raw = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `pod-${i}`, namespace: NAMESPACE, labels: { [LABEL_PROTECT]: 'true', app: `app-${i % 100}` } }, spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1', resources: { requests: { cpu: '10m', memory: '16Mi' } } }] } };
        const injected = mutate(raw as never, 'monitor', plan).pod;
        const r = await cluster.request('POST', `/api/v1/namespaces/${NAMESPACE}/pods`, injected);
        if (r.status !== 201 && r.status !== 409) throw new Error(`creating pod-${i}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    console.error(`[bench] ${PODS} labelled pods present (${PODS - existing} created in ${Date.now() - t0} ms)`);

    const without = await run(false);
    const withWatchdog = await run(true, async (metricsPort) => {
      // A new unprotected pod: how long until the gauge counts it.
      const name = `late-${Date.now().toString(36)}`;
      const created = Date.now();
      await cluster.request('POST', `/api/v1/namespaces/${NAMESPACE}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { [LABEL_PROTECT]: 'true' } }, spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }] } });
      let reportedMs = Number.NaN;
      for (let i = 0; i < 400; i++) {
        if ((await metric(metricsPort, 'pandocore_unprotected_pods', `namespace="${NAMESPACE}"`)) === 1) {
          reportedMs = Date.now() - created;
          break;
        }
        await sleep(10);
      }
      await cluster.request('DELETE', `/api/v1/namespaces/${NAMESPACE}/pods/${name}`);
      return { newPodReportedMs: reportedMs, gaugeProtected: await metric(metricsPort, 'pandocore_pods', 'state="protected"') };
    });
    const inCgroup = (r: Record<string, number>) => ({ survived: !r.died, peakMiB: +r.cgroupPeakMiB!.toFixed(1), failcnt: r.cgroupFailcnt, oomKills: r.cgroupOomKills });
    if (CGROUP_MIB > 0) {
      console.log(JSON.stringify({ pods: PODS, cgroupLimitMiB: CGROUP_MIB, nodeFlags: imageNodeFlags().join(' '), without: inCgroup(without), with: inCgroup(withWatchdog), rssWithMiB: withWatchdog.rssMiB && +withWatchdog.rssMiB.toFixed(1), rssWithoutMiB: without.rssMiB && +without.rssMiB.toFixed(1), heapTotalWithMiB: withWatchdog.heapTotalMiB && +withWatchdog.heapTotalMiB.toFixed(1), initialListAndClassifyMs: withWatchdog.classifyMs, newPodReportedMs: withWatchdog.newPodReportedMs, loadavg: loadavg().map((l) => +l.toFixed(2)) }, null, 2));
      return;
    }
    const figures = {
      pods: PODS,
      rssWithoutMiB: +without.rssMiB!.toFixed(1),
      rssWithMiB: +withWatchdog.rssMiB!.toFixed(1),
      rssAddedMiB: +(withWatchdog.rssMiB! - without.rssMiB!).toFixed(1),
      rssAddedAfter30sMiB: +(withWatchdog.rssLaterMiB! - without.rssLaterMiB!).toFixed(1),
      peakAddedMiB: +(withWatchdog.peakMiB! - without.peakMiB!).toFixed(1),
      heapUsedAddedMiB: +(withWatchdog.heapUsedMiB! - without.heapUsedMiB!).toFixed(1),
      heapTotalAddedMiB: +(withWatchdog.heapTotalMiB! - without.heapTotalMiB!).toFixed(1),
      externalAddedMiB: +(withWatchdog.externalMiB! - without.externalMiB!).toFixed(1),
      initialListAndClassifyMs: withWatchdog.classifyMs,
      cpuSecondsToClassified: withWatchdog.cpuToClassified,
      cpuSecondsWithoutAtReady: without.cpuSeconds,
      newPodReportedMs: withWatchdog.newPodReportedMs,
      classifiedProtected: withWatchdog.gaugeProtected,
      loadavg: loadavg().map((l) => +l.toFixed(2)),
    };
    console.log(JSON.stringify(figures, null, 2));
  } finally {
    await cluster.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
