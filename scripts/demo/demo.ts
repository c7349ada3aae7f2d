// npm run demo            the whole product on the e2e's control plane, left running, with usage
// npm run demo -- down    stops everything the demo started and removes its state
// npm run demo -- restart restarts only the webhook (changed code), the cluster keeps running
//
// Builds what is missing (the control plane and helm from their Go modules, cached in .tools/bin),
// starts etcd, kube-apiserver and kube-controller-manager (test/cluster/harness.ts) and a registry
// on 127.0.0.1, publishes the chart there and installs it with `helm upgrade --install ... oci://...`
// as the README tells operators (self-signed TLS; webhook.url points at the local webhook), runs the
// webhook with the chart's env as the chart's ServiceAccount, sets up namespace demo and applies
// scripts/demo/workloads.yaml, then shows what admission did. As root the cluster has a node
// (test/cluster/node.ts): the chart's sidecar.image is then the stand-in (test/sidecar-standin; the
// vendor's image is not reachable here) and the pods run there, so the summary shows them Running,
// the Job Complete and the sidecar's log. Details go to .tools/demo/demo.log.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments, stringify } from 'yaml';
import { ANNOTATION_STATUS, ENV, LABEL_PROTECT, PATH_METRICS, PATH_READYZ, SIDECAR_NAME, STATUS_INJECTED } from '../../app/contract.ts';
import { alive, BIN_DIR, KUBECONFIG_PATH, REPO_ROOT, STATE_DIR as CLUSTER_DIR, startCluster, stopCluster, type Cluster } from '../../test/cluster/harness.ts';
import { NODE_IMAGES, NODE_NAME } from '../../test/cluster/node.ts';
import { serviceAccountKubeconfig, webhookEnvFromObjects, webhookServiceAccount } from '../../test/e2e/chart-render.ts';
import { RELEASE, RELEASE_NAMESPACE } from '../../test/e2e/product.ts';
import { formatDuration, progressLine, PROGRESS_EVERY_MS, Timings } from './progress.ts';
import { readDemoState, runsScript, writeDemoState, type DemoState } from './state.ts';

const DEMO_DIR = join(REPO_ROOT, '.tools/demo');
const STATE_FILE = join(DEMO_DIR, 'state.json');
const LOG_FILE = join(DEMO_DIR, 'demo.log');
const WEBHOOK_LOG = join(DEMO_DIR, 'webhook.log');
const TIMINGS_FILE = join(REPO_ROOT, '.tools/demo-timings.json');
const WORKLOADS = join(REPO_ROOT, 'scripts/demo/workloads.yaml');
const MAIN = join(REPO_ROOT, 'app/main.ts');
const CLI = join(REPO_ROOT, 'app/cli/main.ts');
const KUBECTL = join(BIN_DIR, 'kubectl');
const HELM = join(BIN_DIR, 'helm');
const NAMESPACE = 'demo';
const LICENSE_KEY = 'demo-license-key';
const HELM_ENV = { HELM_CACHE_HOME: join(REPO_ROOT, '.tools/helm/cache'), HELM_CONFIG_HOME: join(REPO_ROOT, '.tools/helm/config'), HELM_DATA_HOME: join(REPO_ROOT, '.tools/helm/data') };
// First builds on 2 cores (shared) with an empty Go build cache, measured for issue 18: the control
// plane 778 s, helm 85 s; with a warm Go build cache 75 s and 10 s.
const FIRST_BUILD_HINT: Record<string, string> = {
  'control-plane': 'a first build takes about 13 min on 2 cores with an empty Go build cache (1-2 min with a warm one)',
  helm: 'a first build takes about 1.5 min on 2 cores with an empty Go build cache',
};

/** A failure the user can act on: one line with what happened and what to do. */
class DemoError extends Error {
  readonly fix: string;
  constructor(message: string, fix: string) {
    super(message);
    this.fix = fix;
  }
}

const t0 = Date.now();
const rel = (p: string) => relative(REPO_ROOT, p) || '.';
const say = (line: string) => console.log(line);
let logFd: number | undefined;

function log(text: string): void {
  if (logFd === undefined) {
    mkdirSync(DEMO_DIR, { recursive: true });
    logFd = openSync(LOG_FILE, 'a');
  }
  writeSync(logFd, text.endsWith('\n') ? text : `${text}\n`);
}

/** Runs a command with its output in the log; resolves with its standard output. */
function run(command: string, args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<{ status: number; stdout: string; stderr: string }> {
  log(`$ ${command} ${args.join(' ')}`);
  return new Promise((res) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, env: { ...process.env, ...opts.env }, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString();
      log(c.toString());
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
      log(c.toString());
    });
    child.on('error', (err) => res({ status: 127, stdout, stderr: `${stderr}${err.message}` }));
    child.on('close', (code) => res({ status: code ?? 1, stdout, stderr }));
    // A command may exit without reading its input (an error): that is its exit status, not ours.
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input);
  });
}

async function mustRun(what: string, command: string, args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<string> {
  const r = await run(command, args, opts);
  if (r.status !== 0) {
    const last = (r.stderr.trim().split('\n').pop() ?? '').slice(0, 160);
    throw new DemoError(`${what} failed (exit ${r.status}${last ? `: ${last}` : ''})`, 'see the log');
  }
  return r.stdout;
}

let stepNumber = 0;
async function step<T>(label: string, work: () => Promise<T>): Promise<T> {
  stepNumber++;
  const started = Date.now();
  say(`[${formatDuration(started - t0)}] ${stepNumber}. ${label}`);
  log(`--- ${label}`);
  const result = await work();
  log(`--- ${label}: ${formatDuration(Date.now() - started)}`);
  return result;
}

/** A Go build script: silent for minutes when cold, so a progress line with an estimate every 15 s. */
async function build(key: string, label: string, script: string, timings: Timings, args: string[] = []): Promise<void> {
  const started = Date.now();
  const ticker = setInterval(() => say(progressLine(label, Date.now() - started, timings.previous(key), FIRST_BUILD_HINT[key])), PROGRESS_EVERY_MS);
  try {
    await mustRun(label, 'bash', [join(REPO_ROOT, script), ...args]);
  } finally {
    clearInterval(ticker);
  }
  const took = Date.now() - started;
  // A cached build takes a second; only a real build is a useful estimate for the next one.
  if (took > 5_000) {
    timings.record(key, took);
    say(`  built in ${formatDuration(took)}`);
  } else {
    say('  up to date');
  }
}

function goAvailable(): boolean {
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0) return true;
  if (existsSync('/usr/local/go/bin/go')) {
    process.env.PATH = `${process.env.PATH ?? ''}:/usr/local/go/bin`;
    return true;
  }
  return false;
}

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

async function freePort(avoid: number[] = []): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((res, rej) => {
      const srv = createServer();
      srv.once('error', rej);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no port'))));
      });
    });
    if (!avoid.includes(port)) return port;
  }
  throw new DemoError('no free port on 127.0.0.1', 'free some ports and run npm run demo again');
}

function readyz(port: number): Promise<number> {
  return new Promise((res) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: PATH_READYZ, rejectUnauthorized: false, timeout: 2000 }, (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    });
    req.on('error', () => res(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function kubectl(args: string[], input?: string) {
  return run(KUBECTL, ['--kubeconfig', KUBECONFIG_PATH, ...args], { input });
}

function clusterReady(): boolean {
  if (!existsSync(KUBECTL) || !existsSync(KUBECONFIG_PATH)) return false;
  const r = spawnSync(KUBECTL, ['--kubeconfig', KUBECONFIG_PATH, 'get', '--raw', '/readyz', '--request-timeout=5s'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === 'ok';
}

function demoRunning(state: DemoState): boolean {
  return runsScript(state.webhookPid, state.webhookArg) && clusterReady();
}

function usage(state: DemoState): string {
  const kubeconfig = KUBECONFIG_PATH;
  return `
The demo keeps running (webhook ${state.runFrom}, log ${rel(WEBHOOK_LOG)}). Use it:
  export KUBECONFIG=${kubeconfig}
  export PATH=${BIN_DIR}:$PATH    # kubectl and helm, built by the demo
  kubectl run try-me -n ${NAMESPACE} --image=registry.example.invalid/app:1 --labels=${LABEL_PROTECT}=true
  kubectl get pod try-me -n ${NAMESPACE} -o jsonpath='{.spec.initContainers[0].name}{"\\n"}'
  npm run -s pando -- inject -f scripts/demo/try.yaml | kubectl apply -f -
  npm run -s pando -- doctor -n ${NAMESPACE}
  helm list -n ${RELEASE_NAMESPACE}        # installed from ${state.chartRef}
  curl -s http://127.0.0.1:${state.metricsPort}${PATH_METRICS} | grep pandocore_admission_requests_total
Restart only the webhook with changed code: npm run demo -- restart
Stop everything and remove its state: npm run demo -- down`;
}

interface PodView {
  name: string;
  labelled: boolean;
  injected: boolean;
  reason: string;
  pod: any;
}

async function podsOf(namespace: string): Promise<any[]> {
  const out = await mustRun('kubectl get pods', KUBECTL, ['--kubeconfig', KUBECONFIG_PATH, 'get', 'pods', '-n', namespace, '-o', 'json']);
  return (JSON.parse(out) as { items: any[] }).items;
}

/** The webhook's own reason for each stored pod: `pando inject --from-cluster -o json` on it (the core the webhook runs). */
async function reasons(pods: any[]): Promise<Map<string, string>> {
  const list = { apiVersion: 'v1', kind: 'List', items: pods.map((p) => ({ ...p, metadata: { ...p.metadata, managedFields: undefined } })) };
  const out = await mustRun('pando inject', process.execPath, [CLI, 'inject', '--from-cluster', '-o', 'json', '-n', NAMESPACE, '-f', '-'], { input: JSON.stringify(list), env: { KUBECONFIG: KUBECONFIG_PATH } });
  const results = (JSON.parse(out) as { results: Array<{ name: string; reason: string; message: string }> }).results;
  return new Map(results.map((r) => [r.name, `${r.reason}: ${r.message}`]));
}

function sidecarOf(pod: any): any {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c: any) => c.name === SIDECAR_NAME);
}

async function showResults(state: DemoState, onNode: boolean): Promise<void> {
  const pods = await podsOf(NAMESPACE);
  const why = await reasons(pods);
  const views: PodView[] = pods.map((pod) => ({
    name: pod.metadata.name,
    labelled: pod.metadata.labels?.[LABEL_PROTECT] === 'true',
    injected: pod.metadata.annotations?.[ANNOTATION_STATUS] === STATUS_INJECTED && sidecarOf(pod) !== undefined,
    reason: why.get(pod.metadata.name) ?? '',
    pod,
  }));
  const owner = (p: any) => (p.metadata.ownerReferences?.[0] ? `${p.metadata.ownerReferences[0].kind}/${p.metadata.ownerReferences[0].name}` : 'Pod (bare)');
  say('\nPods in namespace demo (created by the controller-manager for the Deployment and the Job):');
  for (const v of views) {
    const verdict = v.injected ? 'INJECTED' : `NOT INJECTED (${v.reason})`;
    say(`  ${v.name.padEnd(28)} ${owner(v.pod).padEnd(30)} ${LABEL_PROTECT}=${v.labelled ? 'true' : '(none)'}  ${verdict}`);
  }
  const running = onNode ? await showRunning(views) : 'no node: the pods stay Pending (admission only)';
  const sample = views.find((v) => v.injected);
  if (sample) {
    const sidecar = sidecarOf(sample.pod);
    const position = sample.pod.spec.initContainers?.[0]?.name === SIDECAR_NAME ? 'first initContainer (native sidecar)' : 'a container';
    const annotations = Object.fromEntries(Object.entries(sample.pod.metadata.annotations ?? {}).filter(([k]) => k.startsWith('pandocore.xyz/')));
    say(`\nThe sidecar of ${sample.name}: ${position}, restartPolicy ${sidecar.restartPolicy ?? '(none)'}`);
    say(indent(stringify({ initContainers: [sidecar] }).trimEnd(), 4));
    say(`  pod annotations:\n${indent(stringify(annotations).trimEnd(), 4)}`);
    say(`  serviceAccountName: ${sample.pod.spec.serviceAccountName}`);
  }
  await showWarnings();
  say(`\n$ pando doctor -n ${NAMESPACE}`);
  const doctor = await run(process.execPath, [CLI, 'doctor', '-n', NAMESPACE], { env: { KUBECONFIG: KUBECONFIG_PATH, NO_COLOR: '1' } });
  say(indent(doctor.stdout.trimEnd(), 2));
  if (doctor.stderr.trim()) say(indent(doctor.stderr.trimEnd(), 2));
  const injected = views.filter((v) => v.injected).length;
  say(`\nsummary: ${injected} of ${views.length} pods injected; ${views.filter((v) => !v.injected).map((v) => `${v.name} not injected (${v.reason.split(':')[0]})`).join(', ') || 'none skipped'}; ${running}; doctor exit ${doctor.status}${doctor.status === 0 ? ' (all checks ok)' : ''}`);
  void state;
}

/** The node ran the pods: what kubectl shows of them and the sidecar's log; returns the summary's part. */
async function showRunning(views: PodView[]): Promise<string> {
  const show = async (args: string[]) => {
    say(`\n$ kubectl ${args.join(' ')}`);
    const r = await kubectl(args);
    say(indent((r.stdout || r.stderr).trimEnd(), 2));
    return r.stdout;
  };
  await show(['get', 'pods', '-n', NAMESPACE, '-o', 'wide']);
  const deployment = (await show(['get', 'deployment', 'demo-app', '-n', NAMESPACE])).split('\n')[1]?.trim().split(/\s+/)[1] ?? '?';
  const job = (await show(['get', 'job', 'demo-job', '-n', NAMESPACE])).split('\n')[1]?.trim().split(/\s+/)[1] ?? '?';
  const sample = views.find((v) => v.injected && v.name.startsWith('demo-app-'));
  if (sample) await show(['logs', sample.name, '-n', NAMESPACE, '-c', SIDECAR_NAME]);
  return `on the node: Deployment demo-app READY ${deployment}, Job demo-job ${job}`;
}

/** Whether the cluster has the node, Ready (test/cluster/node.ts; as root with containerd). */
async function nodeReady(cluster: Cluster): Promise<boolean> {
  const node = await cluster.request('GET', `/api/v1/nodes/${NODE_NAME}`);
  return node.status === 200 && (node.body?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
}

function indent(text: string, n: number): string {
  return text.split('\n').map((l) => `${' '.repeat(n)}${l}`).join('\n');
}

/** What a user sees from kubectl: two server-side dry runs whose answers carry the webhook's warnings. */
async function showWarnings(): Promise<void> {
  const tries: Array<{ what: string; args: string[] }> = [
    {
      what: 'a labelled pod with an unknown mode (injected, with a warning)',
      args: ['run', 'try-mode', '-n', NAMESPACE, '--image=registry.example.invalid/app:1', `--labels=${LABEL_PROTECT}=true`, '--annotations=pandocore.xyz/mode=audit', '--dry-run=server', '-o', 'name'],
    },
    {
      what: 'a labelled pod in namespace default, never set up (not injected: namespace-not-ready)',
      args: ['run', 'try-default', '-n', 'default', '--image=registry.example.invalid/app:1', `--labels=${LABEL_PROTECT}=true`, '--dry-run=server', '-o', 'name'],
    },
  ];
  say('\nAdmission warnings, as kubectl shows them:');
  for (const t of tries) {
    const r = await kubectl(t.args);
    say(`  ${t.what}:\n  $ kubectl ${t.args.join(' ')}`);
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('Warning:'));
    say(indent(warnings.length > 0 ? warnings.join('\n') : '(no warning)', 4));
  }
}

async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(500);
  }
  throw new DemoError(`timed out after ${formatDuration(timeoutMs)} waiting for ${what}`, 'see the log');
}

async function up(): Promise<void> {
  const previous = readDemoState(STATE_FILE);
  if (previous && demoRunning(previous)) {
    say(`A demo is already running (since ${previous.startedAt}, webhook pid ${previous.webhookPid} on 127.0.0.1:${previous.webhookPort}).`);
    say(usage(previous));
    return;
  }
  if (previous || existsSync(DEMO_DIR)) {
    say(previous
      ? `A previous demo's state was left over (its webhook or control plane is gone): stopping what is left and removing it first.`
      : `A previous npm run demo did not finish: stopping what it started and removing its state first.`);
    await down(true);
  }
  mkdirSync(DEMO_DIR, { recursive: true });
  say(`npm run demo: the whole product on a local control plane (details: ${rel(LOG_FILE)})`);
  const timings = new Timings(TIMINGS_FILE);
  const requestedPort = process.env.PANDO_DEMO_PORT ? Number(process.env.PANDO_DEMO_PORT) : undefined;

  await step('checking what the machine has', async () => {
    const missing = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl', 'helm'].filter((b) => !existsSync(join(BIN_DIR, b)));
    if (missing.length > 0 && !goAvailable()) {
      throw new DemoError(`Go is needed to build ${missing.join(', ')} from their Go modules and is not on PATH`, 'install Go 1.26 or newer, put it on PATH, and run npm run demo again');
    }
    goAvailable();
    if (!hasCommand('docker-registry') && process.getuid?.() !== 0) {
      throw new DemoError('docker-registry (the local OCI registry) is not installed', 'apt-get install docker-registry (as root), then npm run demo again');
    }
    for (const c of ['curl', 'python3']) if (!hasCommand(c)) throw new DemoError(`${c} is not installed (scripts/registry.sh needs it)`, `install ${c} and run npm run demo again`);
    if (requestedPort !== undefined && !(await portFree(requestedPort))) {
      throw new DemoError(`port ${requestedPort} (PANDO_DEMO_PORT) on 127.0.0.1 is taken by another process`, `free it (ss -ltnp | grep :${requestedPort}) or unset PANDO_DEMO_PORT to use a free port`);
    }
  });
  await step('building the control plane (etcd, kube-apiserver, kube-controller-manager, kubectl; cached in .tools/bin)', () =>
    build('control-plane', 'building the control plane', 'test/cluster/build.sh', timings));
  await step('building helm (cached in .tools/bin)', () => build('helm', 'building helm', 'scripts/tools/helm.sh', timings));

  const registry = await step('starting the OCI registry on 127.0.0.1', async () => (await mustRun('starting the registry', 'bash', [join(REPO_ROOT, 'scripts/registry.sh'), 'start'])).trim());
  const chartRef = await step(`publishing the chart to oci://${registry}/charts`, async () =>
    (await mustRun('publishing the chart', 'bash', [join(REPO_ROOT, 'scripts/chart/publish.sh'), `oci://${registry}/charts`])).trim().split('\n').pop()!);
  say(`  ${chartRef}`);
  // The image runs where it can, as the e2e runs it: as root (buildah, a mount namespace, chroot).
  const root = process.getuid?.() === 0;
  const fromImage = root && process.env.PANDO_DEMO_FROM !== 'source';
  let imageRef = '';
  if (fromImage) {
    await step('building the webhook image (buildah, no base image; cached per commit)', () => buildImage(timings));
    imageRef = await step(`publishing the image to ${registry}/pando-webhook`, async () =>
      (await mustRun('publishing the image', 'bash', [join(REPO_ROOT, 'scripts/image/publish.sh'), `${registry}/pando-webhook`])).trim().split('\n').pop()!);
    say(`  ${imageRef}`);
  }
  const runFrom = fromImage
    ? `from its image ${imageRef.split('@')[1]?.slice(0, 19)}... (uid 65532, read-only root; the chart's env)`
    : `from source (app/main.ts with the chart's env; ${root ? 'PANDO_DEMO_FROM=source' : 'not root: the image needs a mount namespace and chroot'})`;
  say(`  the webhook runs ${runFrom}`);

  const cluster = await step('starting etcd, kube-apiserver and kube-controller-manager on 127.0.0.1', async () => {
    try {
      return await startCluster((line) => {
        log(line);
        say(`  ${line}`);
      });
    } catch (err) {
      throw new DemoError(`the control plane did not start: ${(err as Error).message.split('\n')[0]}`, `see ${rel(join(CLUSTER_DIR, 'logs'))}`);
    }
  });

  const onNode = await nodeReady(cluster);
  const [standinRepository, standinTag] = NODE_IMAGES.sidecar.split(':') as [string, string];
  say(onNode
    ? `  the pods run on node ${NODE_NAME}; sidecar.image is the stand-in ${NODE_IMAGES.sidecar} (test/sidecar-standin, in the node's containerd): the vendor's image is not reachable here`
    : '  no node: the pods stay Pending, and the summary shows what admission stored');

  const webhookPort = requestedPort ?? (await freePort());
  const metricsPort = await freePort([webhookPort]);
  const webhookUrl = `https://127.0.0.1:${webhookPort}/mutate`;
  const [chart, version] = [chartRef.slice(0, chartRef.lastIndexOf(':')), chartRef.slice(chartRef.lastIndexOf(':') + 1)];
  // The README's operator command, plus the out-of-cluster development values and the local registry's flags.
  const helmArgs = ['upgrade', '--install', RELEASE, chart, '-n', RELEASE_NAMESPACE, '--create-namespace',
    '--set', `licenseKey=${LICENSE_KEY}`, '--set', 'defaultMode=monitor', '--set', 'tls.certManager=false',
    '--set', `webhook.url=${webhookUrl}`, '--set', 'tls.extraIpAddresses={127.0.0.1}', '--version', version, '--plain-http',
    ...(imageRef ? ['--set', `image.repository=${imageRef.split('@')[0]}`, '--set', `image.digest=${imageRef.split('@')[1]}`] : []),
    ...(onNode ? ['--set', `sidecar.image.repository=${standinRepository}`, '--set-string', `sidecar.image.tag=${standinTag}`] : [])];
  await step('installing the chart with helm', async () => {
    say(`  $ helm ${helmArgs.join(' ')}`);
    await mustRun('helm upgrade --install', HELM, helmArgs, { env: { ...HELM_ENV, KUBECONFIG: KUBECONFIG_PATH } });
  });

  const state = await step(`starting the webhook on https://127.0.0.1:${webhookPort} (self-signed: it fills the caBundle itself)`, () =>
    startWebhook(cluster, { webhookPort, metricsPort, registry, chartRef, runFrom }, imageRef));

  await step(`creating namespace ${NAMESPACE} and running pando setup-namespace ${NAMESPACE}`, async () => {
    await mustRun(`kubectl create namespace ${NAMESPACE}`, KUBECTL, ['--kubeconfig', KUBECONFIG_PATH, 'create', 'namespace', NAMESPACE]);
    await waitFor(`ServiceAccount default in ${NAMESPACE}`, 30_000, async () => ((await kubectl(['get', 'serviceaccount', 'default', '-n', NAMESPACE])).status === 0 ? true : undefined));
    const out = await mustRun('pando setup-namespace', process.execPath, [CLI, 'setup-namespace', NAMESPACE], { env: { KUBECONFIG: KUBECONFIG_PATH, NO_COLOR: '1' } });
    say(indent(out.trimEnd(), 2));
  });

  await step('waiting until the API server trusts the webhook (a labelled dry-run pod comes back injected)', async () => {
    await waitFor('a labelled dry-run pod to be injected', 60_000, async () => {
      const r = await kubectl(['run', 'trust-check', '-n', NAMESPACE, '--image=registry.example.invalid/app:1', `--labels=${LABEL_PROTECT}=true`, '--dry-run=server', '-o', 'json']);
      return r.status === 0 && sidecarOf(JSON.parse(r.stdout)) ? true : undefined;
    });
  });

  await step(`applying ${rel(WORKLOADS)} (Deployment demo-app with 2 replicas, Job demo-job, pod demo-unlabelled)`, async () => {
    const r = await mustRun('kubectl apply', KUBECTL, ['--kubeconfig', KUBECONFIG_PATH, 'apply', '-f', WORKLOADS]);
    say(indent(r.trimEnd(), 2));
    await waitFor('the Deployment\'s 2 pods, the Job\'s pod and the bare pod', 60_000, async () => ((await podsOf(NAMESPACE)).length >= 4 ? true : undefined));
  });

  if (onNode) {
    await step('waiting for the pods to run on the node (Deployment demo-app READY 2/2, Job demo-job Complete)', async () => {
      await waitFor('Deployment demo-app READY 2/2 and Job demo-job Complete', 120_000, async () => {
        const d = await kubectl(['get', 'deployment', 'demo-app', '-n', NAMESPACE, '-o', 'jsonpath={.status.readyReplicas}']);
        const j = await kubectl(['get', 'job', 'demo-job', '-n', NAMESPACE, '-o', 'jsonpath={.status.conditions[?(@.type=="Complete")].status}']);
        return d.stdout.trim() === '2' && j.stdout.trim() === 'True' ? true : undefined;
      });
    });
  }

  await showResults(state, onNode);
  say(`\nready in ${formatDuration(Date.now() - t0)}`);
  say(usage(state));
}

/** scripts/image/build.sh --reuse: skipped when the built image is of this commit and its inputs have no changes (as after npm run test:e2e). */
async function buildImage(timings: Timings): Promise<void> {
  await build('image', 'building the image', 'scripts/image/build.sh', timings, ['--reuse']);
}

async function startWebhook(cluster: Cluster, parts: Omit<DemoState, 'webhookPid' | 'webhookArg' | 'kubeconfig' | 'startedAt'>, imageRef = ''): Promise<DemoState> {
  const manifest = await mustRun('helm get manifest', HELM, ['get', 'manifest', RELEASE, '-n', RELEASE_NAMESPACE], { env: { ...HELM_ENV, KUBECONFIG: KUBECONFIG_PATH } });
  const objects = parseAllDocuments(manifest).map((d) => d.toJS()).filter((o) => o && typeof o === 'object');
  // As the chart's ServiceAccount (a bound token, as a pod of the Deployment gets): the chart's RBAC.
  const identity = await serviceAccountKubeconfig(cluster, RELEASE_NAMESPACE, webhookServiceAccount(objects), { dir: DEMO_DIR, expirationSeconds: 7 * 24 * 3600 });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    ...webhookEnvFromObjects(objects),
    KUBECONFIG: identity.path,
    [ENV.namespace]: RELEASE_NAMESPACE,
    [ENV.host]: '127.0.0.1',
    [ENV.port]: String(parts.webhookPort),
    [ENV.metricsPort]: String(parts.metricsPort),
    [ENV.shutdownDelayMs]: '0',
  };
  if (imageRef) return startImageWebhook(parts, imageRef, env, readFileSync(identity.path, 'utf8'));
  const out = openSync(WEBHOOK_LOG, 'a');
  const child = spawn(process.execPath, [MAIN], { cwd: REPO_ROOT, env, detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  if (child.pid === undefined) throw new DemoError('the webhook did not start', `see ${rel(WEBHOOK_LOG)}`);
  const state: DemoState = { ...parts, webhookPid: child.pid, webhookArg: MAIN, kubeconfig: KUBECONFIG_PATH, startedAt: new Date().toISOString() };
  writeDemoState(STATE_FILE, state);
  const deadline = Date.now() + 30_000;
  while ((await readyz(parts.webhookPort)) !== 200) {
    if (!runsScript(child.pid, MAIN)) throw new DemoError('the webhook exited at start', `see ${rel(WEBHOOK_LOG)}`);
    if (Date.now() > deadline) throw new DemoError('the webhook did not become ready within 30 s', `see ${rel(WEBHOOK_LOG)}`);
    await sleep(200);
  }
  return state;
}

/**
 * The webhook from the image the demo published, detached (it outlives npm run demo), with the
 * chart's env and the chart's ServiceAccount's kubeconfig mounted where a pod has its token.
 */
async function startImageWebhook(parts: Omit<DemoState, 'webhookPid' | 'webhookArg' | 'kubeconfig' | 'startedAt'>, ref: string, env: Record<string, string>, kubeconfig: string): Promise<DemoState> {
  const { startWebhookFromImage, TLS_MOUNT_PATH } = await import('../image/run-from-image.ts');
  const { PATH: _path, KUBECONFIG: _kubeconfig, ...chartEnv } = env;
  try {
    const hook = await startWebhookFromImage({
      ref,
      env: { ...chartEnv, KUBECONFIG: `${TLS_MOUNT_PATH}/kubeconfig`, [ENV.logLevel]: 'info' },
      extraFiles: { kubeconfig },
      port: parts.webhookPort,
      metricsPort: parts.metricsPort,
      logFile: WEBHOOK_LOG,
    });
    const state: DemoState = { ...parts, webhookPid: hook.pid, webhookArg: hook.args.at(-1)!, runDir: hook.runDir, kubeconfig: KUBECONFIG_PATH, startedAt: new Date().toISOString() };
    writeDemoState(STATE_FILE, state);
    return state;
  } catch (err) {
    throw new DemoError(`the webhook from the image did not start: ${(err as Error).message.split('\n')[0]}`, `see ${rel(WEBHOOK_LOG)}; PANDO_DEMO_FROM=source runs it from source`);
  }
}

async function stopPid(pid: number, arg: string): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 100 && runsScript(pid, arg); i++) await sleep(100);
  if (runsScript(pid, arg)) process.kill(pid, 'SIGKILL');
}

/** Every process and port the demo's parts recorded: the webhook, the control plane, the registry. */
function recorded(state: DemoState | undefined): { pids: number[]; ports: number[] } {
  const json = (file: string): any => {
    try {
      return JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      return undefined;
    }
  };
  const cluster = json(join(CLUSTER_DIR, 'state.json'));
  const registryPid = Number(existsSync(join(REPO_ROOT, '.tools/registry/pid')) ? readFileSync(join(REPO_ROOT, '.tools/registry/pid'), 'utf8') : NaN);
  const registryPort = Number((existsSync(join(REPO_ROOT, '.tools/registry/addr')) ? readFileSync(join(REPO_ROOT, '.tools/registry/addr'), 'utf8') : '').split(':')[1]);
  const pids = [state?.webhookPid, ...Object.values<number>(cluster?.pids ?? {}), registryPid];
  const ports = [state?.webhookPort, state?.metricsPort, cluster?.apiserverPort, cluster?.etcdPort, registryPort];
  return { pids: pids.filter((p): p is number => Number.isInteger(p) && p! > 0), ports: ports.filter((p): p is number => Number.isInteger(p) && p! > 0) };
}

async function down(quiet = false): Promise<void> {
  const note = (line: string) => (quiet ? log(line) : say(line));
  const state = readDemoState(STATE_FILE);
  const before = recorded(state);
  if (state && runsScript(state.webhookPid, state.webhookArg)) {
    await stopPid(state.webhookPid, state.webhookArg);
    note(`stopped the webhook (pid ${state.webhookPid})`);
  }
  await stopCluster(note);
  const registry = spawnSync('bash', [join(REPO_ROOT, 'scripts/registry.sh'), 'stop'], { encoding: 'utf8' });
  if (registry.status === 0) note('stopped the registry');
  if (logFd !== undefined) closeSync(logFd);
  logFd = undefined;
  if (state?.runDir) rmSync(state.runDir, { recursive: true, force: true });
  rmSync(CLUSTER_DIR, { recursive: true, force: true });
  rmSync(DEMO_DIR, { recursive: true, force: true });
  note(`removed ${rel(DEMO_DIR)}, ${rel(CLUSTER_DIR)} and the registry's storage (build caches in .tools/bin are kept)`);
  if (!quiet) {
    const running = before.pids.filter(alive);
    const bound = [];
    for (const p of before.ports) if (!(await portFree(p))) bound.push(p);
    if (running.length === 0 && bound.length === 0) {
      say(`nothing of the demo left: processes ${before.pids.join(', ') || '(none recorded)'} gone, ports ${before.ports.join(', ') || '(none recorded)'} free`);
    } else {
      say(`still there: processes ${running.join(', ') || 'none'}; ports bound ${bound.join(', ') || 'none'}`);
      process.exitCode = 1;
    }
  }
}

/** Only the webhook, with the code as it is now; the control plane, the release and the pods stay. */
async function restart(): Promise<void> {
  const state = readDemoState(STATE_FILE);
  if (!state || !clusterReady()) throw new DemoError('no demo is running', 'start one with npm run demo');
  if (runsScript(state.webhookPid, state.webhookArg)) await stopPid(state.webhookPid, state.webhookArg);
  if (state.runDir) rmSync(state.runDir, { recursive: true, force: true });
  const cluster = await startCluster();
  const { webhookPort, metricsPort, registry, chartRef } = state;
  const next = await startWebhook(cluster, { webhookPort, metricsPort, registry, chartRef, runFrom: 'from source (app/main.ts with the chart\'s env; npm run demo -- restart)' });
  say(`restarted the webhook from source, app/ as it is now (pid ${next.webhookPid}, https://127.0.0.1:${webhookPort}/mutate, log ${rel(WEBHOOK_LOG)}); it reads its CA from the Secret, so the caBundle still trusts it`);
}

function explain(err: unknown): void {
  const known = err instanceof DemoError;
  if (!known) log(String((err as Error)?.stack ?? err));
  const message = known ? `${err.message}; ${err.fix}` : `${String((err as Error)?.message ?? err).split('\n')[0]}; this is a bug in the demo`;
  console.error(`demo: ${message} (details: ${rel(LOG_FILE)}; npm run demo -- down removes what was started)`);
  process.exitCode = 1;
}

async function main(): Promise<void> {
  const verb = process.argv[2] ?? 'up';
  process.on('uncaughtException', (err) => {
    explain(err);
    process.exit(1);
  });
  try {
    if (verb === 'up') await up();
    else if (verb === 'down') await down();
    else if (verb === 'restart') await restart();
    else {
      console.error('usage: npm run demo [-- up|down|restart]');
      process.exitCode = 2;
    }
  } catch (err) {
    explain(err);
  }
}

await main();
