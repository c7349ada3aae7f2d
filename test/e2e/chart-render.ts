// The chart's objects without a Helm release: `helm template` of the chart (the published one when
// the e2e runner set PANDO_E2E_CHART, else dist/pando-webhook), applied with kubectl, and the
// webhook's identity (the chart's ServiceAccount, through a token kubeconfig) for a local process.
// The TLS tests use it to apply only the objects a scenario needs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { ENV } from '../../app/contract.ts';
import { BIN_DIR, type Cluster } from '../cluster/harness.ts';
import { CHART_DIR, chartSource, helm, RELEASE, RELEASE_NAMESPACE } from './product.ts';

export function kubectl(cluster: Cluster, args: string[], input?: string): string {
  const r = spawnSync(join(BIN_DIR, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, ...args], { encoding: 'utf8', input, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** `helm template` of the chart into RELEASE_NAMESPACE with `--set set` (for the e2e's Kubernetes version); the rendered objects. */
export function renderChart(cluster: Cluster, set: string): any[] {
  const src = process.env.PANDO_E2E_CHART ? chartSource() : { ref: CHART_DIR, args: [] };
  const manifest = helm(cluster, ['template', RELEASE, src.ref, ...src.args, '--namespace', RELEASE_NAMESPACE, '--kube-version', '1.37.2', '--set', set]);
  return parseAllDocuments(manifest).map((d) => d.toJS()).filter((o) => o && typeof o === 'object');
}

function asYaml(objects: any[]): string {
  return objects.map((o) => `---\n${stringify(o)}`).join('');
}

/** Server-side apply (the API server validates every object against its schema). */
export function applyObjects(cluster: Cluster, objects: any[]): void {
  kubectl(cluster, ['apply', '--server-side', '--force-conflicts', '--namespace', RELEASE_NAMESPACE, '-f', '-'], asYaml(objects));
}

export function deleteObjects(cluster: Cluster, objects: any[]): void {
  kubectl(cluster, ['delete', '--ignore-not-found', '--wait=false', '--namespace', RELEASE_NAMESPACE, '-f', '-'], asYaml(objects));
}

export const RBAC_KINDS = ['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'];

/** The webhook container's env in the rendered Deployment, plain values only (no fieldRef). */
export function webhookEnvFromObjects(objects: any[]): Record<string, string> {
  const deployment = objects.find((o) => o.kind === 'Deployment' && o.spec.template.spec.containers.some((c: any) => c.env?.some((e: any) => e.name === ENV.sidecarImage)));
  if (!deployment) throw new Error('the chart rendered no webhook Deployment');
  const container = deployment.spec.template.spec.containers.find((c: any) => c.env?.some((e: any) => e.name === ENV.sidecarImage));
  return Object.fromEntries((container.env ?? []).filter((e: any) => e.value !== undefined).map((e: any) => [e.name, String(e.value)]));
}

/** The ServiceAccount the chart gives the webhook Deployment. */
export function webhookServiceAccount(objects: any[]): string {
  const deployment = objects.find((o) => o.kind === 'Deployment');
  const name = deployment?.spec.template.spec.serviceAccountName;
  if (!name) throw new Error('the webhook Deployment names no ServiceAccount');
  return name;
}

/**
 * A kubeconfig that authenticates as the ServiceAccount with a bound token (TokenRequest), as a pod
 * of the Deployment would: the local webhook then has exactly the chart's RBAC. `opts.dir` keeps the
 * file in a folder of the caller's (the demo's state) instead of a temporary one.
 */
export async function serviceAccountKubeconfig(cluster: Cluster, namespace: string, name: string, opts: { dir?: string; expirationSeconds?: number } = {}): Promise<{ path: string; cleanup(): void }> {
  const r = await cluster.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds: opts.expirationSeconds ?? 3600 },
  });
  if (r.status !== 201) throw new Error(`TokenRequest for ${namespace}/${name}: ${r.status} ${JSON.stringify(r.body)}`);
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'pando-e2e-sa-'));
  const path = join(dir, 'kubeconfig');
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'e2e', cluster: { server: cluster.server, 'certificate-authority-data': Buffer.from(cluster.caPem).toString('base64') } }],
    users: [{ name, user: { token: r.body.status.token } }],
    contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: name, namespace } }],
    'current-context': 'e2e',
  };
  writeFileSync(path, stringify(kubeconfig), { mode: 0o600 });
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
