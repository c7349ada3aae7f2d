// Rendering the chart both ways for the chart tests: `helm template` of dist/pando-webhook (helm
// built by scripts/tools/helm.sh) and the plain cdk8s synth of charts-src with the same values.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { App } from 'cdk8s';
import { parseAllDocuments, stringify } from 'yaml';
import { resolveValues } from '../../charts-src/load-values.ts';
import { packageVersion } from '../../charts-src/main.ts';
import { PandoChart } from '../../charts-src/pando-chart.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const CHART_DIR = join(ROOT, 'dist/pando-webhook');
export const HELM = join(ROOT, '.tools/bin/helm');
export const NAMESPACE = 'pando-system';
/** The e2e's Kubernetes version, explicit so a render never depends on the version helm assumes without a cluster. */
export const KUBE_VERSION = '1.37.2';

export type K8sObject = Record<string, any> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } & Record<string, any> };

let helmReady = false;
export function ensureHelm(): void {
  if (helmReady) return;
  const r = spawnSync('bash', [join(ROOT, 'scripts/tools/helm.sh')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('scripts/tools/helm.sh failed');
  helmReady = true;
}

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function helm(args: string[]): HelmResult {
  ensureHelm();
  const home = join(ROOT, '.tools/helm');
  const r = spawnSync(HELM, args, {
    encoding: 'utf8',
    env: { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') },
    timeout: 120_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `helm template` with the values given as a values file; returns the result (not throwing). */
export function helmTemplateRaw(values: unknown, chart = CHART_DIR, extra: string[] = []): HelmResult {
  const dir = mkdtempSync(join(tmpdir(), 'pando-chart-test-'));
  try {
    const file = join(dir, 'values.yaml');
    writeFileSync(file, stringify(values));
    return helm(['template', 'pando-webhook', chart, '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION, '-f', file, ...extra]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function parseObjects(yaml: string): K8sObject[] {
  return parseAllDocuments(yaml)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

export function helmTemplate(values: unknown, chart = CHART_DIR, extra: string[] = []): K8sObject[] {
  const r = helmTemplateRaw(values, chart, extra);
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseObjects(r.stdout);
}

/** The plain cdk8s synth of charts-src with the same values. */
export function plainSynth(values: unknown): K8sObject[] {
  const app = new App();
  const chart = new PandoChart(app, 'pando-webhook', { values: resolveValues(values), namespace: NAMESPACE, appVersion: packageVersion() });
  return chart.toJson() as K8sObject[];
}

export const key = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

export function byKey(objects: K8sObject[]): Map<string, K8sObject> {
  const map = new Map<string, K8sObject>();
  for (const o of objects) {
    if (map.has(key(o))) throw new Error(`duplicate object ${key(o)}`);
    map.set(key(o), o);
  }
  return map;
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}
