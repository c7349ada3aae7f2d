// `pando inject -f FILE|-`: manifests in, the same manifests with the sidecar injected out, by the
// webhook's own core (app/inject). YAML documents or JSON in; YAML (default) or JSON out.

import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';
import { kubeReadinessFetcher } from '../kube/namespaces.ts';
import type { NamespaceReadiness } from '../inject/decide.ts';
import { planInjection } from '../inject/sidecar.ts';
import { CHART, deploymentInjectionEnv, kubeError, loadKubeConfig, readWebhookDeployment } from './cluster.ts';
import { injectAll, namespacesOf, type ObjectResult } from './manifests.ts';
import { CliError, mark, paint, type Style } from './output.ts';
import { flagsEnv, pickInjectionEnv, readConfigFile, resolveSettings, type InjectFlags, type InjectionEnv, type ResolvedSettings } from './settings.ts';

export interface InjectCommandOptions extends InjectFlags {
  filename: string;
  output: 'yaml' | 'json';
  namespace?: string;
  config?: string;
  fromCluster?: boolean;
  checkNamespace?: boolean;
  context?: string;
  quiet?: boolean;
}

export interface InjectIo {
  stdin: () => Promise<string>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  errStyle: Style;
}

/** Multi-document YAML (or JSON) into plain objects; empty documents are dropped. */
export function parseManifests(text: string, source: string): unknown[] {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const objects: unknown[] = [];
  list.forEach((doc, i) => {
    const error = doc.errors[0];
    if (error) {
      const where = error.linePos?.[0] ? ` line ${error.linePos[0].line}` : '';
      throw new CliError(`${source}: document ${i + 1}${where} is not valid YAML: ${error.message.split('\n')[0]}`, 'fix the manifest (kubectl apply --dry-run=client -f FILE shows the same)');
    }
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value !== null && value !== undefined) objects.push(value);
  });
  return objects;
}

export function formatManifests(objects: readonly unknown[]): string {
  return objects
    .filter((o) => o !== null && o !== undefined)
    .map((o) => stringify(o, { lineWidth: 0 }))
    .join('---\n');
}

async function readInput(filename: string, io: InjectIo): Promise<string> {
  if (filename === '-') return io.stdin();
  try {
    return readFileSync(filename, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${filename}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'give a manifest file, or - to read standard input');
  }
}

export async function settingsFor(options: InjectCommandOptions, env: InjectIo['env']): Promise<ResolvedSettings> {
  const layers: Array<[string, InjectionEnv]> = [['environment', pickInjectionEnv(env)]];
  if (options.config) layers.push([`--config ${options.config}`, readConfigFile(options.config)]);
  if (options.fromCluster) {
    const kc = loadKubeConfig(options.context);
    const ns = options.releaseNamespace ?? CHART.releaseNamespace;
    const deployment = await readWebhookDeployment(kc, ns);
    if (!deployment) {
      throw new CliError(`--from-cluster: no Deployment ${CHART.deployment} in namespace ${ns}`, 'install the chart, or pass --release-namespace where it is installed');
    }
    layers.push([`cluster deployment/${CHART.deployment} -n ${ns}`, deploymentInjectionEnv(deployment)]);
  }
  layers.push(['flags', flagsEnv(options)]);
  return resolveSettings(layers);
}

async function readiness(options: InjectCommandOptions, namespaces: string[], pullSecrets: readonly string[]): Promise<Map<string, NamespaceReadiness> | undefined> {
  if (!options.checkNamespace) return undefined;
  const kc = loadKubeConfig(options.context);
  const fetch = kubeReadinessFetcher(kc, pullSecrets);
  const known = new Map<string, NamespaceReadiness>();
  for (const ns of namespaces) {
    try {
      known.set(ns, await fetch(ns));
    } catch (err) {
      throw kubeError(err, `checking namespace ${ns} (--check-namespace)`, kc);
    }
  }
  return known;
}

export function configSummary(settings: ResolvedSettings) {
  const { config } = settings;
  const plan = planInjection(config);
  return {
    sources: settings.sources,
    env: settings.env,
    sidecarImage: config.sidecar.image,
    version: plan.version,
    configHash: plan.configHash,
    native: config.sidecar.native,
    defaultMode: config.defaultMode,
    releaseNamespace: config.namespace,
    excludedNamespaces: config.excludedNamespaces,
  };
}

/** Skips a labelled pod's owner should act on (the pod runs unprotected). */
const WARN_REASONS = new Set(['namespace-not-ready', 'namespace-check-failed', 'pod-resources-too-small', 'unsupported-os', 'limit-range']);

function describe(style: Style, r: ObjectResult): string {
  const status = r.reason === 'injected' || r.reason === 'reinjected' ? 'ok' : r.reason === 'already-injected' ? 'ok' : r.reason.startsWith('error') || WARN_REASONS.has(r.reason) ? 'warn' : 'info';
  const what = `${r.kind}${r.name ? ` ${r.namespace ? `${r.namespace}/` : ''}${r.name}` : ''}`;
  const lines = [`${mark(style, status)} ${paint(style, 'bold', what)}: ${r.reason}: ${r.message}`];
  for (const w of r.warnings) lines.push(`    ${paint(style, 'yellow', w)}`);
  return lines.join('\n');
}

export async function runInject(options: InjectCommandOptions, io: InjectIo): Promise<number> {
  const settings = await settingsFor(options, io.env);
  const text = await readInput(options.filename, io);
  const source = options.filename === '-' ? 'standard input' : options.filename;
  const objects = parseManifests(text, source);
  if (objects.length === 0) throw new CliError(`${source} holds no manifest`, 'give YAML or JSON with at least one object');
  const defaultNamespace = options.namespace ?? 'default';
  const plan = planInjection(settings.config);
  const known = await readiness(options, namespacesOf(objects, defaultNamespace), settings.config.sidecar.imagePullSecrets);
  const done = injectAll(objects, { plan, defaultNamespace, readiness: known });
  if (options.output === 'json') {
    io.stdout(`${JSON.stringify({ config: configSummary(settings), namespaceChecked: Boolean(known), results: done.results, objects: done.objects }, null, 2)}\n`);
  } else {
    io.stdout(formatManifests(done.objects));
    if (!options.quiet) for (const r of done.results) io.stderr(`${describe(io.errStyle, r)}\n`);
  }
  return 0;
}
