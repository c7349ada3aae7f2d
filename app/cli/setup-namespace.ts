// `pando setup-namespace NAMESPACE...`: the product page's per-namespace setup in one idempotent
// command. Server-side apply (field manager "pando") of ServiceAccount pando-sidecar, RoleBinding
// pando-sidecar to ClusterRole pando-sidecar, and Secret pando-license copied from the release's
// Secret (or the Secret the chart's license.existingSecret names, read from the Deployment's env).
// The license key is read and written, never printed. `--delete` removes the three objects again.

import { CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject, type V1Deployment } from '@kubernetes/client-node';
import { ENV, LICENSE_SECRET_KEY, LICENSE_SECRET_NAME } from '../contract.ts';
import { namespaceSetupObjects, readPullSecrets, type CopiedSecret } from '../setup/namespace-objects.ts';
import { CHART, kubeError, loadKubeConfig, readWebhookDeployment, sidecarPullSecretNames, statusOf } from './cluster.ts';
import { CliError, mark, paint, type Style } from './output.ts';

export const FIELD_MANAGER = 'pando';

export type SetupAction = 'created' | 'updated' | 'unchanged' | 'deleted' | 'absent';

export interface SetupLine {
  namespace: string;
  kind: string;
  name: string;
  action?: SetupAction;
  error?: string;
  fix?: string;
}

export interface SetupOptions {
  releaseNamespace: string;
  dryRun?: boolean;
  context?: string;
}

/** The release's license Secret and key, as the webhook Deployment's env names them (the chart's license.existingSecret); the defaults without one. */
export function licenseSourceOf(deployment: V1Deployment | undefined): { name: string; key: string } {
  const env = deployment?.spec?.template.spec?.containers.flatMap((c) => c.env ?? []) ?? [];
  const value = (name: string) => env.find((e) => e.name === name)?.value;
  return { name: value(ENV.licenseSecretName) ?? LICENSE_SECRET_NAME, key: value(ENV.licenseSecretKey) ?? LICENSE_SECRET_KEY };
}

/** The release's license key, base64 as stored; a missing Secret or key is an error that says how to set it. */
export async function readReleaseLicense(kc: KubeConfig, releaseNamespace: string): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  // Without read access to the Deployment, the chart's default Secret is assumed.
  const source = licenseSourceOf(await readWebhookDeployment(kc, releaseNamespace).catch(() => undefined));
  let data: Record<string, string> | undefined;
  try {
    data = (await core.readNamespacedSecret({ name: source.name, namespace: releaseNamespace })).data;
  } catch (err) {
    if (statusOf(err) === 404) {
      throw new CliError(
        `the release's Secret ${source.name} is missing in namespace ${releaseNamespace}`,
        source.name === LICENSE_SECRET_NAME
          ? `install the chart there with a license: helm upgrade --install ${CHART.release} ${CHART.ref} -n ${releaseNamespace} --set licenseKey=YOUR_LICENSE_KEY (or pass --release-namespace)`
          : `create the Secret ${source.name} with key ${source.key} in ${releaseNamespace} (the chart's license.existingSecret names it)`,
      );
    }
    throw kubeError(err, `reading Secret ${source.name} in ${releaseNamespace}`, kc);
  }
  const value = data?.[source.key];
  if (!value) {
    throw new CliError(
      `Secret ${source.name} in ${releaseNamespace} has no ${source.key}`,
      source.name === LICENSE_SECRET_NAME
        ? `set the chart's licenseKey: helm upgrade ${CHART.release} ${CHART.ref} -n ${releaseNamespace} --reuse-values --set licenseKey=YOUR_LICENSE_KEY`
        : `add the key ${source.key} to the Secret ${source.name}, or set the chart's license.existingSecret.key`,
    );
  }
  return value;
}

async function applyOne(api: KubernetesObjectApi, object: KubernetesObject, dryRun: boolean): Promise<SetupAction> {
  let before: string | undefined;
  try {
    before = (await api.read({ apiVersion: object.apiVersion!, kind: object.kind!, metadata: { name: object.metadata!.name!, namespace: object.metadata!.namespace! } })).metadata?.resourceVersion;
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
  }
  const after = await api.patch(object, undefined, dryRun ? 'All' : undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  if (before === undefined) return 'created';
  return after.metadata?.resourceVersion === before ? 'unchanged' : 'updated';
}

/**
 * The sidecar's pull Secrets (PANDO_SIDECAR_IMAGE_PULL_SECRETS of the release's webhook Deployment),
 * read from the release namespace to be copied like the license.
 */
export async function releasePullSecrets(kc: KubeConfig, releaseNamespace: string): Promise<CopiedSecret[]> {
  const deployment = await readWebhookDeployment(kc, releaseNamespace);
  const names = sidecarPullSecretNames(deployment);
  try {
    return await readPullSecrets(kc, releaseNamespace, names);
  } catch (err) {
    if (statusOf(err) === 404) {
      throw new CliError(
        `a pull Secret of the sidecar (${names.join(', ')}) is missing in namespace ${releaseNamespace}`,
        `create it there (kubectl create secret docker-registry NAME -n ${releaseNamespace} ...), or change the chart's sidecar.imagePullSecrets`,
      );
    }
    throw kubeError(err, `reading the sidecar's pull Secrets in ${releaseNamespace}`, kc);
  }
}

export async function setupNamespace(kc: KubeConfig, namespace: string, licenseKeyBase64: string, options: SetupOptions, pullSecrets: readonly CopiedSecret[] = []): Promise<SetupLine[]> {
  const lines: SetupLine[] = [];
  const core = kc.makeApiClient(CoreV1Api);
  const objects = namespaceSetupObjects(namespace, licenseKeyBase64, pullSecrets);
  const failAll = (error: string, fix: string) => objects.map((o) => ({ namespace, kind: o.kind!, name: o.metadata!.name!, error, fix }));
  if (namespace === options.releaseNamespace) {
    return failAll(`${namespace} is the webhook's own namespace, never injected`, 'set up the namespaces of your workloads instead');
  }
  try {
    await core.readNamespace({ name: namespace });
  } catch (err) {
    if (statusOf(err) === 404) return failAll(`namespace ${namespace} does not exist`, `kubectl create namespace ${namespace}, then run this again`);
    const e = kubeError(err, `reading namespace ${namespace}`, kc);
    return failAll(e.message, e.hint ?? '');
  }
  const api = KubernetesObjectApi.makeApiClient(kc);
  for (const object of objects) {
    const line: SetupLine = { namespace, kind: object.kind!, name: object.metadata!.name! };
    try {
      line.action = await applyOne(api, object, options.dryRun ?? false);
    } catch (err) {
      const e = kubeError(err, `applying ${object.kind} ${object.metadata!.name} in ${namespace}`, kc);
      line.error = e.message;
      line.fix = e.hint;
    }
    lines.push(line);
  }
  return lines;
}

/** `--delete`: removes the three objects of a namespace's setup; an object already gone is `absent`. */
export async function deleteNamespaceSetup(kc: KubeConfig, namespace: string, options: SetupOptions): Promise<SetupLine[]> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const lines: SetupLine[] = [];
  for (const object of namespaceSetupObjects(namespace, '')) {
    const line: SetupLine = { namespace, kind: object.kind!, name: object.metadata!.name! };
    const ref = { apiVersion: object.apiVersion!, kind: object.kind!, metadata: { name: object.metadata!.name!, namespace } };
    try {
      await api.delete(ref, undefined, options.dryRun ? 'All' : undefined);
      line.action = 'deleted';
    } catch (err) {
      if (statusOf(err) === 404) line.action = 'absent';
      else {
        const e = kubeError(err, `deleting ${object.kind} ${object.metadata!.name} in ${namespace}`, kc);
        line.error = e.message;
        line.fix = e.hint;
      }
    }
    lines.push(line);
  }
  return lines;
}

export function formatSetupLine(style: Style, line: SetupLine, dryRun: boolean): string {
  const what = `${paint(style, 'bold', line.namespace)}: ${line.kind} ${line.name}`;
  if (line.error) return `${mark(style, 'fail')} ${what}: ${line.error}\n    ${paint(style, 'yellow', 'fix:')} ${line.fix ?? ''}\n`;
  return `${mark(style, line.action === 'unchanged' || line.action === 'absent' ? 'info' : 'ok')} ${what} ${line.action}${dryRun ? ' (dry run)' : ''}\n`;
}

export interface SetupIo {
  stdout: (text: string) => void;
  style: Style;
}

export async function runSetupNamespace(namespaces: string[], options: SetupOptions & { output: 'text' | 'json'; delete?: boolean }, io: SetupIo): Promise<number> {
  const kc = loadKubeConfig(options.context);
  const license = options.delete ? '' : await readReleaseLicense(kc, options.releaseNamespace);
  const pullSecrets = options.delete ? [] : await releasePullSecrets(kc, options.releaseNamespace);
  const all: SetupLine[] = [];
  for (const ns of [...new Set(namespaces)]) {
    const lines = options.delete ? await deleteNamespaceSetup(kc, ns, options) : await setupNamespace(kc, ns, license, options, pullSecrets);
    all.push(...lines);
    if (options.output === 'text') for (const line of lines) io.stdout(formatSetupLine(io.style, line, options.dryRun ?? false));
  }
  if (options.output === 'json') io.stdout(`${JSON.stringify({ dryRun: options.dryRun ?? false, results: all }, null, 2)}\n`);
  return all.some((l) => l.error) ? 2 : 0;
}
