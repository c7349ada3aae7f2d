// Issue 14 on the real control plane: labelled pods created while the webhook was down are found,
// reported (gauges, SidecarMissing Events, doctor) and, with watchdog.heal=restart, healed through
// their Deployment's own rollout; bare pods and namespaces the webhook skips are only reported; one
// replica acts at a time.
//
// Pods have to become Ready for a rollout to finish (without a kubelet a `rollout restart` of 3
// replicas stalls at its surge pod for good). This file plays the kubelet's part for its own
// namespaces only: it writes Running and Ready through the pods' status subresource, as a kubelet
// does. Unscheduled pods may carry any status (pkg/apis/core/validation/validation.go,
// ValidatePodStatusUpdate, only forbids changing nodeName), the ReplicaSet and Deployment
// controllers count them from their Ready condition, and an unscheduled pod is deleted at once
// (pkg/registry/core/pod/strategy.go: "if the pod is not scheduled, delete immediately"), so the old
// ReplicaSet really scales to 0. KWOK with kube-scheduler would do the same with two more Go builds
// on a machine whose two cores the whole e2e suite shares; see the README's Watchdog section.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, CoordinationV1Api, PatchStrategy, setHeaderOptions, type V1Deployment } from '@kubernetes/client-node';
import { ANNOTATION_ROLLOUT_TARGET, ENV, LABEL_PROTECT, LABEL_ROLLOUT_CANARY, LEASE_WATCHDOG, ROLLOUT_CONFIGMAP } from '../../app/contract.ts';
import { RESTARTED_AT_ANNOTATION } from '../../app/controllers/heal.ts';
import { evaluate } from '../../app/cli/doctor-checks.ts';
import { gatherFacts } from '../../app/cli/doctor.ts';
import { loadConfig } from '../../app/config.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import type { Cluster } from '../cluster/harness.ts';
import { deployProduct, prepare, RELEASE_NAMESPACE, setupProtectedNamespace, tearDown, type ChartValues, type Deployed } from './product.ts';
import { createNamespace, isInjected, labelledPod, waitUntil } from './support.ts';
import { startWebhook, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

const LICENSE = 'e2e-license-watchdog';
let cluster: Cluster;
let tls: WebhookTls;
let port: number;
let values: ChartValues;
let deployed: Deployed | undefined;
const webhooks: WebhookProcess[] = [];
const namespaces: string[] = [];
let kubelet: { stop(): Promise<void> } | undefined;

const core = () => cluster.kubeConfig.makeApiClient(CoreV1Api);
const apps = () => cluster.kubeConfig.makeApiClient(AppsV1Api);

function deployment(name: string, replicas: number): V1Deployment {
  const labels = { app: name, [LABEL_PROTECT]: 'true' };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }] } },
    },
  };
}

/** Marks every pod of `namespaces` Running and Ready through the status subresource, until stopped. Bounded in time. */
function standInKubelet(watched: string[], limitMs = 300_000): { stop(): Promise<void> } {
  let stopped = false;
  const started = Date.now();
  const loop = (async () => {
    while (!stopped && Date.now() - started < limitMs) {
      for (const namespace of watched) {
        const pods = await core().listNamespacedPod({ namespace }).catch(() => ({ items: [] }));
        for (const pod of pods.items) {
          if (pod.status?.phase === 'Running' || pod.metadata?.deletionTimestamp) continue;
          const now = new Date().toISOString();
          await cluster.request('PATCH', `/api/v1/namespaces/${namespace}/pods/${pod.metadata!.name}/status`, {
            status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }, { type: 'ContainersReady', status: 'True', lastTransitionTime: now }] },
          }, 'application/merge-patch+json');
        }
      }
      await sleep(250);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

async function setUpNamespace(prefix: string): Promise<string> {
  const ns = await createNamespace(cluster, prefix);
  namespaces.push(ns);
  await setupProtectedNamespace(cluster, ns, LICENSE);
  return ns;
}

/** Deletes a test's namespace and waits for its pods to go (unscheduled pods go at once), so later tests count only their own. */
async function dropNamespace(namespace: string): Promise<void> {
  await core().deleteNamespace({ name: namespace }).catch(() => undefined);
  await waitUntil(`the pods of ${namespace} to go`, 60_000, async () => (await podsOf(namespace)).length === 0);
}

async function podsOf(namespace: string, app?: string) {
  return (await core().listNamespacedPod({ namespace, ...(app ? { labelSelector: `app=${app}` } : {}) })).items;
}

async function sidecarMissingEvents(namespace: string): Promise<string[]> {
  const list = await core().listNamespacedEvent({ namespace, fieldSelector: 'reason=SidecarMissing' });
  return list.items.map((e) => `${e.involvedObject.kind}/${e.involvedObject.name}`).sort();
}

async function start(extra: Record<string, string> = {}, listenPort?: number): Promise<WebhookProcess> {
  const hook = await startWebhook(tls, { ...deployed!.env, ...extra }, listenPort);
  webhooks.push(hook);
  return hook;
}

async function stopAll(): Promise<void> {
  for (const hook of webhooks.splice(0)) await hook.stop();
}

before(async () => {
  ({ cluster, tls, port, values } = await prepare({ licenseKey: LICENSE, image: { repository: 'registry.example.invalid/pandocore/sidecar', tag: '1.0.0' } }));
  deployed = await deployProduct(cluster, { ...values, extra: { watchdog: { heal: 'restart' } } });
  assert.equal(deployed.env[ENV.watchdog], 'true', 'the chart turns the watchdog on');
  assert.equal(deployed.env[ENV.watchdogHeal], 'restart');
});

after(async () => {
  await kubelet?.stop();
  await stopAll();
  await tearDown({ cluster, tls, deployed, namespaces });
});

test('webhook down: a 3-replica Deployment and a bare pod start without the sidecar; the watchdog reports 4 within 10 s, doctor agrees; heal=restart rolls the Deployment once, the bare pod stays reported', async () => {
  const ns = await setUpNamespace('e2e-watchdog');
  // Nothing listens on the webhook's port: failurePolicy Ignore stores the pods as they are.
  await apps().createNamespacedDeployment({ namespace: ns, body: deployment('web', 3) });
  await core().createNamespacedPod({ namespace: ns, body: labelledPod('bare') });
  const stored = await waitUntil('3 Deployment pods', 60_000, async () => {
    const pods = await podsOf(ns, 'web');
    return pods.length === 3 && pods;
  });
  assert.ok(stored.every((p) => !isInjected(p)), 'created without the sidecar while the webhook was down');

  // Report only first, to see the report before anything is touched.
  const started = Date.now();
  const hook = await start({ [ENV.watchdogHeal]: 'off' }, port);
  const unprotected = await waitUntil('pandocore_unprotected_pods == 4', 10_000, async () => (await hook.metric('pandocore_unprotected_pods', { namespace: ns })) === 4 && Date.now() - started);
  console.log(`# watchdog reported 4 unprotected pods ${unprotected} ms after the webhook started`);
  assert.equal(await hook.metric('pandocore_pods', { state: 'unprotected' }), 4);
  const pods = (await podsOf(ns, 'web')).map((p) => `Pod/${p.metadata!.name}`);
  const events = await waitUntil('SidecarMissing Events on the 4 pods and the Deployment', 10_000, async () => {
    const found = await sidecarMissingEvents(ns);
    return found.length === 5 && found;
  });
  assert.deepEqual(events, ['Deployment/web', 'Pod/bare', ...pods].sort());
  const doctor = evaluate(await gatherFacts(cluster.kubeConfig, { namespace: ns, releaseNamespace: RELEASE_NAMESPACE, output: 'json', probe: false }));
  const labelled = doctor.find((c) => c.id === 'uninjected-pods')!;
  assert.equal(labelled.status, 'fail');
  assert.match(labelled.message, /^4 labelled pod\(s\) in /);
  assert.ok(labelled.fixes.includes(`kubectl rollout restart deployment/web -n ${ns}`), labelled.fixes.join('\n'));
  assert.equal((await apps().readNamespacedDeployment({ name: 'web', namespace: ns })).spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION], undefined, 'report only: not touched');
  await stopAll();

  // Heal: the Deployment is restarted once and rolls to injected pods; the bare pod is only reported.
  kubelet = standInKubelet([ns]);
  const healer = await start({}, port);
  await waitUntil('the rollout to finish with 3 injected pods and the old ReplicaSet at 0', 120_000, async () => {
    const d = await apps().readNamespacedDeployment({ name: 'web', namespace: ns });
    const current = (await podsOf(ns, 'web')).filter((p) => !p.metadata?.deletionTimestamp);
    const sets = (await apps().listNamespacedReplicaSet({ namespace: ns })).items;
    return d.status?.updatedReplicas === 3 && d.status.availableReplicas === 3 && d.status.replicas === 3 && current.length === 3 && current.every(isInjected) && sets.length === 2 && sets.some((s) => s.spec?.replicas === 0 && (s.status?.replicas ?? 0) === 0);
  }, 500);
  const d = await apps().readNamespacedDeployment({ name: 'web', namespace: ns });
  assert.ok(d.spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION], 'restarted as kubectl rollout restart does');
  await waitUntil('the gauge to follow: 1 unprotected (the bare pod)', 15_000, async () => (await healer.metric('pandocore_unprotected_pods', { namespace: ns })) === 1);
  await sleep(6_000); // a resync pass and more: still one restart
  assert.equal(await healer.metric('pandocore_watchdog_restarts_total', { kind: 'Deployment' }), 1);
  assert.equal(await healer.metric('pandocore_watchdog_restarts_total'), 1);
  const bare = await core().readNamespacedPod({ name: 'bare', namespace: ns });
  assert.ok(!isInjected(bare) && !bare.metadata?.deletionTimestamp, 'the bare pod is never touched');
  const restartEvents = await core().listNamespacedEvent({ namespace: ns, fieldSelector: 'reason=SidecarRestart' });
  assert.deepEqual(restartEvents.items.map((e) => `${e.involvedObject.kind}/${e.involvedObject.name}`), ['Deployment/web']);
  await kubelet.stop();
  kubelet = undefined;
  await stopAll();
  await dropNamespace(ns);
});

test('rate limit: 8 unprotected Deployments, 5 a minute: exactly 5 restarted in the first minute', async () => {
  const ns = await setUpNamespace('e2e-watchdog-rate');
  const names = Array.from({ length: 8 }, (_, i) => `app${i}`);
  for (const name of names) await apps().createNamespacedDeployment({ namespace: ns, body: deployment(name, 1) });
  await waitUntil('8 pods', 60_000, async () => (await podsOf(ns)).length === 8);
  const hook = await start({}, port);
  const restarted = async () => {
    const list = (await apps().listNamespacedDeployment({ namespace: ns })).items;
    return list.filter((x) => x.spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION]).length;
  };
  await waitUntil('5 restarts', 15_000, async () => (await restarted()) === 5);
  await sleep(20_000);
  assert.equal(await restarted(), 5, 'no sixth restart within the minute');
  assert.equal(await hook.metric('pandocore_watchdog_restarts_total'), 5);
  await stopAll();
  await dropNamespace(ns);
});

test('a namespace the webhook skips (not set up): reported as skipped with its reason, never restarted', async () => {
  const ns = await createNamespace(cluster, 'e2e-watchdog-skip');
  namespaces.push(ns);
  await apps().createNamespacedDeployment({ namespace: ns, body: deployment('lonely', 1) });
  await waitUntil('1 pod', 60_000, async () => (await podsOf(ns)).length === 1);
  const hook = await start({}, port);
  await waitUntil('a full pass', 10_000, async () => /labelled pods classified/.test(hook.output()) || (await hook.metric('pandocore_pods', { state: 'skipped' })) >= 1);
  await sleep(3_000);
  assert.ok((await hook.metric('pandocore_pods', { state: 'skipped' })) >= 1, 'counted as skipped');
  assert.equal(await hook.metric('pandocore_unprotected_pods', { namespace: ns }), 0);
  const d = await apps().readNamespacedDeployment({ name: 'lonely', namespace: ns });
  assert.equal(d.spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION], undefined, 'never restarted');
  assert.deepEqual(await sidecarMissingEvents(ns), []);
  await stopAll();
  await dropNamespace(ns);
});

test('issue 23 item 2: a Deployment in a namespace opted out (pandocore.xyz/injection: disabled) is never counted unprotected, reported or restarted; the same Deployment in a set-up namespace (control) is restarted', async () => {
  // Both namespaces are set up the same way; only the opt-out label differs. The webhook configuration
  // (the chart's) never sends the opted-out namespace's pods; the control's are created while the webhook is down.
  const control = await setUpNamespace('e2e-watchdog-control');
  const optedOut = await createNamespace(cluster, 'e2e-watchdog-optout', { 'pandocore.xyz/injection': 'disabled' });
  namespaces.push(optedOut);
  await setupProtectedNamespace(cluster, optedOut, LICENSE);
  for (const ns of [control, optedOut]) await apps().createNamespacedDeployment({ namespace: ns, body: deployment('web', 1) });
  await waitUntil('a pod in each namespace', 60_000, async () => (await podsOf(control)).length === 1 && (await podsOf(optedOut)).length === 1);
  assert.ok(!isInjected((await podsOf(optedOut))[0]!), 'the opted-out pod has no sidecar');
  assert.ok(deployed!.env[ENV.webhookNamespaceSelector]?.includes('"pandocore.xyz/injection"'), 'the chart hands the webhook\'s namespaceSelector to the watchdog');
  const hook = await start({}, port);
  const restartedAt = async (ns: string) => (await apps().readNamespacedDeployment({ name: 'web', namespace: ns })).spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION];
  await waitUntil('the control Deployment restarted', 20_000, async () => Boolean(await restartedAt(control)));
  // Past a resync (PANDO_WATCHDOG_RESYNC_SECONDS is the chart's 60 s; two more rounds of the 5 s loop are enough for the watch).
  await sleep(8_000);
  assert.equal(await restartedAt(optedOut), undefined, 'the opted-out Deployment is never restarted');
  assert.equal(await hook.metric('pandocore_unprotected_pods', { namespace: optedOut }), 0, 'never counted unprotected');
  assert.ok((await hook.metric('pandocore_pods', { state: 'skipped' })) >= 1, 'counted as skipped');
  assert.deepEqual(await sidecarMissingEvents(optedOut), [], 'no SidecarMissing Event');
  await waitUntil('SidecarMissing Events in the control namespace', 10_000, async () => {
    const found = await sidecarMissingEvents(control);
    return found.includes('Deployment/web') && found.some((e) => e.startsWith('Pod/'));
  });
  await stopAll();
  await dropNamespace(control);
  await dropNamespace(optedOut);
});

test('two replicas: only the Lease holder reports and heals; when it stops, the other takes over and restarts nothing twice', async () => {
  const ns = await setUpNamespace('e2e-watchdog-ha');
  await apps().createNamespacedDeployment({ namespace: ns, body: deployment('pair', 2) });
  await waitUntil('2 pods', 60_000, async () => (await podsOf(ns)).length === 2);
  const a = await start({ [ENV.podName]: 'replica-a' }, port);
  await waitUntil('replica-a to lead', 10_000, async () => (await cluster.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE_WATCHDOG, namespace: RELEASE_NAMESPACE })).spec?.holderIdentity === 'replica-a');
  const b = await start({ [ENV.podName]: 'replica-b' });
  await waitUntil('replica-a restarts the Deployment', 15_000, async () => (await a.metric('pandocore_watchdog_restarts_total')) === 1);
  await sleep(6_000);
  assert.equal(await b.metric('pandocore_watchdog_restarts_total'), 0, 'the stand-by does nothing');
  assert.equal(await b.metric('pandocore_pods', { state: 'unprotected' }), 0, 'the stand-by exports no pod gauges');
  const stoppedAt = Date.now();
  await a.stop();
  await waitUntil('replica-b to lead', 20_000, async () => (await cluster.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE_WATCHDOG, namespace: RELEASE_NAMESPACE })).spec?.holderIdentity === 'replica-b');
  const tookOver = Date.now() - stoppedAt;
  console.log(`# replica-b took over ${tookOver} ms after replica-a stopped`);
  // A clean stop gives the Lease up: the stand-by takes it at its next round (every 5 s), not after 15 s.
  assert.ok(tookOver < 7_000, `at the stand-by's next round, well within the Lease duration (15 s): ${tookOver} ms`);
  // The old pods still lack the sidecar (no kubelet here): b sees them, and kubectl's stamp on the
  // Deployment tells it the workload was restarted moments ago.
  await waitUntil('replica-b reports', 15_000, async () => (await b.metric('pandocore_pods', { state: 'unprotected' })) >= 1);
  await sleep(6_000);
  assert.equal(await b.metric('pandocore_watchdog_restarts_total'), 0, 'no workload is restarted twice');
  await stopAll();
});

test('upgrade with a new sidecar version: pods are counted stale and left alone; with restartStale their Deployment is rolled (by the sidecar rollout)', async () => {
  const ns = await setUpNamespace('e2e-watchdog-stale');
  const v1 = await start({ [ENV.watchdogHeal]: 'off' }, port);
  await apps().createNamespacedDeployment({ namespace: ns, body: deployment('steady', 2) });
  await waitUntil('2 injected pods', 60_000, async () => {
    const pods = await podsOf(ns, 'steady');
    return pods.length === 2 && pods.every(isInjected);
  });
  await v1.stop();
  webhooks.splice(webhooks.indexOf(v1), 1);
  // The upgrade: the same chart env with a new sidecar tag (what helm upgrade --set sidecar.image.tag=2.0.0 sets).
  const upgraded = { [ENV.sidecarImage]: 'registry.example.invalid/pandocore/sidecar:2.0.0' };
  const reportOnly = await start({ ...upgraded }, port);
  await waitUntil('2 stale pods counted', 15_000, async () => (await reportOnly.metric('pandocore_pods', { state: 'stale' })) >= 2);
  await sleep(6_000);
  const steady = () => apps().readNamespacedDeployment({ name: 'steady', namespace: ns });
  assert.equal((await steady()).spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION], undefined, 'without restartStale nothing is touched');
  assert.equal(await reportOnly.metric('pandocore_watchdog_restarts_total'), 0);
  await stopAll();
  // restartStale of earlier values now turns the sidecar rollout on (issue 24), which restarts stale
  // workloads health-gated; the chart then renders its state ConfigMap (test/chart/chart.test.ts), made
  // here as the chart makes it. This namespace is its canary, so 'steady' goes first.
  await core().createNamespacedConfigMap({ namespace: RELEASE_NAMESPACE, body: { metadata: { name: ROLLOUT_CONFIGMAP } } });
  await core().patchNamespace({ name: ns, body: { metadata: { labels: { [LABEL_ROLLOUT_CANARY]: 'true' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  try {
    // The env the chart renders for watchdog.restartStale=true (PANDO_ROLLOUT is `or rollout.enabled watchdog.restartStale`).
    const roller = await start({ ...upgraded, [ENV.watchdogRestartStale]: 'true', [ENV.rollout]: 'true', [ENV.rolloutIntervalSeconds]: '1' }, port);
    await waitUntil('the Deployment rolled for its stale pods', 15_000, async () => Boolean((await steady()).spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION]));
    // The chart's version annotation follows the tag it was installed with; the new image changes the config hash.
    const target = planInjection(loadConfig({ ...deployed!.env, ...upgraded }));
    assert.equal((await steady()).spec?.template.metadata?.annotations?.[ANNOTATION_ROLLOUT_TARGET], `${target.version}/${target.configHash}`, 'restarted by the rollout, for the new sidecar');
    assert.equal(await roller.metric('pandocore_rollout_restarts_total', { kind: 'Deployment' }), 1);
    assert.equal(await roller.metric('pandocore_watchdog_restarts_total'), 0, 'the watchdog no longer restarts stale pods beside the rollout');
  } finally {
    await stopAll();
    await core().deleteNamespacedConfigMap({ name: ROLLOUT_CONFIGMAP, namespace: RELEASE_NAMESPACE }).catch(() => undefined);
  }
  await dropNamespace(ns);
});
