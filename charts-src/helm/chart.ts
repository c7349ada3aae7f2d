// Builds the Helm chart from the constructs: the chart in helm mode (tokens and guards), one
// template per object, plus Chart.yaml, values.yaml, values.schema.json, NOTES.txt and README.md.
// Pure: returns the files; scripts/chart/build.ts writes them.
import { ApiObject, App } from 'cdk8s';
import { stringify } from 'yaml';
import { alertRunbooks } from '../prometheus-rule.ts';
import { LABEL_INJECTION, LABEL_PROTECT, LABEL_PROTECT_NAMESPACE, LICENSE_SECRET_NAME } from '../../app/contract.ts';
import { HPA_MAX_BELOW_REPLICAS } from '../autoscaler.ts';
import { PORTS_CLASH } from '../webhook-deployment.ts';
import { EXISTING_LICENSE, LICENSE_BOTH, LICENSE_REQUIRED } from '../license-secret.ts';
import { PandoChart } from '../pando-chart.ts';
import { VALUES, defaultValues, valueRows, valuesSchema } from '../values.ts';
import { emitTemplate } from './emit.ts';
import { kubeScoreReadme } from './kube-score.ts';

export const CHART_NAME = 'pando-webhook';

export interface ChartFile {
  readonly path: string;
  readonly content: string;
}

function templateName(object: Record<string, any>, range: boolean): string {
  const kind = String(object.kind).toLowerCase();
  const name = String(object.metadata?.name ?? '');
  return `templates/${range ? 'protected-namespace-' : ''}${kind}${name && !name.includes('@@') ? `-${name}` : ''}.yaml`;
}

function templates(version: string): ChartFile[] {
  const app = new App();
  const chart = new PandoChart(app, CHART_NAME, { values: defaultValues(), helm: true, appVersion: version, namespace: 'unused' });
  const b = chart.ctx.b;
  const files: ChartFile[] = [];
  for (const object of chart.node.findAll().filter((c): c is ApiObject => c instanceof ApiObject)) {
    const guard = b.guards.get(object);
    const json = object.toJson() as Record<string, any>;
    files.push({ path: templateName(json, guard?.kind === 'range'), content: emitTemplate(json, b, guard) });
  }
  const seen = new Set<string>();
  for (const file of files) {
    if (seen.has(file.path)) throw new Error(`two objects would be written to ${file.path}`);
    seen.add(file.path);
  }
  files.push({
    path: 'templates/validate.yaml',
    content: [
      '{{- /* Checks that span several values (the schema checks each value alone). */}}',
      '{{- if and $.Values.hpa.enabled (lt (int $.Values.hpa.maxReplicas) (int $.Values.replicas)) }}',
      `{{- fail (printf "${HPA_MAX_BELOW_REPLICAS} (%d < %d)" (int $.Values.hpa.maxReplicas) (int $.Values.replicas)) }}`,
      '{{- end }}',
      '{{- if eq (int $.Values.securePort) (int $.Values.metricsPort) }}',
      `{{- fail (printf "${PORTS_CLASH} (both %d)" (int $.Values.securePort)) }}`,
      '{{- end }}',
      `{{- if and (eq $.Values.licenseKey "") (not (${EXISTING_LICENSE})) }}`,
      `{{- fail ${JSON.stringify(LICENSE_REQUIRED)} }}`,
      '{{- end }}',
      `{{- if and (ne $.Values.licenseKey "") (${EXISTING_LICENSE}) }}`,
      `{{- fail ${JSON.stringify(LICENSE_BOTH)} }}`,
      '{{- end }}',
      '',
    ].join('\n'),
  });
  return files.sort((x, y) => (x.path < y.path ? -1 : 1));
}

function valuesYaml(): string {
  const lines: string[] = ['# Values of the PandoCore webhook chart (generated from charts-src/values.ts).', ''];
  const walk = (group: typeof VALUES, indent: number) => {
    const pad = ' '.repeat(indent);
    for (const [key, spec] of Object.entries(group.properties)) {
      const description = 'properties' in spec ? spec.description : spec.description;
      if (description) lines.push(`${pad}# ${description}`);
      if ('properties' in spec) {
        lines.push(`${pad}${key}:`);
        walk(spec, indent + 2);
      } else {
        const text = stringify({ [key]: spec.schema.default }, { lineWidth: 0, flowCollectionPadding: false, version: '1.1' }).trimEnd();
        lines.push(...text.split('\n').map((line) => `${pad}${line}`));
      }
    }
  };
  walk(VALUES, 0);
  return `${lines.join('\n')}\n`;
}

// What this chart version changed, for Artifact Hub (kinds: added, changed, deprecated, removed, fixed, security).
const CHANGES = [
  { kind: 'added', description: 'license.existingSecret: the license key from a Secret you manage; no key in the release' },
  { kind: 'added', description: 'global, commonLabels, podLabels, serviceAccount.annotations, extraEnv, security context and topology spread overrides' },
  { kind: 'added', description: 'webhook.failurePolicy, webhook.namespaceSelector and the namespace opt-out label pandocore.xyz/injection: disabled' },
  { kind: 'changed', description: 'with hpa.enabled the Deployment has no replicas field, so helm upgrade keeps the autoscaler choice' },
  { kind: 'changed', description: 'PodDisruptionBudget takes minAvailable or maxUnavailable and is not rendered for one replica' },
  { kind: 'changed', description: 'kubeVersion >=1.30: the ValidatingAdmissionPolicies are admissionregistration.k8s.io/v1, which Kubernetes 1.29 does not serve' },
  { kind: 'security', description: 'workloadPolicy: with watchdog.heal or restartStale, a ValidatingAdmissionPolicy lets the webhook change only the restart annotations of workloads, where it injects' },
];

const FLOW = { lineWidth: 0 };

function chartYaml(version: string): string {
  const { image, sidecar: { image: sidecar } } = defaultValues();
  return stringify({
    apiVersion: 'v2',
    name: CHART_NAME,
    description: `PandoCore admission webhook: injects the PandoCore sidecar into pods labelled ${LABEL_PROTECT}: "true"`,
    type: 'application',
    version,
    appVersion: version,
    // Native sidecars (restartPolicy Always on an init container) are on by default from 1.29; the
    // ValidatingAdmissionPolicies (secretPolicy, workloadPolicy: admissionregistration.k8s.io/v1)
    // are served from 1.30, and both are on by default.
    kubeVersion: '>=1.30.0-0',
    home: 'https://pandocore.xyz',
    icon: 'https://pandocore.xyz/images/pandocore-icon.svg',
    sources: ['https://github.com/pandocore/pando-webhook'],
    keywords: ['admission-webhook', 'sidecar', 'sidecar-injector', 'security', 'mutating-webhook'],
    maintainers: [{ name: 'PandoCore', email: 'support@pandocore.xyz', url: 'https://pandocore.xyz' }],
    annotations: {
      'pandocore.xyz/generated-from': 'charts-src (cdk8s); do not edit',
      'artifacthub.io/license': 'Apache-2.0',
      'artifacthub.io/images': stringify([
        { name: 'pando-webhook', image: `${image.repository}:${version}` },
        { name: 'pando-sidecar', image: `${sidecar.repository}:${sidecar.tag}` },
      ], FLOW),
      'artifacthub.io/links': stringify([
        { name: 'Documentation', url: 'https://pandocore.xyz/docs' },
        { name: 'Support', url: 'https://pandocore.xyz/support' },
      ], FLOW),
      'artifacthub.io/changes': stringify(CHANGES, FLOW),
    },
  }, FLOW);
}

const NOTES = `PandoCore webhook {{ .Chart.AppVersion }} is installed in {{ .Release.Namespace }}.
{{- if not .Values.tls.certManager }}
TLS: self-signed; the webhook keeps its CA in the Secret pando-webhook-tls and writes caBundle itself.
{{- else }}
TLS: cert-manager issues the Certificate pando-webhook-serving; cainjector fills caBundle.
{{- end }}
{{- if .Values.license.existingSecret.name }}
License: from your Secret {{ .Values.license.existingSecret.name }} (key {{ .Values.license.existingSecret.key }}) in {{ .Release.Namespace }}; the chart holds no key.
{{- else }}
License: in the Secret ${LICENSE_SECRET_NAME} of {{ .Release.Namespace }}.
{{- end }}
{{- if eq .Values.webhook.failurePolicy "Fail" }}
failurePolicy Fail: while no webhook replica answers, labelled pods are refused.
{{- end }}

Next steps
{{- if .Values.protectedNamespaces }}
Set up by the chart: {{ join ", " .Values.protectedNamespaces }}
{{- if .Values.license.existingSecret.name }}
   (ServiceAccount and RoleBinding from the chart; the webhook copies the license from {{ .Values.license.existingSecret.name }} there)
{{- end }}
{{- end }}
{{- if .Values.namespaceSetup.auto }}
1. Label each namespace with protected pods; the webhook sets it up:
     kubectl label namespace NAMESPACE ${LABEL_PROTECT_NAMESPACE}=true
{{- else }}
1. Set up {{ if .Values.protectedNamespaces }}any other{{ else }}each{{ end }} namespace with protected pods{{ if not .Values.protectedNamespaces }} (or list it in protectedNamespaces){{ end }}:
     pando setup-namespace NAMESPACE
{{- if not .Values.license.existingSecret.name }}
   or by hand:
     kubectl create serviceaccount pando-sidecar -n NAMESPACE
     kubectl create rolebinding pando-sidecar --clusterrole=pando-sidecar --serviceaccount=NAMESPACE:pando-sidecar -n NAMESPACE
     kubectl get secret ${LICENSE_SECRET_NAME} -n {{ .Release.Namespace }} -o json | jq 'del(.metadata.namespace,.metadata.resourceVersion,.metadata.uid,.metadata.creationTimestamp,.metadata.labels)' | kubectl apply -n NAMESPACE -f -
{{- end }}
{{- end }}
2. Label pods (or pod templates) with ${LABEL_PROTECT}: "true". A namespace labelled ${LABEL_INJECTION}=disabled is never injected.
3. Check injection:
     kubectl get pod POD -n NAMESPACE -o jsonpath='{.metadata.annotations.pandocore\\.xyz/status}'   # injected
     pando doctor -n NAMESPACE --pod POD
   Skipped pods carry the reason in the admission warning of the client that created them.
4. After an upgrade, running pods keep their sidecar version; restart their workloads:
     kubectl rollout restart deployment/NAME -n NAMESPACE
`;

function readme(version: string): string {
  const rows = valueRows().map((r) => `| \`${r.name}\` | \`${r.default.replaceAll('|', '\\|')}\` | ${r.description} |`);
  return [
    `# pando-webhook ${version}`,
    '',
    `Helm chart of the PandoCore admission webhook. Generated by \`npm run chart\` from the cdk8s constructs in \`charts-src/\`; do not edit.`,
    '',
    '```sh',
    'helm upgrade --install pando-webhook oci://REGISTRY/charts/pando-webhook -n pando-system --create-namespace \\',
    '  --set licenseKey=YOUR_LICENSE_KEY',
    '```',
    '',
    'Needs Kubernetes 1.30 or newer (native sidecars, and admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy). `values.schema.json` is enforced by helm: an unknown value, a bad `defaultMode` or `replicas: 0` is rejected before anything is applied.',
    '',
    '## Values',
    '',
    '| Value | Default | Description |',
    '| --- | --- | --- |',
    ...rows,
    '',
    ...kubeScoreReadme(),
    ...alertRunbooks(),
  ].join('\n');
}

/** Every file of the chart, sorted by path. */
export function chartFiles(version: string): ChartFile[] {
  return [
    { path: 'Chart.yaml', content: chartYaml(version) },
    { path: 'README.md', content: readme(version) },
    { path: 'values.yaml', content: valuesYaml() },
    { path: 'values.schema.json', content: `${JSON.stringify(valuesSchema(), null, 2)}\n` },
    { path: 'templates/NOTES.txt', content: NOTES },
    { path: '.helmignore', content: '*.orig\n*.tmp\n' },
    ...templates(version),
  ].sort((x, y) => (x.path < y.path ? -1 : 1));
}
