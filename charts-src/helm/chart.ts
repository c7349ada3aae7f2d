// Builds the Helm chart from the constructs: the chart in helm mode (tokens and guards), one
// template per object, plus Chart.yaml, values.yaml, values.schema.json, NOTES.txt and README.md.
// Pure: returns the files; scripts/chart/build.ts writes them.
import { ApiObject, App } from 'cdk8s';
import { stringify } from 'yaml';
import { alertRunbooks } from '../prometheus-rule.ts';
import { LABEL_PROTECT } from '../../app/contract.ts';
import { HPA_MAX_BELOW_REPLICAS } from '../autoscaler.ts';
import { PandoChart } from '../pando-chart.ts';
import { VALUES, defaultValues, valueRows, valuesSchema } from '../values.ts';
import { emitTemplate } from './emit.ts';

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

function chartYaml(version: string): string {
  return stringify({
    apiVersion: 'v2',
    name: CHART_NAME,
    description: `PandoCore admission webhook: injects the PandoCore sidecar into pods labelled ${LABEL_PROTECT}: "true"`,
    type: 'application',
    version,
    appVersion: version,
    keywords: ['admission-webhook', 'sidecar', 'security'],
    annotations: { 'pandocore.xyz/generated-from': 'charts-src (cdk8s); do not edit' },
  });
}

const NOTES = `PandoCore webhook {{ .Chart.AppVersion }} is installed in {{ .Release.Namespace }}.
{{- if not .Values.tls.certManager }}
TLS: self-signed; the webhook keeps its CA in the Secret pando-webhook-tls and writes caBundle itself.
{{- else }}
TLS: cert-manager issues the Certificate pando-webhook-serving; cainjector fills caBundle.
{{- end }}

Next steps
1. Set up each namespace with protected pods (or list it in protectedNamespaces):
     kubectl create serviceaccount pando-sidecar -n NAMESPACE
     kubectl create rolebinding pando-sidecar --clusterrole=pando-sidecar --serviceaccount=NAMESPACE:pando-sidecar -n NAMESPACE
     kubectl get secret pando-license -n {{ .Release.Namespace }} -o json | jq 'del(.metadata.namespace,.metadata.resourceVersion,.metadata.uid,.metadata.creationTimestamp,.metadata.labels)' | kubectl apply -n NAMESPACE -f -
   or: pando setup-namespace NAMESPACE
2. Label pods (or pod templates) with ${LABEL_PROTECT}: "true".
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
    'Needs Kubernetes 1.29 or newer (native sidecars). `values.schema.json` is enforced by helm: an unknown value, a bad `defaultMode` or `replicas: 0` is rejected before anything is applied.',
    '',
    '## Values',
    '',
    '| Value | Default | Description |',
    '| --- | --- | --- |',
    ...rows,
    '',
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
