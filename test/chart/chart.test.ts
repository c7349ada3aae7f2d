// The Helm chart in dist/: lint, the objects it renders, each requirement by name, the schema's
// rejections, Kubernetes schema validation, equality with the plain cdk8s synth, and freshness.
import { deepStrictEqual, equal, match, ok } from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, test } from 'node:test';
import { ENV, LABEL_PROTECT, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME, PATH_HEALTHZ, PATH_READYZ, SIDECAR_CLUSTER_ROLE } from '../../app/contract.ts';
import { CHART_DIR, NAMESPACE, ROOT, byKey, find, helm, helmTemplate, helmTemplateRaw, parseObjects, plainSynth, type K8sObject } from './render.ts';
import { loadConfig } from '../../app/config.ts';

const LICENSE = 'test-license-0123';
const base = { licenseKey: LICENSE };
const kinds = (objects: K8sObject[]) => objects.map((o) => o.kind).sort();
const container = (objects: K8sObject[]) => find(objects, 'Deployment').spec.template.spec.containers[0];
const env = (objects: K8sObject[]) => Object.fromEntries((container(objects).env as { name: string; value?: string }[]).map((e) => [e.name, e.value]));
const webhook = (objects: K8sObject[]) => find(objects, 'MutatingWebhookConfiguration').webhooks[0];
const ANTI_AFFINITY = {
  podAntiAffinity: {
    preferredDuringSchedulingIgnoredDuringExecution: [
      { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'pando-webhook', 'app.kubernetes.io/component': 'webhook' } } } },
    ],
  },
};

const DEFAULT_KINDS = [
  'ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'Deployment', 'HorizontalPodAutoscaler', 'MutatingWebhookConfiguration',
  'NetworkPolicy', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Secret', 'Service', 'ServiceAccount',
  'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding',
  // watchdog.enabled (the default): its own ClusterRole, Role and bindings.
  'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding',
].sort();
const CERT_MANAGER_KINDS = ['Certificate', 'Certificate', 'Issuer', 'Issuer'];

describe('chart: lint and render', () => {
  test('helm lint --strict prints nothing but success (no INFO or WARNING)', () => {
    const r = helm(['lint', '--strict', CHART_DIR, '--set', `licenseKey=${LICENSE}`]);
    equal(r.status, 0, r.stdout + r.stderr);
    equal(r.stdout, `==> Linting ${CHART_DIR}\n\n1 chart(s) linted, 0 chart(s) failed\n`);
    equal(r.stderr, '');
  });

  test('Chart.yaml kubeVersion is >=1.30 (ValidatingAdmissionPolicy v1 is served from 1.30): 1.29 is refused with the reason, 1.30 renders the policy', () => {
    const at = (version: string) => helm(['template', 'pando-webhook', CHART_DIR, '--namespace', NAMESPACE, '--kube-version', version, '--set', `licenseKey=${LICENSE}`]);
    const old = at('1.29.0');
    ok(old.status !== 0, 'helm rendered the chart for Kubernetes 1.29, which serves no admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy');
    match(old.stderr, /chart requires kubeVersion: >=1\.30\.0-0 which is incompatible with Kubernetes v1\.29\.0/);
    const ok130 = at('1.30.0');
    equal(ok130.status, 0, ok130.stderr);
    equal(find(parseObjects(ok130.stdout), 'ValidatingAdmissionPolicy', 'pando-webhook-secrets').apiVersion, 'admissionregistration.k8s.io/v1');
  });

  test('the default render holds exactly the expected kinds', () => {
    deepStrictEqual(kinds(helmTemplate(base)), DEFAULT_KINDS);
  });

  test('cert-manager objects are present if and only if tls.certManager', () => {
    // cert-manager mode keeps the Role (get of its own Deployment: the watchdog Lease's owner).
    deepStrictEqual(kinds(helmTemplate({ ...base, tls: { certManager: true } })), [...DEFAULT_KINDS, ...CERT_MANAGER_KINDS].sort());
    ok(!helmTemplate(base).some((o) => o.apiVersion.startsWith('cert-manager.io/')));
  });
});

describe('chart: requirements', () => {
  const objects = helmTemplate(base);

  test('Deployment: no replicas while the HPA is on (2 without it), probes on /healthz and /readyz, a startup probe of 2 minutes before liveness counts', () => {
    const deployment = find(objects, 'Deployment', 'pando-webhook');
    ok(!('replicas' in deployment.spec), 'replicas rendered although the HPA owns it');
    equal(find(helmTemplate({ ...base, hpa: { enabled: false } }), 'Deployment').spec.replicas, 2);
    const c = container(objects);
    equal(c.readinessProbe.httpGet.path, PATH_READYZ);
    equal(c.readinessProbe.httpGet.scheme, 'HTTPS');
    equal(c.livenessProbe.httpGet.path, PATH_HEALTHZ);
    // The liveness endpoint, on the same port: once it answers, liveness and readiness take over.
    deepStrictEqual(c.startupProbe.httpGet, c.livenessProbe.httpGet);
    equal(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold, 120);
    ok(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold > c.livenessProbe.periodSeconds * c.livenessProbe.failureThreshold);
  });

  test('Deployment: every container field is one we chose (no cdk8s-plus defaults)', () => {
    deepStrictEqual(Object.keys(container(objects)).sort(), ['env', 'image', 'imagePullPolicy', 'livenessProbe', 'name', 'ports', 'readinessProbe', 'resources', 'securityContext', 'startupProbe', 'volumeMounts']);
    const text = JSON.stringify(objects);
    ok(!text.includes('cdk8s.io/'), 'no cdk8s.io labels or annotations');
    const pod = find(objects, 'Deployment').spec.template.spec;
    for (const field of ['dnsPolicy', 'hostNetwork', 'setHostnameAsFQDN', 'restartPolicy']) equal(pod[field], undefined, field);
    deepStrictEqual(find(objects, 'Deployment').spec.selector.matchLabels, { 'app.kubernetes.io/component': 'webhook', 'app.kubernetes.io/name': 'pando-webhook' });
  });

  test('Deployment: restricted securityContext for pod and container, resources, spread, grace period', () => {
    const pod = find(objects, 'Deployment').spec.template.spec;
    deepStrictEqual(pod.securityContext, { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    const sc = container(objects).securityContext;
    equal(sc.allowPrivilegeEscalation, false);
    equal(sc.readOnlyRootFilesystem, true);
    equal(sc.runAsNonRoot, true);
    deepStrictEqual(sc.capabilities, { drop: ['ALL'] });
    deepStrictEqual(sc.seccompProfile, { type: 'RuntimeDefault' });
    deepStrictEqual(container(objects).resources, {
      requests: { cpu: '100m', memory: '128Mi', 'ephemeral-storage': '64Mi' },
      limits: { cpu: '1', memory: '256Mi', 'ephemeral-storage': '256Mi' },
    });
    equal(pod.topologySpreadConstraints[0].topologyKey, 'kubernetes.io/hostname');
    equal(pod.terminationGracePeriodSeconds, 30);
    equal(pod.serviceAccountName, 'pando-webhook');
  });

  test('Deployment: scheduling values reach the pod', () => {
    const pod = find(helmTemplate({ ...base, nodeSelector: { disk: 'ssd' }, tolerations: [{ key: 'dedicated', operator: 'Exists' }], priorityClassName: 'system-cluster-critical', affinity: { nodeAffinity: {} } }), 'Deployment').spec.template.spec;
    deepStrictEqual(pod.nodeSelector, { disk: 'ssd' });
    deepStrictEqual(pod.tolerations, [{ key: 'dedicated', operator: 'Exists' }]);
    equal(pod.priorityClassName, 'system-cluster-critical');
    // helm merges a map value with its default: the nodeAffinity set joins the default podAntiAffinity.
    deepStrictEqual(pod.affinity, { nodeAffinity: {}, ...ANTI_AFFINITY });
  });

  test('Deployment on the node\'s network (hostNetwork, securePort, metricsPort, schedulerName): ports, env, probes, Service, NetworkPolicy and DNS follow; the default render has none of it', () => {
    const values = { ...base, hostNetwork: true, securePort: 10260, metricsPort: 10261, schedulerName: 'edge-scheduler' };
    const rendered = helmTemplate(values);
    const pod = find(rendered, 'Deployment').spec.template.spec;
    equal(pod.hostNetwork, true);
    // cert-manager's webhook chart does the same: a host-network pod still resolves cluster names.
    equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
    equal(pod.schedulerName, 'edge-scheduler');
    const c = container(rendered);
    deepStrictEqual(c.ports, [{ name: 'https', containerPort: 10260, protocol: 'TCP' }, { name: 'metrics', containerPort: 10261, protocol: 'TCP' }]);
    equal(env(rendered)[ENV.port], '10260');
    equal(env(rendered)[ENV.metricsPort], '10261');
    // The probes name the ports, so the kubelet probes securePort and metricsPort.
    const portOf = (name: string) => c.ports.find((p: any) => p.name === name).containerPort;
    equal(portOf(c.readinessProbe.httpGet.port), 10260);
    equal(portOf(c.livenessProbe.httpGet.port), 10261);
    deepStrictEqual(find(rendered, 'Service').spec.ports.map((p: any) => [p.name, p.port, p.targetPort]), [['https', 443, 10260], ['metrics', 9090, 10261]]);
    deepStrictEqual(find(rendered, 'NetworkPolicy', 'pando-webhook').spec.ingress.map((i: any) => i.ports), [[{ port: 10260, protocol: 'TCP' }], [{ port: 10261, protocol: 'TCP' }]]);
    // The webhook reads its ports from the env: the config it would load matches the container ports.
    const config = loadConfig({ ...env(rendered), [ENV.namespace]: NAMESPACE, [ENV.podName]: 'p' } as Record<string, string>);
    deepStrictEqual([config.port, config.metricsPort], [10260, 10261]);
    // Defaults: nothing of it, the ports as before.
    const defaults = find(objects, 'Deployment').spec.template.spec;
    for (const field of ['hostNetwork', 'dnsPolicy', 'schedulerName']) equal(defaults[field], undefined, field);
    deepStrictEqual(container(objects).ports.map((p: any) => p.containerPort), [8443, 9090]);
    equal(find(helmTemplate({ ...base, hostNetwork: false }), 'Deployment').spec.template.spec.dnsPolicy, undefined);
  });

  test('Deployment: a preferred (soft) podAntiAffinity on the node by default, selecting its own pods; null drops it (kube-score deployment-has-host-podantiaffinity)', () => {
    const pod = find(objects, 'Deployment').spec.template.spec;
    deepStrictEqual(pod.affinity, ANTI_AFFINITY);
    // Soft, so a one-node cluster still schedules both replicas; the term selects the pod's own labels.
    equal(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution, undefined);
    const labels = find(objects, 'Deployment').spec.template.metadata.labels;
    for (const [k, v] of Object.entries(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.labelSelector.matchLabels)) equal(labels[k], v, k);
    equal(find(helmTemplate({ ...base, affinity: { podAntiAffinity: null } }), 'Deployment').spec.template.spec.affinity, undefined);
    const required = { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'pando-webhook' } } }] };
    deepStrictEqual(find(helmTemplate({ ...base, affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: null, ...required } } }), 'Deployment').spec.template.spec.affinity, { podAntiAffinity: required });
  });

  test('Deployment: ephemeral-storage request and limit on the webhook container, above the /tmp emptyDir (kube-score container-ephemeral-storage-request-and-limit)', () => {
    const pod = find(objects, 'Deployment').spec.template.spec;
    const { requests, limits } = container(objects).resources;
    equal(requests['ephemeral-storage'], '64Mi');
    equal(limits['ephemeral-storage'], '256Mi');
    // The pod's limit is the container's: the /tmp emptyDir (16Mi) and the rotated logs (5 x 10Mi by default) fit under it.
    equal(pod.volumes.find((v: any) => v.name === 'tmp').emptyDir.sizeLimit, '16Mi');
    equal(container(objects).securityContext.readOnlyRootFilesystem, true);
    deepStrictEqual(container(helmTemplate({ ...base, resources: { limits: { 'ephemeral-storage': '1Gi' } } })).resources.limits, { cpu: '1', memory: '256Mi', 'ephemeral-storage': '1Gi' });
  });

  test('Deployment: image defaults to the chart appVersion; a digest pins it', () => {
    const chartVersion = helm(['show', 'chart', CHART_DIR]).stdout.match(/^appVersion: (.+)$/m)![1]!.replaceAll('"', '');
    equal(container(objects).image, `registry.pandocore.xyz/pandocore/pando-webhook:${chartVersion}`);
    const digest = `sha256:${'b'.repeat(64)}`;
    equal(container(helmTemplate({ ...base, image: { repository: 'r.example/w', digest } })).image, `r.example/w@${digest}`);
    equal(container(helmTemplate({ ...base, image: { repository: 'r.example/w', tag: '9.9.9' } })).image, 'r.example/w:9.9.9');
  });

  test('Deployment: webhook settings reach the container env; the license key never does', () => {
    const e = env(helmTemplate({ ...base, defaultMode: 'enforce', sidecar: { image: { repository: 'r.example/side', tag: '2.0.0' }, native: false } }));
    equal(e[ENV.defaultMode], 'enforce');
    equal(e[ENV.sidecarImage], 'r.example/side:2.0.0');
    equal(e[ENV.sidecarNative], 'false');
    equal(e[ENV.excludedNamespaces], 'kube-system,kube-public,kube-node-lease');
    deepStrictEqual(JSON.parse(e[ENV.sidecarResources]!), { limits: { cpu: '200m', memory: '128Mi' }, requests: { cpu: '50m', memory: '64Mi' } });
    equal(e[ENV.namespaceCheck], 'true');
    equal(e[ENV.tlsSelfSigned], 'true');
    equal(e[ENV.tlsCertFile], undefined);
    ok(!JSON.stringify(find(objects, 'Deployment')).includes(LICENSE), 'license key in the Deployment');
  });

  test('Sidecar image: registry and digest compose the image, the tag stays the version; pull policy, pull Secrets and podResources reach the env and the RBAC', () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    const rendered = helmTemplate({
      ...base,
      sidecar: { image: { registry: 'mirror.example:5000', repository: 'pandocore/sidecar', tag: '1.4.0', digest, pullPolicy: 'Always' }, imagePullSecrets: ['pando-registry'], podResources: 'grow' },
    });
    const e = env(rendered);
    equal(e[ENV.sidecarImage], `mirror.example:5000/pandocore/sidecar:1.4.0@${digest}`);
    equal(e[ENV.sidecarVersion], '1.4.0');
    equal(e[ENV.sidecarPullPolicy], 'Always');
    equal(e[ENV.sidecarPullSecrets], 'pando-registry');
    equal(e[ENV.sidecarPodResources], 'grow');
    const rules = rendered.find((o: any) => o.kind === 'ClusterRole' && o.metadata.name === 'pando-webhook')!.rules;
    deepStrictEqual(rules.find((r: any) => r.resources.includes('secrets')).resourceNames, ['pando-license', 'pando-registry'], 'the namespace check gets exactly these Secrets');
    deepStrictEqual(rules.find((r: any) => r.resources.includes('limitranges')), { apiGroups: [''], resources: ['limitranges'], verbs: ['list'] });
    const without = helmTemplate({ ...base, namespaceCheck: false }).find((o: any) => o.kind === 'ClusterRole' && o.metadata.name === 'pando-webhook')!.rules;
    ok(!without.some((r: any) => r.resources.includes('limitranges')), 'no LimitRange rule without the namespace check');
  });

  test('PodDisruptionBudget minAvailable 1; Service 443 to the webhook port; NetworkPolicy admits only the two ports, the webhook port from networkPolicy.ingressFrom', () => {
    equal(find(objects, 'PodDisruptionBudget').spec.minAvailable, 1);
    const service = find(objects, 'Service');
    deepStrictEqual(service.spec.ports.find((p: any) => p.name === 'https'), { name: 'https', port: 443, protocol: 'TCP', targetPort: 8443 });
    ok(!('externalIPs' in service.spec));
    const policy = find(objects, 'NetworkPolicy', 'pando-webhook').spec;
    deepStrictEqual(policy.policyTypes, ['Ingress']);
    deepStrictEqual(policy.ingress, [{ from: [], ports: [{ port: 8443, protocol: 'TCP' }] }, { ports: [{ port: 9090, protocol: 'TCP' }] }]);
    const apiServer = [{ ipBlock: { cidr: '10.0.0.0/24' } }, { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } }];
    const restricted = find(helmTemplate({ ...base, networkPolicy: { ingressFrom: apiServer } }), 'NetworkPolicy', 'pando-webhook').spec;
    deepStrictEqual(restricted.ingress, [{ from: apiServer, ports: [{ port: 8443, protocol: 'TCP' }] }, { ports: [{ port: 9090, protocol: 'TCP' }] }], 'only the sources named reach the webhook port; metrics stay open');
  });

  test('egress NetworkPolicy (networkPolicy.egress): off by default; on, only DNS and the API server ports, to any address or to the peers named', () => {
    ok(!objects.some((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'pando-webhook-egress'), 'rendered by default');
    const on = find(helmTemplate({ ...base, networkPolicy: { egress: { enabled: true } } }), 'NetworkPolicy', 'pando-webhook-egress');
    equal(on.metadata.namespace, NAMESPACE);
    deepStrictEqual(on.spec.podSelector, find(objects, 'Deployment').spec.selector);
    deepStrictEqual(on.spec.policyTypes, ['Egress']);
    // An empty `to` is any destination: the ports are the only bound by default.
    deepStrictEqual(on.spec.egress, [
      { ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }], to: [] },
      { ports: [{ port: 443, protocol: 'TCP' }, { port: 6443, protocol: 'TCP' }], to: [] },
    ]);
    const apiServer = [{ ipBlock: { cidr: '10.0.0.10/32' } }];
    const dns = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }];
    const ports = [{ port: 16443, protocol: 'TCP' }];
    const named = find(helmTemplate({ ...base, networkPolicy: { egress: { enabled: true, apiServerTo: apiServer, apiServerPorts: ports, dnsTo: dns } } }), 'NetworkPolicy', 'pando-webhook-egress');
    deepStrictEqual(named.spec.egress, [{ ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }], to: dns }, { ports, to: apiServer }]);
    // Independent of the ingress policy.
    const egressOnly = helmTemplate({ ...base, networkPolicy: { enabled: false, egress: { enabled: true } } }).filter((o) => o.kind === 'NetworkPolicy');
    deepStrictEqual(egressOnly.map((o) => o.metadata.name), ['pando-webhook-egress']);
  });

  test('MutatingWebhookConfiguration: Ignore, IfNeeded, None, v1, timeout 5, pods CREATE, label and namespace selectors', () => {
    const w = webhook(objects);
    equal(w.failurePolicy, 'Ignore');
    equal(w.reinvocationPolicy, 'IfNeeded');
    equal(w.sideEffects, 'None');
    deepStrictEqual(w.admissionReviewVersions, ['v1']);
    equal(w.timeoutSeconds, 5);
    deepStrictEqual(w.rules, [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }]);
    deepStrictEqual(w.objectSelector, { matchLabels: { [LABEL_PROTECT]: 'true' } });
    deepStrictEqual(w.namespaceSelector.matchExpressions, [
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public', 'kube-node-lease', NAMESPACE] },
      { key: 'pandocore.xyz/injection', operator: 'NotIn', values: ['disabled'] },
    ]);
    deepStrictEqual(w.clientConfig, { service: { name: 'pando-webhook', namespace: NAMESPACE, path: '/mutate', port: 443 } });
    equal(find(objects, 'MutatingWebhookConfiguration').metadata.annotations, undefined);
    equal(webhook(helmTemplate({ ...base, timeoutSeconds: 12 })).timeoutSeconds, 12);
  });

  test('webhook.url (out-of-cluster development) replaces the Service; caBundle only when given', () => {
    const w = webhook(helmTemplate({ ...base, webhook: { url: 'https://127.0.0.1:9443/mutate', caBundle: 'QUJD' } }));
    deepStrictEqual(w.clientConfig, { url: 'https://127.0.0.1:9443/mutate', caBundle: 'QUJD' });
  });

  test('HorizontalPodAutoscaler: min = replicas, max 5, CPU 75 %', () => {
    const hpa = find(objects, 'HorizontalPodAutoscaler').spec;
    equal(hpa.minReplicas, 2);
    equal(hpa.maxReplicas, 5);
    equal(hpa.metrics[0].resource.target.averageUtilization, 75);
    deepStrictEqual(hpa.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'pando-webhook' });
    equal(find(helmTemplate({ ...base, replicas: 3 }), 'HorizontalPodAutoscaler').spec.minReplicas, 3);
  });

  test('RBAC: least privilege, Secrets only by name, never list or watch them', () => {
    const rules = [...find(objects, 'Role', 'pando-webhook').rules, ...find(objects, 'ClusterRole', 'pando-webhook').rules] as { resources: string[]; verbs: string[]; resourceNames?: string[] }[];
    for (const rule of rules.filter((r) => r.resources.includes('secrets'))) {
      ok(!rule.verbs.some((v) => ['list', 'watch', '*'].includes(v)), JSON.stringify(rule));
      if (!(rule.verbs.length === 1 && rule.verbs[0] === 'create')) ok(rule.resourceNames && rule.resourceNames.length > 0, `unnamed secret rule ${JSON.stringify(rule)}`);
    }
    const clusterSecrets = find(objects, 'ClusterRole', 'pando-webhook').rules.filter((r: any) => r.resources.includes('secrets'));
    deepStrictEqual(clusterSecrets, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: [LICENSE_SECRET_NAME] }]);
    const mwc = find(objects, 'ClusterRole', 'pando-webhook').rules.filter((r: any) => r.resources.includes('mutatingwebhookconfigurations'));
    ok(mwc.every((r: any) => JSON.stringify(r.resourceNames) === '["pando-webhook"]'));
    ok(!rules.some((r) => r.verbs.includes('*') || r.resources.includes('*')));
    const cm = helmTemplate({ ...base, tls: { certManager: true } });
    // cert-manager mode: no Secret access in its namespace; only its own Deployment, read for the
    // owner of the watchdog's Lease (issue 23: without it the Lease had no owner and survived uninstall).
    deepStrictEqual(cm.find((o) => o.kind === 'Role' && o.metadata.name === 'pando-webhook')?.rules, [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get'], resourceNames: ['pando-webhook'] }]);
    ok(!helmTemplate({ ...base, tls: { certManager: true }, watchdog: { enabled: false } }).some((o) => o.kind === 'Role' && o.metadata.name === 'pando-webhook'), 'cert-manager mode without the watchdog needs no Role');
    equal(find(objects, 'ClusterRole', SIDECAR_CLUSTER_ROLE).metadata.name, SIDECAR_CLUSTER_ROLE);
  });

  test('RBAC: only rules the code uses (events only in the watchdog\'s roles, no patch of the TLS Secret)', () => {
    // The webhook's roles (the sidecar's own ClusterRole and the watchdog's roles are another matter).
    const all = (objs: K8sObject[]) =>
      objs.filter((o) => (o.kind === 'Role' || o.kind === 'ClusterRole') && o.metadata.name !== SIDECAR_CLUSTER_ROLE && !o.metadata.name.includes('watchdog')).flatMap((o) => o.rules ?? []) as { resources: string[]; verbs: string[]; resourceNames?: string[] }[];
    const on = helmTemplate({ ...base, namespaceSetup: { auto: true } });
    for (const objs of [objects, on, helmTemplate({ ...base, tls: { certManager: true } })]) ok(!all(objs).some((r) => r.resources.includes('events')), 'no events');
    deepStrictEqual(find(objects, 'Role', 'pando-webhook').rules.find((r: any) => r.resourceNames?.includes('pando-webhook-tls')).verbs, ['get', 'update']);
    const cm = helmTemplate({ ...base, tls: { certManager: true } });
    ok(!all(cm).some((r) => r.resources.includes('mutatingwebhookconfigurations')), 'cert-manager mode never reads or writes the webhook configuration');
    ok(!helmTemplate({ ...base, tls: { certManager: true }, namespaceCheck: false }).some((o) => o.kind === 'ClusterRole' && o.metadata.name === 'pando-webhook'), 'nothing to grant: no ClusterRole');
  });

  test('ValidatingAdmissionPolicy: the webhook\'s ServiceAccount writes only our Secrets, Deny, on by default', () => {
    const policy = find(objects, 'ValidatingAdmissionPolicy', 'pando-webhook-secrets').spec;
    equal(policy.failurePolicy, 'Fail');
    deepStrictEqual(policy.matchConstraints.resourceRules, [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['secrets'] }]);
    equal(policy.matchConditions[0].expression, `request.userInfo.username == 'system:serviceaccount:${NAMESPACE}:pando-webhook'`);
    match(policy.validations[0].expression, new RegExp(`request\\.namespace == "${NAMESPACE}"`));
    match(policy.validations[0].expression, /object\.metadata\.name in \[\] /, 'no pull Secrets: none of those names');
    const withPull = find(helmTemplate({ ...base, sidecar: { imagePullSecrets: ['pando-registry', 'other'] } }), 'ValidatingAdmissionPolicy').spec;
    match(withPull.validations[0].expression, /object\.metadata\.name in \["pando-registry","other"\] && .* in \["kubernetes\.io\/dockerconfigjson", "kubernetes\.io\/dockercfg"\]/);
    match(policy.validations[1].expression, /kubernetes\.io\/service-account\./);
    deepStrictEqual(find(objects, 'ValidatingAdmissionPolicyBinding', 'pando-webhook-secrets').spec, { policyName: 'pando-webhook-secrets', validationActions: ['Deny'] });
    ok(!helmTemplate({ ...base, secretPolicy: { enabled: false } }).some((o) => o.kind.startsWith('ValidatingAdmissionPolicy')), 'secretPolicy.enabled=false');
  });

  test('license Secret in the release namespace from licenseKey', () => {
    const secret = find(objects, 'Secret', LICENSE_SECRET_NAME);
    equal(secret.metadata.namespace, NAMESPACE);
    equal(secret.stringData[LICENSE_SECRET_KEY], LICENSE);
  });

  test('tls.certManager: Issuers, CA and serving Certificates, cainjector annotation, mounted Secret', () => {
    const cm = helmTemplate({ ...base, tls: { certManager: true, extraIpAddresses: ['127.0.0.1'] } });
    equal(find(cm, 'Issuer', 'pando-webhook-selfsigned').spec.selfSigned !== undefined, true);
    equal(find(cm, 'Certificate', 'pando-webhook-ca').spec.isCA, true);
    equal(find(cm, 'Issuer', 'pando-webhook-ca').spec.ca.secretName, 'pando-webhook-ca');
    const serving = find(cm, 'Certificate', 'pando-webhook-serving').spec;
    equal(serving.secretName, 'pando-webhook-tls');
    deepStrictEqual(serving.dnsNames, [`pando-webhook.${NAMESPACE}.svc`, `pando-webhook.${NAMESPACE}.svc.cluster.local`]);
    deepStrictEqual(serving.ipAddresses, ['127.0.0.1']);
    equal(serving.privateKey.algorithm, 'ECDSA');
    equal(find(cm, 'MutatingWebhookConfiguration').metadata.annotations['cert-manager.io/inject-ca-from'], `${NAMESPACE}/pando-webhook-serving`);
    const e = env(cm);
    equal(e[ENV.tlsCertFile], '/etc/pando/tls/tls.crt');
    equal(e[ENV.tlsSelfSigned], undefined);
    ok(find(cm, 'Deployment').spec.template.spec.volumes.some((v: any) => v.secret?.secretName === 'pando-webhook-tls'));
  });

  test('protectedNamespaces: ServiceAccount, RoleBinding and license Secret in each', () => {
    const objs = helmTemplate({ ...base, protectedNamespaces: ['team-a', 'team-b'] });
    for (const ns of ['team-a', 'team-b']) {
      const inNs = objs.filter((o) => o.metadata.namespace === ns).map((o) => `${o.kind}/${o.metadata.name}`).sort();
      deepStrictEqual(inNs, ['RoleBinding/pando-sidecar', 'Secret/pando-license', 'ServiceAccount/pando-sidecar']);
      equal(find(objs.filter((o) => o.metadata.namespace === ns), 'RoleBinding').roleRef.name, SIDECAR_CLUSTER_ROLE);
    }
  });

  test('namespaceSetup.auto adds its RBAC and env; off (the default) it is all gone', () => {
    const on = helmTemplate({ ...base, namespaceSetup: { auto: true } });
    const setupRole = find(on, 'ClusterRole', 'pando-webhook-namespace-setup');
    ok(setupRole.rules.some((r: any) => r.resources.includes('clusterroles') && r.verbs.includes('bind') && JSON.stringify(r.resourceNames) === JSON.stringify([SIDECAR_CLUSTER_ROLE])));
    for (const rule of setupRole.rules as { resources: string[]; verbs: string[]; resourceNames?: string[] }[]) {
      ok(!rule.verbs.some((v) => ['*', 'update'].includes(v)), JSON.stringify(rule));
      // watch only namespaces; delete only the three names it creates.
      if (rule.verbs.includes('watch')) deepStrictEqual(rule.resources, ['namespaces']);
      if (rule.verbs.includes('delete')) ok(rule.resourceNames && rule.resourceNames.length === 1, JSON.stringify(rule));
      if (rule.resources.includes('secrets') && !rule.verbs.includes('create')) deepStrictEqual(rule.resourceNames, [LICENSE_SECRET_NAME]);
    }
    equal(find(on, 'ClusterRoleBinding', 'pando-webhook-namespace-setup').subjects[0].name, 'pando-webhook');
    ok(find(on, 'Role', 'pando-webhook').rules.some((r: any) => r.resources.includes('leases')));
    equal(env(on)[ENV.namespaceSetupAuto], 'true');
    equal(env(on)[ENV.namespaceSetupSelector], '');
    equal(env(helmTemplate({ ...base, namespaceSetup: { auto: true, namespaceSelector: 'team in (payments,web)' } }))[ENV.namespaceSetupSelector], 'team in (payments,web)');
    ok(!objects.some((o) => o.metadata.name === 'pando-webhook-namespace-setup'));
    ok(!find(objects, 'Role', 'pando-webhook').rules.some((r: any) => r.resources.includes('leases')));
    equal(env(objects)[ENV.namespaceSetupAuto], 'false');
  });

  test('ServiceMonitor only when enabled', () => {
    ok(!objects.some((o) => o.kind === 'ServiceMonitor'));
    equal(find(helmTemplate({ ...base, serviceMonitor: { enabled: true } }), 'ServiceMonitor').spec.endpoints[0].port, 'metrics');
  });

  test('ServiceMonitor: labels a Prometheus selects by, and scrapeTimeout', () => {
    const monitor = find(helmTemplate({ ...base, serviceMonitor: { enabled: true, labels: { release: 'prometheus' }, scrapeTimeout: '5s' } }), 'ServiceMonitor');
    equal(monitor.metadata.labels.release, 'prometheus');
    equal(monitor.metadata.labels['app.kubernetes.io/name'], 'pando-webhook');
    equal(monitor.spec.endpoints[0].scrapeTimeout, '5s');
    equal(find(helmTemplate({ ...base, serviceMonitor: { enabled: true } }), 'ServiceMonitor').spec.endpoints[0].scrapeTimeout, '10s');
  });

  test('PrometheusRule only when enabled: the seven alerts, each with summary, a description naming the fix and a runbook', () => {
    ok(!objects.some((o) => o.kind === 'PrometheusRule'));
    const rule = find(helmTemplate({ ...base, prometheusRule: { enabled: true, labels: { release: 'prometheus' } } }), 'PrometheusRule');
    equal(rule.metadata.labels.release, 'prometheus');
    const alerts = rule.spec.groups[0].rules as { alert: string; expr: string; for: string; annotations: { summary: string; description: string; runbook: string } }[];
    deepStrictEqual(alerts.map((a) => a.alert), ['PandoCoreUnprotectedPods', 'PandoCoreSidecarFailing', 'PandoCoreCertificateExpiring', 'PandoCoreCaBundleOutOfSync', 'PandoCoreInjectionErrors', 'PandoCoreWebhookAbsent', 'PandoCoreRolloutPaused']);
    for (const a of alerts) {
      ok(a.annotations.summary && a.annotations.description.includes('Fix: '), a.alert);
      match(a.annotations.runbook, new RegExp(`${a.alert}$`));
      match(readFileSync(`${CHART_DIR}/README.md`, 'utf8'), new RegExp(`### ${a.alert}\\n\\n.+\\n\\n.+\\n1\\. `), `the chart README has a runbook for ${a.alert}`);
    }
    equal(alerts[0]!.expr, 'sum by (namespace) (pandocore_unprotected_pods) > 0');
    equal(alerts[0]!.for, '5m');
    match(alerts[0]!.annotations.description, /^\{\{ \$value \}\} labelled pod/, "Prometheus' templates reach the rule unevaluated");
    equal(alerts[1]!.expr, 'sum by (namespace, reason) (pandocore_sidecar_failing_pods) > 0');
    equal(alerts[1]!.for, '5m');
    match(alerts[1]!.annotations.description, /\(\{\{ \$labels\.reason \}\}\).*reason=SidecarFailing.*Restarting does not help/);
    match(alerts[2]!.expr, /14 \* 86400/);
    equal(alerts[3]!.expr, 'min(pandocore_cabundle_in_sync) == 0');
    match(alerts[4]!.expr, /outcome="error"/);
    equal(alerts[5]!.expr, `absent(up{job="pando-webhook", namespace="${NAMESPACE}"} == 1)`);
    equal(alerts[6]!.expr, 'max(pandocore_rollout_paused) == 1');
    match(alerts[6]!.annotations.description, /pando rollout resume/);
  });
});

describe('chart: watchdog RBAC, per combination of values', () => {
  const watchdogRules = (values: Record<string, unknown>) => {
    const objs = helmTemplate({ ...base, ...values });
    const role = objs.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'pando-webhook-watchdog');
    return { objs, cluster: role?.rules, lease: objs.find((o) => o.kind === 'Role' && o.metadata.name === 'pando-webhook-watchdog')?.rules, env: env(objs) };
  };
  const REPORT = [
    { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['get'] },
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
  ];
  const HEAL = { apiGroups: ['apps'], resources: ['deployments', 'statefulsets', 'daemonsets'], verbs: ['get', 'patch'] };
  const LEASE = [
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: ['pando-webhook-watchdog'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
  ];

  test('on, heal off (the default): list/watch pods, create events, get replicasets, its Lease; no workload writes', () => {
    const r = watchdogRules({});
    deepStrictEqual(r.cluster, REPORT);
    deepStrictEqual(r.lease, LEASE);
    equal(find(r.objs, 'ClusterRoleBinding', 'pando-webhook-watchdog').subjects[0].name, 'pando-webhook');
    equal(find(r.objs, 'RoleBinding', 'pando-webhook-watchdog').roleRef.name, 'pando-webhook-watchdog');
    deepStrictEqual([r.env[ENV.watchdog], r.env[ENV.watchdogHeal], r.env[ENV.watchdogRestartStale], r.env[ENV.watchdogRestartsPerMinute]], ['true', 'off', 'false', '5']);
  });

  test('heal=restart: adds get/patch of Deployments, StatefulSets, DaemonSets (restartStale now turns the rollout on instead)', () => {
    const heal = watchdogRules({ watchdog: { heal: 'restart', restartsPerMinute: 3 } });
    deepStrictEqual(heal.cluster, [...REPORT, HEAL]);
    deepStrictEqual([heal.env[ENV.watchdogHeal], heal.env[ENV.watchdogRestartsPerMinute]], ['restart', '3']);
    deepStrictEqual(watchdogRules({ watchdog: { restartStale: true } }).cluster, REPORT);
    deepStrictEqual(watchdogRules({ watchdog: { heal: 'restart', restartStale: true } }).cluster, [...REPORT, HEAL]);
  });

  const ROLLOUT_CLUSTER = [
    { apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['list'] },
    { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['list'] },
    { apiGroups: ['apps'], resources: ['deployments', 'statefulsets', 'daemonsets'], verbs: ['list', 'get', 'patch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ];
  const ROLLOUT_ROLE = [
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'update'], resourceNames: ['pando-webhook-rollout'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: ['pando-webhook-rollout'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
  ];
  test('rollout (issue 24): off by default; rollout.enabled or watchdog.restartStale of earlier values: its ConfigMap, exact rules, env the webhook parses', () => {
    const off = helmTemplate(base);
    ok(!off.some((o) => o.metadata.name === 'pando-webhook-rollout'), 'nothing of the rollout by default');
    equal(env(off)[ENV.rollout], 'false');
    for (const values of [{ rollout: { enabled: true, maxConcurrent: 8, soakSeconds: 60, canary: 'tier=canary' } }, { watchdog: { restartStale: true } }, { watchdog: { enabled: false, restartStale: true } }]) {
      const objs = helmTemplate({ ...base, ...values });
      deepStrictEqual(find(objs, 'ClusterRole', 'pando-webhook-rollout').rules, ROLLOUT_CLUSTER);
      deepStrictEqual(find(objs, 'Role', 'pando-webhook-rollout').rules, ROLLOUT_ROLE);
      equal(find(objs, 'ClusterRoleBinding', 'pando-webhook-rollout').subjects[0].name, 'pando-webhook');
      equal(find(objs, 'RoleBinding', 'pando-webhook-rollout').roleRef.name, 'pando-webhook-rollout');
      const cm = find(objs, 'ConfigMap', 'pando-webhook-rollout');
      equal(cm.metadata.namespace, NAMESPACE);
      equal(cm.data, undefined, 'no data: helm never resets what the rollout wrote');
      const config = loadConfig({ ...env(objs), PANDO_NAMESPACE: NAMESPACE });
      ok(config.rollout, JSON.stringify(values));
      equal(config.watchdog?.restartStale ?? false, false, 'the watchdog never restarts stale pods beside the rollout');
      if ('rollout' in values) deepStrictEqual([config.rollout.maxConcurrent, config.rollout.soakMs, config.rollout.canarySelector], [8, 60_000, 'tier=canary']);
    }
  });

  test('the watchdog gets the webhook configuration\'s own namespaceSelector and objectSelector (issue 23 item 2)', () => {
    for (const values of [{}, { excludedNamespaces: ['kube-system', 'batch'], webhook: { namespaceSelector: { matchLabels: { tier: 'apps' }, matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] } } }]) {
      const r = watchdogRules(values);
      const hook = find(r.objs, 'MutatingWebhookConfiguration', 'pando-webhook').webhooks[0];
      const rendered = JSON.parse(r.env[ENV.webhookNamespaceSelector]!);
      deepStrictEqual(rendered.matchExpressions, hook.namespaceSelector.matchExpressions);
      deepStrictEqual(rendered.matchLabels, hook.namespaceSelector.matchLabels ?? {});
      deepStrictEqual(JSON.parse(r.env[ENV.webhookObjectSelector]!), hook.objectSelector);
      // And the webhook parses what the chart renders.
      const config = loadConfig({ ...r.env, PANDO_NAMESPACE: NAMESPACE });
      deepStrictEqual(config.watchdog?.namespaceSelector, { matchLabels: rendered.matchLabels, matchExpressions: rendered.matchExpressions });
    }
  });

  test('license copy (protectedNamespaces with license.existingSecret): its own Lease and list/watch of namespaces, nothing without it (issue 23 item 10)', () => {
    const copy = helmTemplate({ license: { existingSecret: { name: 'vault-license', key: 'key' } }, protectedNamespaces: ['a', 'b'] });
    deepStrictEqual(find(copy, 'ClusterRole', 'pando-webhook-license-copy').rules, [{ apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] }]);
    const role = find(copy, 'Role', 'pando-webhook').rules;
    ok(role.some((r: any) => r.resources.includes('leases') && JSON.stringify(r.resourceNames) === '["pando-webhook-license-copy"]'), JSON.stringify(role));
    equal(env(copy)[ENV.licenseCopyNamespaces], 'a,b');
    ok(!helmTemplate(base).some((o) => o.metadata.name === 'pando-webhook-license-copy' && o.kind.startsWith('ClusterRole')), 'no copy, no namespace watch');
  });

  test('the heal RBAC comes with the ValidatingAdmissionPolicy pando-webhook-workloads: only restart annotations, only where the webhook injects (issue 23 item 13)', () => {
    const policyOf = (values: Record<string, unknown>) => {
      const objs = helmTemplate({ ...base, ...values });
      const found = objs.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy') && o.metadata.name === 'pando-webhook-workloads');
      return found.length === 0 ? undefined : { policy: find(found, 'ValidatingAdmissionPolicy').spec, binding: find(found, 'ValidatingAdmissionPolicyBinding').spec };
    };
    equal(policyOf({}), undefined, 'heal off (the default): no workload writes, no policy');
    equal(policyOf({ watchdog: { enabled: false, heal: 'restart' } }), undefined, 'watchdog off');
    equal(policyOf({ watchdog: { heal: 'restart' }, workloadPolicy: { enabled: false } }), undefined, 'workloadPolicy.enabled=false');
    ok(policyOf({ watchdog: { restartStale: true } }), 'restartStale alone turns on the rollout, which grants patch, so it gets the policy');
    ok(policyOf({ rollout: { enabled: true } }), 'the rollout grants patch, so it gets the policy');
    ok(policyOf({ watchdog: { enabled: false }, rollout: { enabled: true } }), 'the rollout without the watchdog still patches');
    equal(policyOf({ rollout: { enabled: true }, workloadPolicy: { enabled: false } }), undefined, 'rollout with workloadPolicy.enabled=false');
    const { policy, binding } = policyOf({ watchdog: { heal: 'restart' } })!;
    deepStrictEqual(binding, { policyName: 'pando-webhook-workloads', validationActions: ['Deny'] });
    equal(policy.failurePolicy, 'Fail');
    deepStrictEqual(policy.matchConstraints.resourceRules, [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments', 'statefulsets', 'daemonsets'] }]);
    equal(policy.matchConditions[0].expression, `request.userInfo.username == 'system:serviceaccount:${NAMESPACE}:pando-webhook'`);
    const L = 'variables.namespaceLabels';
    equal(
      policy.validations[0].expression,
      `!("kubernetes.io/metadata.name" in ${L} && ${L}["kubernetes.io/metadata.name"] in ["kube-system","kube-public","kube-node-lease","${NAMESPACE}"]) && !("pandocore.xyz/injection" in ${L} && ${L}["pandocore.xyz/injection"] in ["disabled"])`,
      'the webhook configuration\'s namespaceSelector, as CEL over the namespace\'s labels',
    );
    match(policy.validations[1].expression, /variables\.newTemplateAnnotations\.all\(k, k in \["kubectl\.kubernetes\.io\/restartedAt","pandocore\.xyz\/rollout-target"\] \|\|/);
    match(policy.validations[2].expression, /k in \["deprecated\.daemonset\.template\.generation"\]/);
    // A user selector of every operator reaches the policy as it reaches the webhook configuration.
    const custom = policyOf({ watchdog: { heal: 'restart' }, webhook: { namespaceSelector: { matchLabels: { tier: 'apps' }, matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }, { key: 'legacy', operator: 'DoesNotExist' }, { key: 'env', operator: 'Exists' }] } } })!;
    ok(
      custom.policy.validations[0].expression.endsWith(`&& ("team" in ${L} && ${L}["team"] in ["a","b"]) && !("legacy" in ${L}) && ("env" in ${L}) && ("tier" in ${L} && ${L}["tier"] in ["apps"])`),
      custom.policy.validations[0].expression,
    );
  });

  test('off: no watchdog RBAC at all, whatever heal says', () => {
    for (const watchdog of [{ enabled: false }, { enabled: false, heal: 'restart' }]) {
      const r = watchdogRules({ watchdog });
      equal(r.cluster, undefined);
      equal(r.lease, undefined);
      ok(!r.objs.some((o) => o.metadata.name === 'pando-webhook-watchdog'));
      equal(r.env[ENV.watchdog], 'false');
      const all = r.objs.filter((o) => (o.kind === 'ClusterRole' || o.kind === 'Role') && o.metadata.name.startsWith('pando-webhook')).flatMap((o) => o.rules as { resources: string[]; verbs: string[]; resourceNames?: string[] }[]);
      ok(!all.some((rule) => rule.resources.includes('pods')), 'the webhook gets no pod access');
      // Only a get of its own Deployment (the owner of the objects it creates, issue 16), never other workloads.
      const workloads = all.filter((rule) => ['deployments', 'statefulsets', 'daemonsets'].some((k) => rule.resources.includes(k)));
      deepStrictEqual(workloads.map((rule) => [rule.resources, rule.verbs, rule.resourceNames]), [[['deployments'], ['get'], ['pando-webhook']]]);
    }
  });
});

describe('chart: helm rejects bad values', () => {
  const rejects = (values: unknown, message: RegExp) => {
    const r = helmTemplateRaw(values);
    ok(r.status !== 0, 'helm accepted the values');
    match(r.stderr, message);
  };
  test('neither licenseKey nor license.existingSecret, naming both', () => rejects({}, /licenseKey or license\.existingSecret\.name is required: helm upgrade --install .* --set licenseKey=.*--set license\.existingSecret\.name=/));
  test('both licenseKey and license.existingSecret', () => rejects({ ...base, license: { existingSecret: { name: 'vault-license' } } }, /set licenseKey or license\.existingSecret\.name, not both/));
  test('bad defaultMode', () => rejects({ ...base, defaultMode: 'foo' }, /defaultMode.*(monitor|enum)/));
  test('replicas 0', () => rejects({ ...base, replicas: 0 }, /replicas.*minimum/));
  test('a misspelt value', () => rejects({ ...base, replica: 3 }, /additional properties|replica/i));
  test('timeoutSeconds above 30', () => rejects({ ...base, timeoutSeconds: 31 }, /timeoutSeconds/));
  test('hpa.maxReplicas below replicas', () => rejects({ ...base, replicas: 7 }, /hpa.maxReplicas must be at least replicas \(5 < 7\)/));
  test('securePort equal to metricsPort (the webhook would exit at start)', () => rejects({ ...base, securePort: 9090 }, /securePort and metricsPort must differ \(both 9090\)/));
  test('securePort outside 1-65535', () => rejects({ ...base, securePort: 70000 }, /securePort/));
  test('hostNetwork not a boolean', () => rejects({ ...base, hostNetwork: 'node' }, /hostNetwork/));
  test('schedulerName not a DNS subdomain', () => rejects({ ...base, schedulerName: 'My Scheduler' }, /schedulerName/));
});

describe('chart: Kubernetes schemas', () => {
  const models: Record<string, string> = {
    'v1/Secret': 'v1/Secret', 'v1/Service': 'v1/Service', 'v1/ServiceAccount': 'v1/ServiceAccount',
    'apps/v1/Deployment': 'apps/v1/Deployment', 'policy/v1/PodDisruptionBudget': 'policy/v1/PodDisruptionBudget',
    'autoscaling/v2/HorizontalPodAutoscaler': 'autoscaling/v2/HorizontalPodAutoscaler',
    'networking.k8s.io/v1/NetworkPolicy': 'networking.k8s.io/v1/NetworkPolicy',
    'rbac.authorization.k8s.io/v1/Role': 'rbac.authorization.k8s.io/v1/Role', 'rbac.authorization.k8s.io/v1/RoleBinding': 'rbac.authorization.k8s.io/v1/RoleBinding',
    'rbac.authorization.k8s.io/v1/ClusterRole': 'rbac.authorization.k8s.io/v1/ClusterRole', 'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'rbac.authorization.k8s.io/v1/ClusterRoleBinding',
    'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': 'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration',
    'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': 'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy',
    'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': 'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding',
  };
  test('every built-in object of every render validates (kubernetes-models)', async () => {
    const renders = [
      helmTemplate(base),
      helmTemplate({ ...base, tls: { certManager: true }, protectedNamespaces: ['a'], webhook: { url: 'https://127.0.0.1:1/mutate' }, networkPolicy: { egress: { enabled: true, apiServerTo: [{ ipBlock: { cidr: '10.0.0.10/32' } }] } }, watchdog: { heal: 'restart' } }),
      helmTemplate({ ...base, hostNetwork: true, securePort: 10260, metricsPort: 10261, schedulerName: 'edge-scheduler' }),
    ];
    let checked = 0;
    for (const object of renders.flat()) {
      if (object.apiVersion.startsWith('cert-manager.io/') || object.apiVersion.startsWith('monitoring.coreos.com/')) continue;
      const path = models[`${object.apiVersion}/${object.kind}`];
      ok(path, `no schema mapped for ${object.apiVersion} ${object.kind}`);
      const mod = (await import(`kubernetes-models/${path}`)) as Record<string, new (o: unknown) => { validate(): void }>;
      new mod[object.kind]!(object).validate();
      checked++;
    }
    ok(checked >= 45, `checked ${checked}`);
  });
});

describe('chart: plain cdk8s synth and helm template agree', () => {
  const valueSets: Record<string, unknown> = {
    defaults: base,
    'cert-manager with extra names': {
      ...base, tls: { certManager: true, extraIpAddresses: ['127.0.0.1'], extraDnsNames: ['webhook.example'] },
      networkPolicy: { ingressFrom: [{ ipBlock: { cidr: '10.0.0.0/24' } }], egress: { enabled: true, apiServerTo: [{ ipBlock: { cidr: '10.0.0.10/32' } }], apiServerPorts: [{ port: 443 }, { port: 16443, protocol: 'TCP' }] } },
    },
    'development url, optional parts flipped, scheduling': {
      ...base, defaultMode: 'debug', replicas: 3, webhook: { url: 'https://127.0.0.1:8443/mutate', caBundle: 'QUJD' }, hpa: { enabled: false }, podDisruptionBudget: { enabled: false },
      networkPolicy: { enabled: false }, serviceMonitor: { enabled: true }, protectedNamespaces: ['a', 'b'], nodeSelector: { disk: 'ssd' },
      tolerations: [{ key: 'k', operator: 'Exists' }], affinity: { podAntiAffinity: null, nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd'] }] } }] } }, priorityClassName: 'high', image: { digest: `sha256:${'a'.repeat(64)}` }, podAnnotations: { team: 'sec' },
      imagePullSecrets: [{ name: 'pull' }], sidecar: { native: false, image: { tag: '2.1.0', registry: 'mirror.example', digest: `sha256:${'d'.repeat(64)}` }, imagePullSecrets: ['a', 'b'], podResources: 'grow' }, namespaceCheck: false, namespaceSetup: { auto: true },
    },
    'conventional values, existing license Secret, webhook tuning, maxUnavailable': {
      license: { existingSecret: { name: 'vault-license', key: 'key' } }, global: { imageRegistry: 'r.example', any: { thing: [1] } },
      commonLabels: { team: 'sec' }, podLabels: { tier: 'admission' }, serviceAccount: { annotations: { 'iam.example/role': 'pando' } },
      extraEnv: [{ name: 'HTTPS_PROXY', value: 'http://127.0.0.1:3128' }], podSecurityContext: { runAsUser: null, fsGroup: 2000 },
      containerSecurityContext: { readOnlyRootFilesystem: false }, topologySpreadConstraints: [{ maxSkew: 2, topologyKey: 'zone', whenUnsatisfiable: 'DoNotSchedule' }],
      resources: { limits: { cpu: 2, memory: '256Mi' } }, protectedNamespaces: ['a'], namespaceSetup: { auto: true },
      webhook: { failurePolicy: 'Fail', namespaceSelector: { matchLabels: { env: 'prod' }, matchExpressions: [{ key: 'tier', operator: 'Exists' }] } },
      podDisruptionBudget: { maxUnavailable: '50%' },
    },
    'one replica without the HPA: no PodDisruptionBudget': { ...base, replicas: 1, hpa: { enabled: false } },
    'on the node network with its own ports and scheduler': { ...base, hostNetwork: true, securePort: 10260, metricsPort: 10261, schedulerName: 'edge-scheduler', replicas: 1, hpa: { enabled: false } },
    'heal with a namespaceSelector of every operator: the workload policy': {
      ...base, watchdog: { heal: 'restart' }, excludedNamespaces: ['kube-system', 'batch'],
      webhook: { namespaceSelector: { matchLabels: { tier: 'apps', env: 'prod' }, matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }, { key: 'legacy', operator: 'NotIn', values: ['v1'] }, { key: 'old', operator: 'DoesNotExist' }, { key: 'zone', operator: 'Exists' }] } },
    },
  };
  for (const [name, values] of Object.entries(valueSets)) {
    test(name, () => {
      const fromHelm = byKey(helmTemplate(values));
      const fromSynth = byKey(plainSynth(values));
      deepStrictEqual([...fromHelm.keys()].sort(), [...fromSynth.keys()].sort());
      for (const [k, object] of fromSynth) deepStrictEqual(fromHelm.get(k), object, k);
    });
  }

  test('`cdk8s synth` (cdk8s.yaml) writes the plain manifests', () => {
    const r = spawnSync(`${ROOT}/node_modules/.bin/cdk8s`, ['synth', '--check-upgrade', 'false', '--output', 'cdk8s.out/test'], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, PANDO_VALUES: `${ROOT}/test/chart/testdata/custom-values.yaml`, PATH: `${ROOT}/node_modules/.bin:${process.env.PATH}` },
    });
    equal(r.status, 0, r.stderr + r.stdout);
    const objects = parseObjects(readFileSync(`${ROOT}/cdk8s.out/test/pando-webhook.k8s.yaml`, 'utf8'));
    equal(find(objects, 'HorizontalPodAutoscaler').spec.minReplicas, 3);
    equal(env(objects)[ENV.sidecarImage], 'registry.example/pandocore/sidecar:1.2.3');
    equal(env(objects)[ENV.defaultMode], 'enforce');
    deepStrictEqual(byKey(objects), byKey(plainSynth(parse(readFileSync(`${ROOT}/test/chart/testdata/custom-values.yaml`, 'utf8')))));
  });
});

describe('chart: dist/ is fresh', () => {
  test('npm run chart:check', () => {
    const r = spawnSync(process.execPath, [`${ROOT}/scripts/chart/build.ts`, '--check'], { encoding: 'utf8' });
    equal(r.status, 0, r.stderr);
  });
});
