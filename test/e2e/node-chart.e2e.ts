// Issue 22 item 4: the chart's own Deployment runs on the e2e node (kubelet, containerd, runc;
// test/cluster/node.ts), so its probes, read-only root, securityContext and resources are exercised
// by a kubelet instead of being read off a manifest. The chart is installed from the published OCI
// reference with the webhook image the e2e runner published (PANDO_E2E_IMAGE), one replica, and the
// values made for clusters whose API server cannot reach the pod network:
//   - hostNetwork (dnsPolicy ClusterFirstWithHostNet), securePort and metricsPort on free ports of
//     127.0.0.1: the node's pods have a network namespace with only lo, where an HTTP probe to the
//     pod IP could not reach them; a host-network pod is probed on the node's address, 127.0.0.1;
//   - schedulerName and the toleration that put a pod on the node;
//   - webhook.url https://127.0.0.1:securePort/mutate with the chart's self-signed TLS
//     (tls.certManager=false, the default): the webhook makes its CA, serves a leaf with
//     tls.extraIpAddresses=127.0.0.1 and writes caBundle itself, so no certificate is prepared here;
//   - extraEnv: PANDO_HOST=127.0.0.1 (nothing of this machine may listen beyond loopback) and
//     KUBERNETES_SERVICE_HOST/PORT = the API server on 127.0.0.1 (the `kubernetes` Service's address
//     is virtual here: nothing may dial it).
// Then pods are injected through that in-cluster webhook (no webhook process runs outside), an
// unlabelled control first. Skipped, with the reason, without a node or without the image.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ANNOTATION_STATUS, ENV, LABEL_PROTECT, SIDECAR_NAME } from '../../app/contract.ts';
import { BIN_DIR, startCluster, type Cluster } from '../cluster/harness.ts';
import { NODE_IMAGES, NODE_SCHEDULER } from '../cluster/node.ts';
import { freePort } from '../cluster/free-port.ts';
import { helmUpgradeInstall, RELEASE_NAMESPACE, setupProtectedNamespace, tearDown, type Deployed } from './product.ts';
import { kubectlOn, nodeMissing, onTheNode } from './node-support.ts';
import { createNamespace, waitUntil } from './support.ts';
import { servedCertificate, verifyServedChain } from './webhook-process.ts';

const LICENSE = 'e2e-license-node-chart';
const [SIDECAR_REPOSITORY, SIDECAR_TAG] = NODE_IMAGES.sidecar.split(':') as [string, string];
const SELECTOR = 'app.kubernetes.io/name=pando-webhook';
let cluster: Cluster;
let deployed: Deployed | undefined;
let skipReason: string | undefined;
let securePort: number;
let metricsPort: number;
let installedAt = 0;
let ns: string;
const namespaces: string[] = [];

const kubectl = (...args: string[]): string => kubectlOn(cluster, ...args);

function skip(t: TestContext): boolean {
  if (skipReason) t.skip(skipReason);
  return skipReason !== undefined;
}

/** The webhook pod of the release, as the API server has it. */
function webhookPod(): any {
  const pods = (JSON.parse(kubectl('get', 'pods', '-n', RELEASE_NAMESPACE, '-l', SELECTOR, '-o', 'json')).items as any[]).filter((p) => !p.metadata.deletionTimestamp);
  assert.equal(pods.length, 1, `one webhook pod: ${pods.map((p) => p.metadata.name).join(', ')}`);
  return pods[0];
}

/** `kubectl get pods` columns NAME READY STATUS RESTARTS of the webhook pod. */
function webhookRow(): string[] {
  return kubectl('get', 'pods', '-n', RELEASE_NAMESPACE, '-l', SELECTOR, '--no-headers').trim().split(/\s+/).slice(0, 4);
}

/** The pid (in this host's pid namespace) of the process listening on 127.0.0.1:port, and every address it listens on. */
function listener(port: number): { pid: number; addresses: string[] } {
  const r = spawnSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const pid = Number(/pid=(\d+)/.exec(r.stdout)?.[1]);
  assert.ok(pid > 0, `a process listens on ${port}: ${r.stdout}`);
  const all = spawnSync('ss', ['-Hltnp'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`pid=${pid},`));
  return { pid, addresses: all.map((l) => l.trim().split(/\s+/)[3]!) };
}

function podObject(name: string, labelled: boolean): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app: name, ...(labelled ? { [LABEL_PROTECT]: 'true' } : {}) } },
    spec: { ...onTheNode, terminationGracePeriodSeconds: 5, containers: [{ name: 'app', image: NODE_IMAGES.pause }] },
  };
}

function create(obj: object): void {
  const r = spawnSync(join(BIN_DIR, 'kubectl'), ['create', '-f', '-'], { input: JSON.stringify(obj), encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
}

before(async () => {
  cluster = await startCluster();
  const image = process.env.PANDO_E2E_IMAGE;
  const noNode = await nodeMissing(cluster);
  if (noNode) skipReason = `no node: ${noNode}`;
  else if (!image) {
    skipReason = 'no webhook image: PANDO_E2E_IMAGE is unset (the e2e runner builds and publishes it as root, not with PANDO_E2E_FROM=source)';
    console.log(`# skipped: ${skipReason}`);
  }
  if (skipReason) return;
  securePort = await freePort();
  metricsPort = await freePort();
  const apiServer = new URL(cluster.server);
  installedAt = Date.now();
  const { objects, from } = helmUpgradeInstall(cluster, {
    licenseKey: LICENSE,
    webhookUrl: `https://127.0.0.1:${securePort}/mutate`,
    // Self-signed mode writes caBundle itself.
    caBundle: '',
    image: { repository: SIDECAR_REPOSITORY, tag: SIDECAR_TAG },
    extra: {
      replicas: 1,
      hpa: { enabled: false },
      hostNetwork: true,
      securePort,
      metricsPort,
      schedulerName: NODE_SCHEDULER,
      tolerations: onTheNode.tolerations,
      tls: { extraIpAddresses: ['127.0.0.1'] },
      extraEnv: [
        { name: ENV.host, value: '127.0.0.1' },
        { name: 'KUBERNETES_SERVICE_HOST', value: apiServer.hostname },
        { name: 'KUBERNETES_SERVICE_PORT', value: apiServer.port },
      ],
    },
  });
  deployed = { from, objects, env: {} };
  console.log(`# installed ${from} with image ${image}: securePort ${securePort}, metricsPort ${metricsPort}, API server ${apiServer.host}`);
});

after(() => tearDown({ cluster, deployed, namespaces }));

test('the chart\'s webhook pod runs on the node: scheduled by the node\'s scheduler, host network, Running 1/1 READY (the kubelet\'s HTTPS readiness probe on securePort passed), restarts 0', async (t) => {
  if (skip(t)) return;
  try {
    await waitUntil('the webhook pod READY 1/1', 120_000, async () => {
      const [, ready, status] = webhookRow();
      return ready === '1/1' && status === 'Running';
    }, 500);
  } catch (err) {
    // Show why (events, container state, log) rather than a bare timeout.
    console.log(kubectl('describe', 'pods', '-n', RELEASE_NAMESPACE, '-l', SELECTOR));
    console.log(spawnSync(join(BIN_DIR, 'kubectl'), ['logs', '-n', RELEASE_NAMESPACE, '-l', SELECTOR, '--tail', '40'], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath } }).stdout);
    throw err;
  }
  const readyIn = Date.now() - installedAt;
  const pod = webhookPod();
  const at = (type: string) => Date.parse(pod.status.conditions.find((c: any) => c.type === type).lastTransitionTime);
  const status = pod.status.containerStatuses[0];
  console.log(`# webhook pod ${pod.metadata.name} READY 1/1 ${readyIn} ms after helm install (scheduled ${pod.status.startTime}, container started ${status.state.running.startedAt}, Ready ${new Date(at('Ready')).toISOString()}); image ${status.imageID}`);
  const row = webhookRow();
  assert.deepEqual(row.slice(1), ['1/1', 'Running', '0'], `kubectl get pods: ${row.join(' ')}`);
  assert.equal(pod.spec.nodeName, '127.0.0.1');
  assert.equal(pod.spec.schedulerName, NODE_SCHEDULER);
  assert.equal(pod.spec.hostNetwork, true);
  assert.equal(pod.spec.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.equal(pod.status.podIP, '127.0.0.1', 'a host-network pod has the node\'s address');
  assert.equal(status.ready, true);
  assert.ok(status.imageID.endsWith(process.env.PANDO_E2E_IMAGE!.split('@')[1]!), `the published image, by digest: ${status.imageID}`);
  const c = pod.spec.containers[0];
  assert.deepEqual(c.ports.map((p: any) => [p.name, p.containerPort]), [['https', securePort], ['metrics', metricsPort]]);
  assert.deepEqual([c.readinessProbe.httpGet.port, c.readinessProbe.httpGet.scheme, c.livenessProbe.httpGet.port, c.startupProbe.httpGet.port], ['https', 'HTTPS', 'metrics', 'metrics']);
});

test('the webhook process runs as the chart says: uid/gid 65532, read-only root, no capabilities, no new privileges, seccomp, the chart\'s memory and CPU limits, listening on 127.0.0.1 only', async (t) => {
  if (skip(t)) return;
  const { pid, addresses } = listener(securePort);
  console.log(`# webhook process pid ${pid} listens on ${addresses.join(', ')}`);
  assert.deepEqual(addresses.sort(), [`127.0.0.1:${metricsPort}`, `127.0.0.1:${securePort}`].sort(), 'PANDO_HOST=127.0.0.1: nothing beyond loopback');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim().split(/\s+/);
  console.log(`# /proc/${pid}/status: Uid ${field('Uid')!.join(' ')}, Gid ${field('Gid')!.join(' ')}, CapEff ${field('CapEff')}, NoNewPrivs ${field('NoNewPrivs')}, Seccomp ${field('Seccomp')}`);
  assert.deepEqual(field('Uid'), ['65532', '65532', '65532', '65532'], 'podSecurityContext.runAsUser');
  assert.deepEqual(field('Gid'), ['65532', '65532', '65532', '65532'], 'podSecurityContext.runAsGroup');
  assert.deepEqual(field('CapEff'), ['0000000000000000'], 'capabilities drop ALL');
  assert.deepEqual(field('NoNewPrivs'), ['1'], 'allowPrivilegeEscalation false');
  assert.deepEqual(field('Seccomp'), ['2'], 'seccompProfile RuntimeDefault (filter mode)');
  // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...; the container's root is "/" in its own mount namespace.
  const mounts = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' ')).filter((f) => f.length > 5);
  const root = mounts.find((f) => f[4] === '/');
  const tmp = mounts.find((f) => f[4] === '/tmp');
  console.log(`# root mount options ${root?.[5]}; /tmp ${tmp?.[5]}`);
  assert.ok(root?.[5]?.split(',').includes('ro'), `readOnlyRootFilesystem: / is mounted ro (${root?.join(' ')})`);
  assert.ok(tmp?.[5]?.split(',').includes('rw'), `/tmp is the writable emptyDir (${tmp?.join(' ')})`);
  // cgroup v1 (this host): the kubelet wrote the chart's limits (memory 256Mi, cpu 1).
  const cgroups = Object.fromEntries(readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n').map((l) => l.split(':')).flatMap(([, ctrls, path]) => ctrls!.split(',').map((ctrl) => [ctrl, path!])));
  const memory = Number(readFileSync(`/sys/fs/cgroup/memory${cgroups.memory}/memory.limit_in_bytes`, 'utf8'));
  const quota = Number(readFileSync(`/sys/fs/cgroup/cpu${cgroups.cpu}/cpu.cfs_quota_us`, 'utf8'));
  const period = Number(readFileSync(`/sys/fs/cgroup/cpu${cgroups.cpu}/cpu.cfs_period_us`, 'utf8'));
  console.log(`# cgroup ${cgroups.memory}: memory.limit_in_bytes ${memory}, cpu ${quota}/${period}`);
  assert.equal(memory, 256 * 1024 * 1024, 'resources.limits.memory 256Mi');
  assert.equal(quota / period, 1, 'resources.limits.cpu 1');
});

test('self-signed TLS in the pod: the webhook wrote caBundle, and what it serves on 127.0.0.1:securePort verifies against it for IP 127.0.0.1', async (t) => {
  if (skip(t)) return;
  const config = JSON.parse(kubectl('get', 'mutatingwebhookconfiguration', 'pando-webhook', '-o', 'json'));
  const hook = config.webhooks[0];
  assert.equal(hook.clientConfig.url, `https://127.0.0.1:${securePort}/mutate`);
  const caPem = Buffer.from(hook.clientConfig.caBundle ?? '', 'base64').toString();
  assert.match(caPem, /BEGIN CERTIFICATE/, 'caBundle written by the webhook');
  const served = await servedCertificate(securePort);
  console.log(`# served: ${served.subject.replace(/\n/g, ', ')}; SAN ${served.subjectAltName}; issuer ${served.issuer.replace(/\n/g, ', ')}`);
  assert.ok(served.subjectAltName?.includes('IP Address:127.0.0.1'), served.subjectAltName);
  assert.equal(await verifyServedChain(securePort, caPem), 'ok', 'trusted by caBundle alone, for the name 127.0.0.1');
});

test('pods are injected through the in-cluster webhook: an unlabelled control Running 1/1 without the sidecar, then a labelled pod Running 2/2 with it', async (t) => {
  if (skip(t)) return;
  ns = await createNamespace(cluster, 'e2e-node-chart');
  namespaces.push(ns);
  await setupProtectedNamespace(cluster, ns, LICENSE);
  const runningIn = async (name: string, ready: string): Promise<number> => {
    const t0 = Date.now();
    await waitUntil(`pod ${name} ${ready} Running`, 90_000, async () => {
      const [, r, s] = kubectl('get', 'pod', name, '-n', ns, '--no-headers').trim().split(/\s+/);
      return r === ready && s === 'Running';
    }, 500);
    return Date.now() - t0;
  };
  create(podObject('control', false));
  const controlMs = await runningIn('control', '1/1');
  const control = JSON.parse(kubectl('get', 'pod', 'control', '-n', ns, '-o', 'json'));
  assert.equal(control.metadata.annotations?.[ANNOTATION_STATUS], undefined);
  assert.equal((control.spec.initContainers ?? []).length, 0);
  const reviewsBefore = await reviews();
  create(podObject('protected', true));
  const protectedMs = await runningIn('protected', '2/2');
  const pod = JSON.parse(kubectl('get', 'pod', 'protected', '-n', ns, '-o', 'json'));
  const row = kubectl('get', 'pod', 'protected', '-n', ns, '--no-headers').trim().split(/\s+/);
  const reviewsAfter = await reviews();
  console.log(`# control Running 1/1 in ${controlMs} ms; protected ${row.slice(1, 4).join(' ')} in ${protectedMs} ms; webhook reviews ${reviewsBefore} -> ${reviewsAfter}`);
  assert.equal(pod.metadata.annotations[ANNOTATION_STATUS], 'injected');
  const sidecar = pod.status.initContainerStatuses.find((s: any) => s.name === SIDECAR_NAME);
  assert.ok(sidecar?.state?.running, `the native sidecar runs: ${JSON.stringify(sidecar)}`);
  assert.deepEqual(row.slice(1, 4), ['2/2', 'Running', '0']);
  // The review came to the pod's listener (no webhook process runs outside the cluster here).
  assert.ok(reviewsAfter > reviewsBefore, `the in-cluster webhook counted the review (${reviewsBefore} -> ${reviewsAfter})`);
});

test('after the cases: the webhook pod has run past three liveness periods with restarts 0; probe failures only before it was first Ready, none of liveness (its startup probe holds liveness back)', async (t) => {
  if (skip(t)) return;
  const pod = webhookPod();
  const started = Date.parse(pod.status.containerStatuses[0].state.running.startedAt);
  // livenessProbe: every 10 s, 3 failures in a row restart the container.
  const wait = Math.max(0, started + 35_000 - Date.now());
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const row = webhookRow();
  const now = webhookPod();
  const ready = Date.parse(now.status.conditions.find((c: any) => c.type === 'Ready').lastTransitionTime);
  const events = JSON.parse(kubectl('get', 'events', '-n', RELEASE_NAMESPACE, '--field-selector', `involvedObject.name=${pod.metadata.name}`, '-o', 'json')).items as any[];
  const since = (e: any) => `${((Date.parse(e.lastTimestamp ?? e.eventTime) - started) / 1000).toFixed(0)} s`;
  console.log(`# after ${Math.round((Date.now() - started) / 1000)} s: ${row.join(' ')}; events (last seen, after the container start): ${events.map((e) => `${e.reason}${e.count > 1 ? ` x${e.count}` : ''} ${since(e)}`).join(', ')}`);
  for (const e of events.filter((e) => e.reason === 'Unhealthy')) console.log(`#   Unhealthy x${e.count ?? 1}, last ${since(e)}: ${e.message}`);
  assert.deepEqual(row.slice(1), ['1/1', 'Running', '0']);
  assert.equal(now.status.containerStatuses[0].started, true, 'the startup probe passed');
  // The kubelet runs no liveness or readiness probe before the startup probe has passed (v1.37.2,
  // pkg/kubelet/prober/worker.go: "Disable other probes until container has started"), and the
  // startup probe asks the liveness endpoint: while Node loads only the startup probe fails
  // (connection refused). Before the chart had one, 1 liveness failure was seen in one run of three.
  const unhealthy = events.filter((e) => e.reason === 'Unhealthy');
  const late = unhealthy.filter((e) => Date.parse(e.lastTimestamp ?? e.eventTime) > ready);
  assert.deepEqual(late.map((e) => `${e.message} (${since(e)})`), [], 'no probe failure after the pod was Ready');
  assert.deepEqual(unhealthy.filter((e) => /^Liveness/.test(e.message)).map((e) => e.message), [], 'no liveness failure');
});

/** pandocore_admission_requests_total of the pod's metrics listener. */
async function reviews(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  const text = await res.text();
  return text.split('\n').filter((l) => l.startsWith('pandocore_admission_requests_total')).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}
