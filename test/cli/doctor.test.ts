// `pando doctor`'s checks from fetched objects (app/cli/doctor-checks.ts), without a cluster: each
// failure it knows, with its fix; plus the output formats and `pando setup-namespace`'s objects.

import 'reflect-metadata';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { before, describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import type { V1Deployment, V1MutatingWebhookConfiguration, V1Pod } from '@kubernetes/client-node';
import { createCa, issueServingCert, type IssuedCert } from '../../app/tls/certs.ts';
import { verifyChain } from '../../app/cli/certificates.ts';
import { evaluate, restartCommand, selectorMatches, type Check, type DoctorFacts } from '../../app/cli/doctor-checks.ts';
import { formatChecks, parseWarnings } from '../../app/cli/doctor.ts';
import { CliError, formatError, jsonSafe, PLAIN, terminalSafe } from '../../app/cli/output.ts';
import { namespaceSetupObjects } from '../../app/setup/namespace-objects.ts';
import { loadConfig } from '../../app/config.ts';
import { devCaCertFile } from '../../app/tls/dev-ca.ts';
import { LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, SIDECAR_CLUSTER_ROLE, SIDECAR_SERVICE_ACCOUNT } from '../../app/contract.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { classifyPod, slimPod } from '../../app/pods/classify.ts';

const NOW = new Date('2026-11-24T12:00:00Z');
const URL_ = 'https://127.0.0.1:8443/mutate';
let ca: IssuedCert;
let otherCa: IssuedCert;
let leaf: IssuedCert;
let expiring: IssuedCert;

before(async () => {
  ca = await createCa('pando test CA', new Date(NOW.getTime() - 86_400_000), 3650);
  otherCa = await createCa('somebody else', new Date(NOW.getTime() - 86_400_000), 3650);
  leaf = await issueServingCert(ca, ['127.0.0.1'], new Date(NOW.getTime() - 86_400_000), 365);
  expiring = await issueServingCert(ca, ['127.0.0.1'], new Date(NOW.getTime() - 86_400_000), 10);
});

const ENV_V1 = { PANDO_SIDECAR_IMAGE: 'registry.example.invalid/sidecar:1.0.0', PANDO_EXCLUDED_NAMESPACES: 'kube-system,quiet', PANDO_NAMESPACE: 'pando-system' };
const PLAN_V1 = planInjection(loadConfig(ENV_V1));

function webhookConfiguration(overrides: Record<string, unknown> = {}): V1MutatingWebhookConfiguration {
  return {
    metadata: { name: 'pando-webhook' },
    webhooks: [
      {
        name: 'inject.pandocore.xyz',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Ignore',
        clientConfig: { url: URL_, caBundle: Buffer.from(ca.certPem).toString('base64') },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
        namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'quiet', 'pando-system'] }] },
        ...overrides,
      },
    ],
  };
}

function deployment(env: Record<string, string>): V1Deployment {
  return {
    metadata: { name: 'pando-webhook', namespace: 'pando-system' },
    spec: { selector: {}, template: { spec: { containers: [{ name: 'webhook', env: Object.entries(env).map(([name, value]) => ({ name, value })) }] } } },
  };
}

function pod(name: string, annotations: Record<string, string> = {}, owner?: string): V1Pod {
  return {
    metadata: {
      name,
      namespace: 'shop',
      uid: `uid-${name}`,
      labels: { 'pandocore.xyz/protect': 'true' },
      annotations,
      ...(owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: owner, uid: 'x', controller: true }] } : {}),
    },
    // An injected pod carries the sidecar as well as the annotations: doctor judges both, as the webhook does.
    spec: { containers: [{ name: 'app' }], ...(annotations['pandocore.xyz/status'] === 'injected' ? { initContainers: [{ name: 'pando-sidecar', env: [{ name: 'PANDO_MODE', value: 'monitor' }] }] } : {}) },
  };
}

const INJECTED_V1 = { 'pandocore.xyz/status': 'injected', 'pandocore.xyz/version': '1.0.0', 'pandocore.xyz/config-hash': PLAN_V1.configHash };

function healthy(): DoctorFacts {
  return {
    now: NOW,
    releaseNamespace: 'pando-system',
    webhookConfiguration: webhookConfiguration(),
    deployment: deployment(ENV_V1),
    readyz: { url: 'https://127.0.0.1:8443/readyz', status: 200 },
    served: { source: 'https://127.0.0.1:8443', chain: [leaf.certPem] },
    namespace: {
      name: 'shop',
      exists: true,
      labels: { 'kubernetes.io/metadata.name': 'shop' },
      serviceAccount: true,
      roleBinding: {
        metadata: { name: 'pando-sidecar' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'pando-sidecar' },
        subjects: [{ kind: 'ServiceAccount', name: 'pando-sidecar', namespace: 'shop' }],
      },
      licenseSecret: { hasKey: true },
    },
    probe: { namespace: 'shop', injected: true, version: '1.0.0', configHash: PLAN_V1.configHash, warnings: [] },
    pods: [pod('web-1', INJECTED_V1, 'web-5d8f')],
    owners: new Map([['uid-web-1', { kind: 'deployment', name: 'web', namespace: 'shop' }]]),
  };
}

function byId(checks: Check[]): Map<string, Check> {
  return new Map(checks.map((c) => [c.id, c]));
}

function failures(f: DoctorFacts): Check[] {
  return evaluate(f).filter((c) => c.status === 'fail');
}

describe('doctor checks', () => {
  it('a healthy install: every check ok, in a stable order', () => {
    const checks = evaluate(healthy());
    assert.deepEqual(checks.map((c) => [c.id, c.status]), [
      ['webhook-configuration', 'ok'],
      ['webhook-endpoint', 'ok'],
      ['ca-bundle', 'ok'],
      ['certificate-expiry', 'ok'],
      ['namespace', 'ok'],
      ['namespace-setup', 'ok'],
      ['injection-probe', 'ok'],
      ['uninjected-pods', 'ok'],
      ['sidecar-failing', 'ok'],
      ['stale-pods', 'ok'],
    ]);
  });

  it('no webhook configuration: install command, and the webhook checks are not run', () => {
    const f = { ...healthy(), webhookConfiguration: null };
    const checks = byId(evaluate(f));
    assert.equal(checks.get('webhook-configuration')?.status, 'fail');
    assert.match(checks.get('webhook-configuration')!.fixes[0]!, /^helm upgrade --install pando-webhook oci:\/\/REGISTRY\/charts\/pando-webhook -n pando-system --create-namespace --set licenseKey=YOUR_LICENSE_KEY$/);
    assert.equal(checks.has('webhook-endpoint'), false);
  });

  it('the URL does not answer: fail with the address', () => {
    const f = { ...healthy(), readyz: { url: 'https://127.0.0.1:8443/readyz', error: 'ECONNREFUSED' } };
    const [fail] = failures(f);
    assert.equal(fail?.id, 'webhook-endpoint');
    assert.match(fail!.message, /https:\/\/127\.0\.0\.1:8443\/readyz does not answer \(ECONNREFUSED\)/);
    assert.match(fail!.fixes[0]!, /start the webhook that serves https:\/\/127\.0\.0\.1:8443\/mutate/);
  });

  it('service mode: no ready endpoint is a failure with rollout status; ready endpoints pass', () => {
    const service = { name: 'pando-webhook', namespace: 'pando-system', port: 443, path: '/mutate' };
    const cfg = webhookConfiguration({ clientConfig: { service, caBundle: Buffer.from(ca.certPem).toString('base64') } });
    const base = { ...healthy(), webhookConfiguration: cfg, readyz: undefined, service: { metadata: { name: 'pando-webhook' } } };
    const none = byId(evaluate({ ...base, endpointSlices: [{ addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: false } }] }] }));
    assert.equal(none.get('webhook-endpoint')?.status, 'fail');
    assert.deepEqual(none.get('webhook-endpoint')?.fixes, ['kubectl -n pando-system rollout status deployment/pando-webhook', 'kubectl -n pando-system logs deployment/pando-webhook']);
    const some = byId(evaluate({ ...base, endpointSlices: [{ addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true } }] }] }));
    assert.equal(some.get('webhook-endpoint')?.status, 'ok');
    // The Secret's certificate is for 127.0.0.1, not the Service name.
    assert.equal(some.get('ca-bundle')?.status, 'fail');
    assert.match(some.get('ca-bundle')!.message, /not valid for pando-webhook\.pando-system\.svc/);
    assert.equal(byId(evaluate({ ...base, service: null })).get('webhook-endpoint')?.status, 'fail');
  });

  it('caBundle of another CA, or empty: fail with the fix for the mode', () => {
    const other = { ...healthy(), webhookConfiguration: webhookConfiguration({ clientConfig: { url: URL_, caBundle: Buffer.from(otherCa.certPem).toString('base64') } }) };
    const [fail] = failures(other);
    assert.equal(fail?.id, 'ca-bundle');
    assert.match(fail!.message, /not signed by the caBundle \(CN=somebody else\)/);
    assert.match(fail!.fixes[0]!, /--set webhook\.caBundle=/);
    // npm start's development CA file (kept across restarts), not a made-up ca.crt.
    assert.ok(fail!.fixes[0]!.includes(`base64 -w0 ${devCaCertFile()}`), fail!.fixes[0]);
    const empty = { ...healthy(), webhookConfiguration: webhookConfiguration({ clientConfig: { url: URL_ } }) };
    assert.match(failures(empty)[0]!.message, /empty caBundle/);
  });

  it('certificate expiry: warn within 30 days, fail when expired', () => {
    const soon = byId(evaluate({ ...healthy(), served: { source: 'x', chain: [expiring.certPem] } }));
    assert.equal(soon.get('certificate-expiry')?.status, 'warn');
    assert.match(soon.get('certificate-expiry')!.message, /expires in 9 days/);
    const later = byId(evaluate({ ...healthy(), now: new Date(NOW.getTime() + 400 * 86_400_000) }));
    assert.equal(later.get('certificate-expiry')?.status, 'fail');
    assert.match(later.get('certificate-expiry')!.message, /expired on/);
  });

  it('an unreadable certificate is a warning, not a pass', () => {
    const checks = byId(evaluate({ ...healthy(), served: { source: 'Secret pando-system/pando-webhook-tls', error: 'not allowed to read it' } }));
    assert.equal(checks.get('ca-bundle')?.status, 'warn');
    assert.equal(checks.has('certificate-expiry'), false);
  });

  it('excluded namespace: the helm change without it; setup and probe are not judged there', () => {
    const f = healthy();
    f.namespace = { ...f.namespace!, name: 'quiet', labels: { 'kubernetes.io/metadata.name': 'quiet' }, serviceAccount: false };
    f.pods = [];
    const fails = failures(f);
    assert.deepEqual(fails.map((c) => c.id), ['namespace']);
    assert.deepEqual(fails[0]!.fixes, ["helm upgrade pando-webhook oci://REGISTRY/charts/pando-webhook -n pando-system --reuse-values --set 'excludedNamespaces={kube-system}'"]);
    const checks = byId(evaluate(f));
    assert.equal(checks.has('namespace-setup'), false);
    assert.equal(checks.has('injection-probe'), false);
  });

  it('fixes name the live Helm release, from Helm\'s annotation', () => {
    const f = healthy();
    f.deployment!.metadata!.annotations = { 'meta.helm.sh/release-name': 'acme' };
    f.namespace = { ...f.namespace!, name: 'quiet' };
    assert.match(failures(f)[0]!.fixes[0]!, /^helm upgrade acme oci:\/\/REGISTRY\/charts\/pando-webhook -n pando-system /);
  });

  it('a namespaceSelector that does not select the namespace is a failure', () => {
    const f = { ...healthy(), webhookConfiguration: webhookConfiguration({ namespaceSelector: { matchLabels: { team: 'a' } } }) };
    assert.deepEqual(failures(f).map((c) => c.id), ['namespace']);
  });

  it('incomplete setup: what is missing, and pando setup-namespace', () => {
    const f = healthy();
    f.namespace = { ...f.namespace!, licenseSecret: null, roleBinding: { ...f.namespace!.roleBinding!, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' } } };
    const [fail] = failures(f);
    assert.equal(fail?.id, 'namespace-setup');
    assert.match(fail!.message, /a RoleBinding pando-sidecar from ServiceAccount pando-sidecar to ClusterRole pando-sidecar, Secret pando-license/);
    assert.deepEqual(fail!.fixes, ['pando setup-namespace shop']);
  });

  it('the dry-run pod: the webhook\'s own reason and fix, or silence when it did not answer', () => {
    const said = { ...healthy(), probe: { namespace: 'shop', injected: false, warnings: ['pandocore: sidecar not injected: namespace shop lacks Secret pando-license', 'pandocore: fix: pando setup-namespace shop (or list it)'] } };
    const [fail] = failures(said);
    assert.equal(fail?.id, 'injection-probe');
    assert.match(fail!.message, /is not injected: sidecar not injected: namespace shop lacks Secret pando-license/);
    assert.deepEqual(fail!.fixes, ['pando setup-namespace shop (or list it)']);
    const silent = failures({ ...healthy(), probe: { namespace: 'shop', injected: false, warnings: [] } });
    assert.match(silent[0]!.message, /the webhook said nothing/);
    const refused = byId(evaluate({ ...healthy(), probe: { namespace: 'shop', injected: false, warnings: [], error: 'exceeded quota' } }));
    assert.equal(refused.get('injection-probe')?.status, 'warn');
  });

  it('pods without the sidecar: one fix per owner, bare pods and excluded namespaces handled', () => {
    const f = healthy();
    f.pods = [pod('web-1', {}, 'web-5d8f'), pod('web-2', {}, 'web-5d8f'), pod('db-0'), pod('solo'), { ...pod('ignored'), metadata: { ...pod('ignored').metadata, namespace: 'quiet' } }];
    f.owners = new Map([
      ['uid-web-1', { kind: 'deployment', name: 'web', namespace: 'shop' }],
      ['uid-web-2', { kind: 'deployment', name: 'web', namespace: 'shop' }],
      ['uid-db-0', { kind: 'statefulset', name: 'db', namespace: 'shop' }],
    ]);
    const [fail] = failures(f);
    assert.equal(fail?.id, 'uninjected-pods');
    assert.match(fail!.message, /^4 labelled pod\(s\) in shop without the sidecar/);
    assert.deepEqual(fail!.fixes, [
      'kubectl rollout restart statefulset/db -n shop',
      'kubectl delete pod solo -n shop and create it again (it has no controller)',
      'kubectl rollout restart deployment/web -n shop',
    ]);
  });

  it('a pod the webhook would skip (namespace not set up) is a warning with the reason, not a restart', () => {
    const f = healthy();
    const lonely = { ...pod('lonely'), metadata: { ...pod('lonely').metadata, namespace: 'bare' } };
    f.pods = [pod('web-1', INJECTED_V1, 'web-5d8f'), lonely];
    f.readiness = new Map([['bare', { serviceAccount: false, licenseSecret: false }]]);
    const c = byId(evaluate(f)).get('uninjected-pods')!;
    assert.equal(c.status, 'warn');
    assert.match(c.message, /^1 labelled pod\(s\) skipped by the webhook: bare\/lonely: namespace bare lacks ServiceAccount pando-sidecar and Secret pando-license/);
    assert.deepEqual(c.fixes, []);
    // Without the readiness answer the webhook would inject it now: unprotected, restart.
    f.readiness = undefined;
    assert.equal(byId(evaluate(f)).get('uninjected-pods')!.status, 'fail');
  });

  it('doctor counts what the watchdog counts: both use app/pods/classify.ts', () => {
    const f = healthy();
    f.pods = [pod('web-1', {}, 'web-5d8f'), pod('web-2', {}, 'web-5d8f'), pod('solo'), pod('ok', INJECTED_V1), pod('old', { ...INJECTED_V1, 'pandocore.xyz/version': '0.9.0' }), { ...pod('ignored'), metadata: { ...pod('ignored').metadata, namespace: 'quiet' } }];
    const states = f.pods.map((p) => classifyPod(slimPod(p), PLAN_V1).state);
    assert.deepEqual(states, ['unprotected', 'unprotected', 'unprotected', 'protected', 'stale', 'skipped']);
    const checks = byId(evaluate(f));
    assert.match(checks.get('uninjected-pods')!.message, /^3 labelled pod\(s\)/);
    assert.match(checks.get('stale-pods')!.message, /^1 pod\(s\) run an old sidecar/);
  });

  it('stale pods after an upgrade: compared with what the webhook injects now', () => {
    const f = healthy();
    f.probe = { namespace: 'shop', injected: true, version: '1.1.0', configHash: 'abcdefabcdef', warnings: [] };
    const [fail] = failures(f);
    assert.equal(fail?.id, 'stale-pods');
    assert.match(fail!.message, new RegExp(`1 pod\\(s\\) run an old sidecar \\(1\\.0\\.0/${PLAN_V1.configHash}; now 1\\.1\\.0/abcdefabcdef\\)`));
    assert.deepEqual(fail!.fixes, ['kubectl rollout restart deployment/web -n shop']);
    // Without a probe, the Deployment's settings tell the current version.
    const noProbe = { ...healthy(), probe: undefined, deployment: deployment({ ...ENV_V1, PANDO_SIDECAR_IMAGE: 'registry.example.invalid/sidecar:1.1.0' }) };
    assert.deepEqual(failures(noProbe).map((c) => c.id), ['stale-pods']);
    const unknown = byId(evaluate({ ...healthy(), probe: undefined, deployment: null }));
    assert.equal(unknown.get('stale-pods')?.status, 'warn');
  });

  it('injected pods whose sidecar cannot start: one fail naming each pod with the kubelet\'s reason and the fix per reason, never a restart', () => {
    const f = healthy();
    const withSidecar = (name: string, sidecar: object) => ({ ...pod(name, INJECTED_V1, 'web-5d8f'), status: { phase: 'Pending', initContainerStatuses: [{ name: 'pando-sidecar', image: 'x', imageID: '', ready: false, restartCount: 0, ...sidecar }] } }) as V1Pod;
    const pullFailed = withSidecar('web-1', { state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x"' } } });
    const crashing = withSidecar('web-2', { restartCount: 3, state: { terminated: { reason: 'Error', exitCode: 1 } }, lastState: { terminated: { reason: 'Error', exitCode: 1 } } });
    const noSecret = withSidecar('web-3', { state: { waiting: { reason: 'CreateContainerConfigError', message: 'secret "pando-license" not found' } } });
    const starting = withSidecar('web-4', { state: { waiting: { reason: 'PodInitializing' } } });
    f.pods = [pullFailed, crashing, noSecret, starting];
    const fails = failures(f);
    assert.deepEqual(fails.map((c) => c.id), ['sidecar-failing'], 'only this check fails: the pods are injected, current, and not unprotected');
    const c = fails[0]!;
    assert.match(c.message, /^3 injected pod\(s\) in shop whose PandoCore sidecar cannot start \(ImagePullBackOff: shop\/web-1; CrashLoopBackOff: shop\/web-2; CreateContainerConfigError: shop\/web-3\); a restart does not help/);
    assert.equal(c.fixes.length, 4);
    assert.match(c.fixes[0]!, /^ImagePullBackOff: the sidecar image cannot be pulled: check sidecar\.image/);
    assert.match(c.fixes[1]!, /^CrashLoopBackOff: the sidecar keeps exiting: kubectl logs web-2 -n shop -c pando-sidecar --previous/);
    assert.match(c.fixes[2]!, /^CreateContainerConfigError: .*pando setup-namespace shop/);
    assert.equal(c.fixes[3], 'kubectl get events -A --field-selector reason=SidecarFailing');
    assert.ok(!c.fixes.some((x) => /rollout restart/.test(x)), 'no restart offered');
    // --pod names it too.
    const one = byId(evaluate({ ...f, podName: 'web-1', pod: pullFailed })).get('pod-injection')!;
    assert.equal(one.status, 'fail');
    assert.match(one.message, /^pod web-1 has the sidecar 1\.0\.0, but the PandoCore sidecar cannot start: ImagePullBackOff \(kubelet: Back-off pulling image "x"\)$/);
    assert.match(one.fixes[0]!, /^the sidecar image cannot be pulled/);
    // Still starting only: ok.
    assert.equal(byId(evaluate({ ...f, pods: [starting] })).get('sidecar-failing')!.status, 'ok');
  });

  it('a Deployment with pods without the sidecar and pods whose sidecar cannot start: its fix makes the sidecar start first, then restarts', () => {
    const f = healthy();
    const crashing = { ...pod('web-1', INJECTED_V1, 'web-5d8f'), status: { phase: 'Pending', initContainerStatuses: [{ name: 'pando-sidecar', image: 'x', imageID: '', ready: false, restartCount: 3, state: { terminated: { reason: 'Error', exitCode: 1 } }, lastState: { terminated: { reason: 'Error', exitCode: 1 } } }] } } as V1Pod;
    f.pods = [pod('web-2', {}, 'web-5d8f'), crashing, pod('db-0')];
    f.owners = new Map([
      ['uid-web-1', { kind: 'deployment', name: 'web', namespace: 'shop' }],
      ['uid-web-2', { kind: 'deployment', name: 'web', namespace: 'shop' }],
      ['uid-db-0', { kind: 'statefulset', name: 'db', namespace: 'shop' }],
    ]);
    const checks = byId(evaluate(f));
    assert.equal(checks.get('sidecar-failing')!.status, 'fail');
    assert.deepEqual(checks.get('uninjected-pods')!.fixes, [
      'kubectl rollout restart statefulset/db -n shop',
      'first make the sidecar start (it cannot in other pods of deployment/web: CrashLoopBackOff; see its SidecarFailing Event), then kubectl rollout restart deployment/web -n shop',
    ]);
  });

  it('--pod: not labelled, not injected, stale, current', () => {
    const base = { ...healthy(), podName: 'web-1' };
    const unlabelled = pod('web-1', {}, 'web-5d8f');
    unlabelled.metadata!.labels = {};
    const a = byId(evaluate({ ...base, pod: unlabelled }));
    assert.equal(a.get('pod-labelled')?.status, 'fail');
    assert.match(a.get('pod-labelled')!.fixes[0]!, /the pod template of deployment\/web/);
    const b = byId(evaluate({ ...base, pod: pod('web-1', {}, 'web-5d8f') }));
    assert.deepEqual(b.get('pod-injection')?.fixes, ['kubectl rollout restart deployment/web -n shop']);
    const c = byId(evaluate({ ...base, pod: pod('web-1', INJECTED_V1, 'web-5d8f') }));
    assert.equal(c.get('pod-injection')?.status, 'ok');
    const d = byId(evaluate({ ...base, pod: null }));
    assert.equal(d.get('pod')?.status, 'fail');
  });

  it('a pod skipped for namespace-not-ready gets that reason and the setup-namespace fix, not "webhook down"', () => {
    const base = healthy();
    const uninjected = pod('web-1', {}, 'web-5d8f');
    // The namespace lacks its license Secret now: the webhook skipped the pod for namespace-not-ready.
    const notSetUp = { ...base, namespace: { ...base.namespace!, licenseSecret: null }, pods: [uninjected] };
    const fail = byId(evaluate(notSetUp)).get('uninjected-pods')!;
    assert.equal(fail.status, 'fail');
    assert.match(fail.message, /skipped for namespace-not-ready: shop lacks Secret pando-license/);
    assert.doesNotMatch(fail.message, /webhook was down/);
    assert.deepEqual(fail.fixes, ['pando setup-namespace shop', 'kubectl rollout restart deployment/web -n shop']);
    // Set up since: the pod is older than the setup, so it was skipped then; restarting is the fix.
    const older = { ...uninjected, metadata: { ...uninjected.metadata, creationTimestamp: new Date(NOW.getTime() - 60_000) } };
    const setUpLater = { ...base, namespace: { ...base.namespace!, setupAt: NOW }, pods: [older], pod: older, podName: 'web-1' };
    const checks = byId(evaluate(setUpLater));
    assert.match(checks.get('uninjected-pods')!.message, /skipped for namespace-not-ready: created before shop was set up/);
    assert.match(checks.get('pod-injection')!.message, /^pod web-1 has no sidecar: skipped for namespace-not-ready/);
    assert.deepEqual(checks.get('pod-injection')!.fixes, ['kubectl rollout restart deployment/web -n shop']);
    // Created after the setup: the namespace does not explain it.
    const newer = { ...uninjected, metadata: { ...uninjected.metadata, creationTimestamp: new Date(NOW.getTime() + 60_000) } };
    assert.match(byId(evaluate({ ...setUpLater, pods: [newer] })).get('uninjected-pods')!.message, /created while the webhook was down/);
  });

  it('--pod with a protect label other than "true" names the value (the chart never sends such pods)', () => {
    const wrong = pod('web-1', {}, 'web-5d8f');
    wrong.metadata!.labels = { 'pandocore.xyz/protect': 'yes' };
    const check = byId(evaluate({ ...healthy(), podName: 'web-1', pod: wrong })).get('pod-labelled')!;
    assert.equal(check.status, 'fail');
    assert.match(check.message, /labelled pandocore\.xyz\/protect="yes"; only "true" asks for the sidecar/);
  });

  it('restart commands per owner kind', () => {
    assert.equal(restartCommand({ kind: 'daemonset', name: 'agent', namespace: 'n' }, 'agent-x'), 'kubectl rollout restart daemonset/agent -n n');
    assert.match(restartCommand({ kind: 'cronjob', name: 'nightly', namespace: 'n' }, 'nightly-28890000-abcde'), /^kubectl delete job nightly-28890000 -n n/);
    assert.match(restartCommand({ kind: 'replicaset', name: 'rs', namespace: 'n' }, 'rs-abcde'), /^kubectl delete pod rs-abcde -n n +\(replicaset\/rs makes a new one\)/);
  });
});

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** An intermediate CA signed by `root`, as cert-manager's CA issuers or a corporate PKI make them. */
async function intermediateCa(root: IssuedCert): Promise<{ certPem: string; keyPem: string }> {
  // app/tls/certs.ts has set node's WebCrypto as @peculiar/x509's provider.
  const rootCert = new x509.X509Certificate(root.certPem);
  const rootKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(root.keyPem), ALGORITHM, false, ['sign']);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'CN=pando test intermediate',
    issuer: rootCert.subject,
    notBefore: new Date(NOW.getTime() - 86_400_000),
    notAfter: new Date(NOW.getTime() + 1000 * 86_400_000),
    publicKey: keys.publicKey,
    signingKey: rootKey,
    signingAlgorithm: ALGORITHM,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

describe('doctor helpers', () => {
  it('verifyChain: through an intermediate the server sends, not without it', async () => {
    const intermediate = await intermediateCa(ca);
    const leafOfIntermediate = await issueServingCert(intermediate, ['127.0.0.1'], NOW, 30);
    assert.equal(verifyChain([leafOfIntermediate.certPem, intermediate.certPem], [ca.certPem]).trusted, true);
    const alone = verifyChain([leafOfIntermediate.certPem], [ca.certPem]);
    assert.equal(alone.trusted, false);
    assert.match(alone.trusted ? '' : alone.reason, /issued by "CN=pando test intermediate" is not signed by the caBundle/);
  });

  it('verifyChain: signed directly, by any CA of the bundle; not by another CA; nothing served', () => {
    assert.equal(verifyChain([leaf.certPem], [ca.certPem]).trusted, true);
    assert.equal(verifyChain([leaf.certPem], [otherCa.certPem, ca.certPem]).trusted, true, 'any CA of the bundle');
    assert.equal(verifyChain([leaf.certPem], [otherCa.certPem]).trusted, false);
    assert.equal(verifyChain([], [ca.certPem]).trusted, false);
  });

  it('label selectors as the API server evaluates them', () => {
    const sel = { matchLabels: { a: '1' }, matchExpressions: [{ key: 'b', operator: 'NotIn', values: ['x'] }, { key: 'c', operator: 'Exists' }] };
    assert.equal(selectorMatches(sel, { a: '1', c: '' }), true);
    assert.equal(selectorMatches(sel, { a: '1', b: 'x', c: '' }), false);
    assert.equal(selectorMatches(sel, { a: '1' }), false);
    assert.equal(selectorMatches(undefined, {}), true);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'd', operator: 'In', values: ['y'] }] }, {}), false);
  });

  it('Warning headers as the API server sends them, joined', () => {
    assert.deepEqual(parseWarnings('299 - "pandocore: a, b", 299 - "pandocore: say \\"hi\\""'), ['pandocore: a, b', 'pandocore: say "hi"']);
    assert.deepEqual(parseWarnings(undefined), []);
    const utf8AsLatin1 = Buffer.from('299 - "pandocore: lacks Secret pando-lice…"', 'utf8').toString('latin1');
    assert.deepEqual(parseWarnings(utf8AsLatin1), ['pandocore: lacks Secret pando-lice…']);
  });

  it('text output: one line per check, fixes indented, plain words without colour, a summary', () => {
    const f = { ...healthy(), readyz: { url: 'https://127.0.0.1:8443/readyz', error: 'ECONNREFUSED' } };
    const text = formatChecks(PLAIN, evaluate(f));
    const lines = text.trimEnd().split('\n');
    assert.match(lines[0]!, /^ok {3}webhook configuration +pando-webhook\/inject\.pandocore\.xyz calls https:/);
    assert.match(lines[1]!, /^FAIL webhook endpoint +https:\/\/127\.0\.0\.1:8443\/readyz does not answer/);
    assert.match(lines[2]!, /^ {6}fix: start the webhook/);
    assert.equal(lines.at(-1), '1 check(s) failed');
    assert.doesNotMatch(text, /\u001b/);
  });
});

describe('doctor output escapes what it read from the cluster', () => {
  // Window title, clear screen, an 8-bit CSI, a bidi override and a forged line of output.
  const HOSTILE = '\u001b]0;owned\u0007\u001b[2J\u009b31m\u202e\nok   all checks passed';
  const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;

  it('annotation values, names and warnings reach the text output only as visible escapes', () => {
    const stale = pod(`web-1${HOSTILE}`, { ...INJECTED_V1, 'pandocore.xyz/version': `0.9.0${HOSTILE}` }, 'web-5d8f');
    const f: DoctorFacts = {
      ...healthy(),
      podName: stale.metadata!.name!,
      pod: stale,
      pods: [stale],
      probe: { namespace: 'shop', injected: false, warnings: [`pandocore: sidecar not injected: ${HOSTILE}`] },
    };
    const checks = evaluate(f);
    assert.ok(checks.some((c) => c.message.includes('\u001b') || c.fixes.some((x) => x.includes('\u001b'))), 'the hostile text reaches the checks');
    const text = formatChecks(PLAIN, checks);
    assert.doesNotMatch(text, RAW);
    assert.match(text, /\\x1b\]0;owned\\x07\\x1b\[2J\\x9b31m\\u\{202e\}\\x0aok/);
    assert.ok(!text.split('\n').includes('ok   all checks passed'), 'no forged line');
  });

  it('JSON output and error messages too', () => {
    const json = jsonSafe(JSON.stringify({ message: HOSTILE, tag: 'a\u{e0041}b' }, null, 2));
    assert.doesNotMatch(json, RAW);
    assert.deepEqual(JSON.parse(json), { message: HOSTILE, tag: 'a\u{e0041}b' }, 'still the same JSON');
    assert.doesNotMatch(formatError(PLAIN, new CliError(`reading pod ${HOSTILE}`, HOSTILE)), /\u001b|\u009b/);
    assert.equal(terminalSafe('web-1 is fine'), 'web-1 is fine');
  });
});

describe('setup-namespace objects', () => {
  it('ServiceAccount, RoleBinding to the ClusterRole, Secret with the key, all named as the contract says', () => {
    const [sa, rb, secret] = namespaceSetupObjects('shop', 'a2V5') as any[];
    assert.deepEqual([sa.kind, sa.metadata.name, sa.metadata.namespace], ['ServiceAccount', SIDECAR_SERVICE_ACCOUNT, 'shop']);
    assert.deepEqual(rb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: SIDECAR_CLUSTER_ROLE });
    assert.deepEqual(rb.subjects, [{ kind: 'ServiceAccount', name: SIDECAR_SERVICE_ACCOUNT, namespace: 'shop' }]);
    assert.deepEqual([secret.kind, secret.metadata.name, secret.type, secret.data], ['Secret', LICENSE_SECRET_NAME, 'Opaque', { [LICENSE_SECRET_KEY]: 'a2V5' }]);
  });
});

describe('doctor and the webhook selectors (issue 23 item 2)', () => {
  it('a labelled pod in a namespace the namespaceSelector leaves out (opted out) is skipped (namespace-not-selected), not unprotected', () => {
    const f = healthy();
    const hook = { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'quiet', 'pando-system'] }, { key: 'pandocore.xyz/injection', operator: 'NotIn', values: ['disabled'] }] };
    f.webhookConfiguration = webhookConfiguration({ namespaceSelector: hook, objectSelector: { matchLabels: { 'pandocore.xyz/protect': 'true' } } });
    const optedOut = { ...pod('legacy-1', {}, 'legacy-5d8f'), metadata: { ...pod('legacy-1', {}, 'legacy-5d8f').metadata, namespace: 'legacy' } };
    f.pods = [pod('web-1', INJECTED_V1, 'web-5d8f'), optedOut];
    f.namespaceLabels = new Map<string, Record<string, string>>([['legacy', { 'kubernetes.io/metadata.name': 'legacy', 'pandocore.xyz/injection': 'disabled' }], ['shop', { 'kubernetes.io/metadata.name': 'shop' }]]);
    const c = byId(evaluate(f)).get('uninjected-pods')!;
    assert.equal(c.status, 'ok', c.message);
    // The same pod once the namespace opts back in: unprotected, restart.
    f.namespaceLabels = new Map<string, Record<string, string>>([['legacy', { 'kubernetes.io/metadata.name': 'legacy' }]]);
    assert.equal(byId(evaluate(f)).get('uninjected-pods')!.status, 'fail');
  });

  it('--pod on such a pod says why: the API server never sends it to the webhook', () => {
    const f = healthy();
    f.webhookConfiguration = webhookConfiguration({ namespaceSelector: { matchLabels: { tier: 'apps' } } });
    f.podName = 'web-1';
    f.pod = pod('web-1', {}, 'web-5d8f');
    f.namespaceLabels = new Map<string, Record<string, string>>([['shop', { 'kubernetes.io/metadata.name': 'shop', tier: 'batch' }]]);
    const c = byId(evaluate(f)).get('pod-injection')!;
    assert.match(c.message, /namespace-not-selected: namespace shop is not sent to the webhook \(the webhook's namespaceSelector does not select it\)/);
  });
});

describe('doctor and the deprecated OS label (issue 23 item 6)', () => {
  it('a pod that selects beta.kubernetes.io/os: windows is skipped (unsupported-os), not unprotected, by nodeSelector or affinity', () => {
    const f = healthy();
    const bySelector = { ...pod('win-1', {}, 'win-5d8f'), spec: { containers: [{ name: 'app' }], nodeSelector: { 'beta.kubernetes.io/os': 'windows' } } };
    const term = { matchExpressions: [{ key: 'beta.kubernetes.io/os', operator: 'In', values: ['windows'] }] };
    const byAffinity = { ...pod('win-2', {}, 'win-5d8f'), spec: { containers: [{ name: 'app' }], affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [term] } } } } };
    f.pods = [pod('web-1', INJECTED_V1, 'web-5d8f'), bySelector, byAffinity];
    const c = byId(evaluate(f)).get('uninjected-pods')!;
    assert.equal(c.status, 'warn', c.message);
    assert.match(c.message, /^2 labelled pod\(s\) skipped by the webhook: shop\/win-1: pod targets "windows" \(nodeSelector beta\.kubernetes\.io\/os\)/);
    assert.deepEqual(c.fixes, []);
  });
});
