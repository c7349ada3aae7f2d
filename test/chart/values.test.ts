// Issue 16's values, object by object: what platform teams set (an existing license Secret, global,
// common and pod labels, workload identity, extra env, security context and spread overrides,
// numeric quantities), the HPA without replicas, the PodDisruptionBudget's forms, webhook tuning,
// NOTES.txt; and what the schema accepts and refuses.
import { deepStrictEqual, equal, match, ok } from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, test } from 'node:test';
import { ENV, LABEL_INJECTION, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME } from '../../app/contract.ts';
import { CHART_DIR, find, helmTemplate, helmTemplateRaw, parseObjects, type K8sObject } from './render.ts';
import { loadConfig } from '../../app/config.ts';

const LICENSE = 'test-license-0123';
const base = { licenseKey: LICENSE };
const deployment = (objects: K8sObject[]) => find(objects, 'Deployment', 'pando-webhook');
const podSpec = (objects: K8sObject[]) => deployment(objects).spec.template.spec;
const container = (objects: K8sObject[]) => podSpec(objects).containers[0];
const env = (objects: K8sObject[]) => Object.fromEntries((container(objects).env as { name: string; value?: string }[]).map((e) => [e.name, e.value]));
const webhook = (objects: K8sObject[]) => find(objects, 'MutatingWebhookConfiguration').webhooks[0];

describe('values: license.existingSecret', () => {
  const values = { license: { existingSecret: { name: 'vault-license', key: 'token' } }, namespaceSetup: { auto: true }, protectedNamespaces: ['team-a'] };
  const objects = helmTemplate(values);

  test('no Secret holding a license key is rendered, anywhere', () => {
    ok(!objects.some((o) => o.kind === 'Secret'), objects.filter((o) => o.kind === 'Secret').map((o) => `${o.metadata.namespace}/${o.metadata.name}`).join(', '));
    ok(!JSON.stringify(objects).includes(LICENSE_SECRET_KEY + '":'), 'a license-key data entry');
  });

  test('the webhook learns the Secret and key through its env; RBAC reads exactly that Secret', () => {
    equal(env(objects)[ENV.licenseSecretName], 'vault-license');
    equal(env(objects)[ENV.licenseSecretKey], 'token');
    const leaseRole = find(objects, 'Role', 'pando-webhook').rules.filter((r: any) => r.resources.includes('secrets'));
    ok(leaseRole.some((r: any) => JSON.stringify(r.resourceNames) === '["vault-license"]' && JSON.stringify(r.verbs) === '["get"]'), JSON.stringify(leaseRole));
    equal(env(helmTemplate(base))[ENV.licenseSecretName], LICENSE_SECRET_NAME);
    equal(env(helmTemplate(base))[ENV.licenseSecretKey], LICENSE_SECRET_KEY);
  });

  test('protectedNamespaces: ServiceAccount and RoleBinding from the chart; the webhook copies the license under a Role of exactly that Secret', () => {
    const inNs = objects.filter((o) => o.metadata.namespace === 'team-a');
    deepStrictEqual(inNs.map((o) => `${o.kind}/${o.metadata.name}`).sort(), ['Role/pando-webhook-license-copy', 'RoleBinding/pando-sidecar', 'RoleBinding/pando-webhook-license-copy', 'ServiceAccount/pando-sidecar']);
    deepStrictEqual(find(inNs, 'Role').rules, [
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'patch'], resourceNames: [LICENSE_SECRET_NAME] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    ]);
    deepStrictEqual(find(inNs, 'RoleBinding', 'pando-webhook-license-copy').subjects, [{ kind: 'ServiceAccount', name: 'pando-webhook', namespace: 'pando-system' }]);
    equal(env(objects)[ENV.licenseCopyNamespaces], 'team-a');
    // Without namespaceSetup.auto the release Secret is still readable, for the copy.
    const copyOnly = helmTemplate({ ...values, namespaceSetup: { auto: false } });
    ok(find(copyOnly, 'Role', 'pando-webhook').rules.some((r: any) => JSON.stringify(r.resourceNames) === '["vault-license"]'));
    // With licenseKey the chart writes the copies itself: no Role, no env.
    const own = helmTemplate({ ...base, protectedNamespaces: ['team-a'] });
    ok(!own.some((o) => o.metadata.name === 'pando-webhook-license-copy'));
    equal(env(own)[ENV.licenseCopyNamespaces], '');
  });

  test('with licenseKey the release Secret holds it, as before', () => {
    equal(find(helmTemplate(base), 'Secret', LICENSE_SECRET_NAME).stringData[LICENSE_SECRET_KEY], LICENSE);
  });
});

describe('values: conventional values', () => {
  const objects = helmTemplate({
    ...base,
    global: { imageRegistry: 'r.example', storageClass: 'fast', anything: { nested: [1, 'two'] } },
    commonLabels: { team: 'security', 'example.com/cost-center': '42' },
    podLabels: { tier: 'admission' },
    serviceAccount: { annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/pando' } },
    extraEnv: [{ name: 'HTTPS_PROXY', value: 'http://127.0.0.1:3128' }, { name: 'FROM_FIELD', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
    resources: { requests: { cpu: 0.5, memory: '128Mi' }, limits: { cpu: 2, memory: '256Mi' } },
    protectedNamespaces: ['team-a'],
  });

  test('commonLabels on every object, the chart labels kept; not in any selector', () => {
    for (const o of objects) {
      equal(o.metadata.labels?.team, 'security', `${o.kind}/${o.metadata.name}`);
      equal(o.metadata.labels?.['example.com/cost-center'], '42', `${o.kind}/${o.metadata.name}`);
    }
    equal(deployment(objects).metadata.labels['app.kubernetes.io/name'], 'pando-webhook');
    deepStrictEqual(deployment(objects).spec.selector.matchLabels, { 'app.kubernetes.io/component': 'webhook', 'app.kubernetes.io/name': 'pando-webhook' });
    deepStrictEqual(find(objects, 'Service').spec.selector, { 'app.kubernetes.io/component': 'webhook', 'app.kubernetes.io/name': 'pando-webhook' });
  });

  test('podLabels on the pods only', () => {
    equal(deployment(objects).spec.template.metadata.labels.tier, 'admission');
    equal(deployment(objects).spec.template.metadata.labels.team, 'security');
    equal(deployment(objects).metadata.labels.tier, undefined);
  });

  test('serviceAccount.annotations on the webhook ServiceAccount', () => {
    deepStrictEqual(find(objects, 'ServiceAccount', 'pando-webhook').metadata.annotations, { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/pando' });
    equal(find(helmTemplate(base), 'ServiceAccount', 'pando-webhook').metadata.annotations, undefined);
  });

  test('extraEnv appended after the chart env', () => {
    const list = container(objects).env as { name: string }[];
    deepStrictEqual(list.slice(-2), [{ name: 'HTTPS_PROXY', value: 'http://127.0.0.1:3128' }, { name: 'FROM_FIELD', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }]);
    ok(list.some((e) => e.name === ENV.defaultMode));
  });

  test('quantities as numbers (--set resources.limits.cpu=2)', () => {
    // The keys not set keep their defaults (ephemeral-storage): helm merges maps.
    deepStrictEqual(container(objects).resources, { requests: { cpu: 0.5, memory: '128Mi', 'ephemeral-storage': '64Mi' }, limits: { cpu: 2, memory: '256Mi', 'ephemeral-storage': '256Mi' } });
    const r = helmTemplateRaw(base, undefined, ['--set', 'resources.limits.cpu=2']);
    equal(r.status, 0, r.stderr);
  });

  test('sidecar quantities as numbers reach a config the webhook accepts (--set sidecar.resources.limits.cpu=2)', () => {
    const r = helmTemplateRaw(base, undefined, ['--set', 'sidecar.resources.limits.cpu=2']);
    equal(r.status, 0, r.stderr);
    const env = container(parseObjects(r.stdout)).env as { name: string; value?: string }[];
    const json = env.find((e) => e.name === ENV.sidecarResources)?.value ?? '';
    equal(JSON.parse(json).limits.cpu, 2);
    equal(loadConfig({ [ENV.sidecarResources]: json }).sidecar.resources.limits.cpu, '2');
  });

  test('security contexts: restricted by default; override merges; null removes runAsUser', () => {
    const defaults = helmTemplate(base);
    deepStrictEqual(podSpec(defaults).securityContext, { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    const overridden = helmTemplate({ ...base, podSecurityContext: { runAsUser: null, runAsGroup: null, fsGroup: 2000 }, containerSecurityContext: { readOnlyRootFilesystem: false } });
    deepStrictEqual(podSpec(overridden).securityContext, { runAsNonRoot: true, fsGroup: 2000, seccompProfile: { type: 'RuntimeDefault' } });
    const sc = container(overridden).securityContext;
    equal(sc.readOnlyRootFilesystem, false);
    equal(sc.allowPrivilegeEscalation, false);
    deepStrictEqual(sc.capabilities, { drop: ['ALL'] });
    const r = helmTemplateRaw(base, undefined, ['--set', 'podSecurityContext.runAsUser=null']);
    equal(r.status, 0, r.stderr);
    ok(!/runAsUser/.test(r.stdout.split('kind: Deployment')[1]!.split('containers:')[0]!), 'runAsUser still in the pod securityContext');
  });

  test('topology spread: nodes and zones by default, ScheduleAnyway; a value replaces it', () => {
    const spread = podSpec(helmTemplate(base)).topologySpreadConstraints as { topologyKey: string; whenUnsatisfiable: string; labelSelector: unknown }[];
    deepStrictEqual(spread.map((s) => s.topologyKey), ['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
    ok(spread.every((s) => s.whenUnsatisfiable === 'ScheduleAnyway'));
    for (const s of spread) deepStrictEqual(s.labelSelector, { matchLabels: { 'app.kubernetes.io/name': 'pando-webhook', 'app.kubernetes.io/component': 'webhook' } });
    const custom = [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/region', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'pando-webhook' } } }];
    deepStrictEqual(podSpec(helmTemplate({ ...base, topologySpreadConstraints: custom })).topologySpreadConstraints, custom);
  });
});

describe('values: replicas, autoscaler and disruption budget', () => {
  test('HPA on: no replicas in the Deployment, the HPA minimum is replicas; HPA off: replicas', () => {
    const on = helmTemplate({ ...base, replicas: 3 });
    ok(!('replicas' in deployment(on).spec));
    equal(find(on, 'HorizontalPodAutoscaler').spec.minReplicas, 3);
    const off = helmTemplate({ ...base, replicas: 3, hpa: { enabled: false } });
    equal(deployment(off).spec.replicas, 3);
    ok(!off.some((o) => o.kind === 'HorizontalPodAutoscaler'));
  });

  test('PodDisruptionBudget: minAvailable (number or percent) or maxUnavailable, never both', () => {
    const pdb = (values: object) => find(helmTemplate({ ...base, ...values }), 'PodDisruptionBudget').spec;
    deepStrictEqual(pdb({}).minAvailable, 1);
    equal(pdb({}).maxUnavailable, undefined);
    equal(pdb({ podDisruptionBudget: { minAvailable: '50%' } }).minAvailable, '50%');
    const max = pdb({ podDisruptionBudget: { maxUnavailable: 1 } });
    equal(max.maxUnavailable, 1);
    equal(max.minAvailable, undefined);
    equal(pdb({ podDisruptionBudget: { maxUnavailable: '25%' } }).maxUnavailable, '25%');
  });

  test('no PodDisruptionBudget for one replica (it would block every drain)', () => {
    ok(!helmTemplate({ ...base, replicas: 1 }).some((o) => o.kind === 'PodDisruptionBudget'));
    ok(!helmTemplate({ ...base, replicas: 1, hpa: { enabled: false } }).some((o) => o.kind === 'PodDisruptionBudget'));
    ok(helmTemplate({ ...base, replicas: 2 }).some((o) => o.kind === 'PodDisruptionBudget'));
  });
});

describe('values: webhook tuning', () => {
  test('failurePolicy Ignore by default, Fail on request', () => {
    equal(webhook(helmTemplate(base)).failurePolicy, 'Ignore');
    equal(webhook(helmTemplate({ ...base, webhook: { failurePolicy: 'Fail' } })).failurePolicy, 'Fail');
  });

  test('namespaceSelector: the built-in exclusions and the opt-out label, ANDed with the extra selection', () => {
    const w = webhook(helmTemplate({ ...base, webhook: { namespaceSelector: { matchLabels: { env: 'prod' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] } } }));
    deepStrictEqual(w.namespaceSelector, {
      matchLabels: { env: 'prod' },
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public', 'kube-node-lease', 'pando-system'] },
        { key: LABEL_INJECTION, operator: 'NotIn', values: ['disabled'] },
        { key: 'tier', operator: 'In', values: ['web'] },
      ],
    });
  });

  test('timeoutSeconds sets the body deadline to 40 % of it (issue 23 item 1), which the webhook accepts', () => {
    const byDefault = helmTemplate(base);
    equal(webhook(byDefault).timeoutSeconds, 5);
    equal(env(byDefault)[ENV.bodyTimeoutMs], '2000');
    const longer = helmTemplate({ ...base, timeoutSeconds: 30 });
    equal(webhook(longer).timeoutSeconds, 30);
    equal(env(longer)[ENV.bodyTimeoutMs], '12000');
    equal(loadConfig({ ...env(helmTemplate({ ...base, timeoutSeconds: 1 })), PANDO_NAMESPACE: 'pando-system' }).bodyTimeoutMs, 400);
  });
});

describe('values: the schema accepts and refuses', () => {
  const rejects = (values: unknown, message: RegExp, extra: string[] = []) => {
    const r = helmTemplateRaw(values, undefined, extra);
    ok(r.status !== 0, 'helm accepted the values');
    match(r.stderr, message);
  };
  test('global with anything in it', () => equal(helmTemplateRaw({ ...base, global: { a: 1, b: { c: [true] } } }).status, 0));
  test('a misspelt key next to global is still refused', () => rejects({ ...base, global: {}, commonLabel: { a: 'b' } }, /additional properties|commonLabel/i));
  // helm's schema library reports the wrong path for propertyNames, so the message is matched on the key.
  test('commonLabels may not replace the selector labels', () => rejects({ ...base, commonLabels: { 'app.kubernetes.io/name': 'x' } }, /invalid propertyName 'app\.kubernetes\.io\/name'/));
  test('a quantity that is neither a number nor a quantity string', () => rejects(base, /resources/, ['--set', 'resources.limits.cpu=two']));
  test('failurePolicy other than Ignore or Fail', () => rejects({ ...base, webhook: { failurePolicy: 'Allow' } }, /failurePolicy/));
  test('maxUnavailable 0 (it would block every drain)', () => rejects({ ...base, podDisruptionBudget: { maxUnavailable: 0 } }, /maxUnavailable/));
  test('extraEnv without a name', () => rejects({ ...base, extraEnv: [{ value: 'x' }] }, /extraEnv/));
  test('a namespaceSelector operator Kubernetes does not know', () => rejects({ ...base, webhook: { namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'Maybe' }] } } }, /operator/));
});

describe('values: sidecar.startupProbe', () => {
  const probe = { exec: { command: ['/pando-sidecar', 'probe'] }, periodSeconds: 1, failureThreshold: 30 };

  test('unset (the default {}): no env var, the Deployment is what it was', () => {
    ok(!(ENV.sidecarStartupProbe in env(helmTemplate(base))));
    ok(!(ENV.sidecarStartupProbe in env(helmTemplate({ ...base, sidecar: { startupProbe: null } }))), 'null is no probe too');
  });

  test('set: the webhook gets it as JSON and accepts it', () => {
    const json = env(helmTemplate({ ...base, sidecar: { startupProbe: probe } }))[ENV.sidecarStartupProbe]!;
    deepStrictEqual(JSON.parse(json), probe);
    deepStrictEqual(loadConfig({ [ENV.sidecarStartupProbe]: json }).sidecar.startupProbe, probe);
  });

  test('--set sidecar.startupProbe.tcpSocket.port=9000 reaches a config the webhook accepts', () => {
    const r = helmTemplateRaw(base, undefined, ['--set', 'sidecar.startupProbe.tcpSocket.port=9000']);
    equal(r.status, 0, r.stderr);
    const json = (container(parseObjects(r.stdout)).env as { name: string; value?: string }[]).find((e) => e.name === ENV.sidecarStartupProbe)?.value ?? '';
    deepStrictEqual(loadConfig({ [ENV.sidecarStartupProbe]: json }).sidecar.startupProbe, { tcpSocket: { port: 9000 } });
  });

  const rejects = (values: unknown, message: RegExp) => {
    const r = helmTemplateRaw(values);
    ok(r.status !== 0, 'helm accepted the values');
    match(r.stderr, message);
  };
  test('helm refuses a probe host (Pod Security baseline refuses it)', () => rejects({ ...base, sidecar: { startupProbe: { httpGet: { path: '/', port: 80, host: 'x' } } } }, /startupProbe/));
  test('helm refuses two handlers and none', () => {
    rejects({ ...base, sidecar: { startupProbe: { exec: { command: ['a'] }, tcpSocket: { port: 1 } } } }, /startupProbe/);
    rejects({ ...base, sidecar: { startupProbe: { periodSeconds: 1 } } }, /startupProbe/);
  });
  test('helm refuses periodSeconds 0 and successThreshold 2', () => {
    rejects({ ...base, sidecar: { startupProbe: { ...probe, periodSeconds: 0 } } }, /periodSeconds/);
    rejects({ ...base, sidecar: { startupProbe: { ...probe, successThreshold: 2 } } }, /successThreshold/);
  });
});

describe('values: NOTES.txt follows them', () => {
  // helm template leaves NOTES.txt out; the same text rendered as a template of a copy of the chart.
  const notes = (values: unknown): string => {
    const dir = mkdtempSync(join(tmpdir(), 'pando-notes-'));
    try {
      cpSync(CHART_DIR, join(dir, 'pando-webhook'), { recursive: true });
      const text = readFileSync(join(CHART_DIR, 'templates/NOTES.txt'), 'utf8');
      writeFileSync(join(dir, 'pando-webhook/templates/notes-as-yaml.yaml'), `notes: |\n${text.split('\n').map((l) => `  ${l}`).join('\n')}\n`);
      const r = helmTemplateRaw(values, join(dir, 'pando-webhook'), ['--show-only', 'templates/notes-as-yaml.yaml']);
      equal(r.status, 0, r.stderr);
      return (parse(r.stdout) as { notes: string }).notes;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  test('defaults: the license Secret of the release and the manual setup', () => {
    const text = notes(base);
    match(text, /License: in the Secret pando-license of pando-system\./);
    match(text, /1\. Set up each namespace with protected pods/);
    match(text, /kubectl create serviceaccount pando-sidecar/);
    ok(!text.includes('failurePolicy Fail'));
  });

  test('namespaceSetup.auto: the namespace label, no manual setup', () => {
    const text = notes({ ...base, namespaceSetup: { auto: true } });
    match(text, /kubectl label namespace NAMESPACE pandocore\.xyz\/protect-namespace=true/);
    ok(!text.includes('kubectl create serviceaccount') && !text.includes('pando setup-namespace NAMESPACE'), text);
  });

  test('protectedNamespaces: named as set up; the manual setup only for any other namespace', () => {
    const text = notes({ ...base, protectedNamespaces: ['team-a', 'team-b'] });
    match(text, /Set up by the chart: team-a, team-b/);
    match(text, /1\. Set up any other namespace with protected pods/);
  });

  test('license.existingSecret: names the Secret and key; no copy of pando-license by hand', () => {
    const text = notes({ license: { existingSecret: { name: 'vault-license', key: 'token' } }, protectedNamespaces: ['team-a'] });
    match(text, /License: from your Secret vault-license \(key token\) in pando-system; the chart holds no key\./);
    match(text, /the webhook copies the license from vault-license there/);
    ok(!text.includes('kubectl get secret pando-license'), text);
  });

  test('failurePolicy Fail: says what it means', () => {
    match(notes({ ...base, webhook: { failurePolicy: 'Fail' } }), /failurePolicy Fail: while no webhook replica answers, labelled pods are refused\./);
  });
});
