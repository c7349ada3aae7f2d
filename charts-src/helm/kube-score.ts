// kube-score (github.com/zegl/kube-score, a linter nobody here wrote) on the chart: the renders CI
// scores and the findings we accept, each with its reason. `npm run lint:chart`
// (scripts/chart/kube-score.ts) fails on a WARNING or CRITICAL that is not listed here, and on a
// listed one that no longer occurs, so this list stays true; the chart README shows it.

export interface KubeScoreRender {
  readonly name: string;
  /** What the render is, for the README and the summary line. */
  readonly description: string;
  readonly values: Record<string, unknown>;
}

const DIGEST = (c: string) => `sha256:${c.repeat(64)}`;

export const KUBE_SCORE_RENDERS: readonly KubeScoreRender[] = [
  { name: 'default', description: 'the default values (with a license key)', values: { licenseKey: 'kube-score' } },
  {
    name: 'production',
    description:
      'cert-manager TLS, both images by digest, networkPolicy.ingressFrom and the egress policy with the API server and DNS named, watchdog.heal=restart, ServiceMonitor and PrometheusRule',
    values: {
      licenseKey: 'kube-score',
      image: { digest: DIGEST('a') },
      sidecar: { image: { digest: DIGEST('b') } },
      tls: { certManager: true },
      networkPolicy: {
        ingressFrom: [{ ipBlock: { cidr: '10.0.0.0/24' } }],
        egress: {
          enabled: true,
          apiServerTo: [{ ipBlock: { cidr: '10.0.0.0/24' } }],
          dnsTo: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
        },
      },
      watchdog: { heal: 'restart' },
      serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
      prometheusRule: { enabled: true, labels: { release: 'prometheus' } },
    },
  },
];

export interface AcceptedFinding {
  /** kube-score's check id (`kube-score list` names them). */
  readonly check: string;
  /** Kind/name of the object it is reported on. */
  readonly object: string;
  /** The renders it is accepted in; it must occur in each of them. */
  readonly renders: readonly string[];
  readonly why: string;
}

export const ACCEPTED_FINDINGS: readonly AcceptedFinding[] = [
  {
    check: 'container-image-pull-policy',
    object: 'Deployment/pando-webhook',
    renders: ['default', 'production'],
    why:
      'imagePullPolicy is IfNotPresent, not Always (CRITICAL). The image is pinned: by `image.digest` in production, so IfNotPresent can run nothing but the bytes named, and by default by the tag of the chart\'s own release. The webhook answers the admission of every labelled pod in the cluster: with IfNotPresent a replica rescheduled during a registry outage starts from the node\'s cache instead of waiting in ImagePullBackOff. kube-score\'s other reason (Always re-checks `imagePullSecrets`, so a pod without the Secret cannot use an image another pod pulled onto the node) is about tenants sharing private images, not about our own image in our own namespace. `image.pullPolicy: Always` is there for a platform that requires it.',
  },
  {
    check: 'pod-networkpolicy',
    object: 'Deployment/pando-webhook',
    renders: ['default'],
    why:
      'No egress NetworkPolicy by default (WARNING): `networkPolicy.egress.enabled` is false. The webhook\'s one peer is the API server, which is outside the pod network on most clusters and listens on a port that differs by distribution (443 managed, 6443 kubeadm, k3s and OpenShift, 8443 minikube, 16443 MicroK8s): no default can name it without the risk of cutting a webhook off from it (no TLS Secret, no namespace lookups, no watchdog) where the network plugin enforces policies. Turn it on after checking `networkPolicy.egress.apiServerPorts` (and, to close port 443 to the internet too, `apiServerTo`) against `kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes`; the production render does, and kube-score finds nothing there.',
  },
];

/** The chart README's kube-score section. */
export function kubeScoreReadme(): string[] {
  return [
    '## kube-score',
    '',
    'CI runs [kube-score](https://github.com/zegl/kube-score) v1.20.0 (`npm run lint:chart`) on two renders of this chart and fails on any WARNING or CRITICAL not listed below, and on a listed one that no longer occurs:',
    '',
    ...KUBE_SCORE_RENDERS.map((r) => `- **${r.name}**: ${r.description}.`),
    '',
    'Fixed after its first run (issue 23): the webhook container has an `ephemeral-storage` request and limit (`resources`), the pods a preferred podAntiAffinity on the node (`affinity`), and an egress NetworkPolicy is available (`networkPolicy.egress`). What it still reports, and why that is right for this webhook:',
    '',
    '| check | object | renders | why |',
    '| --- | --- | --- | --- |',
    ...ACCEPTED_FINDINGS.map((f) => `| \`${f.check}\` | ${f.object} | ${f.renders.join(', ')} | ${f.why.replaceAll('|', '\\|')} |`),
    '',
  ];
}
