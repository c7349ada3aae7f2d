// Installing the product into the e2e cluster: the Helm chart (from the local OCI registry the e2e
// runner publishes it to), the per-namespace setup of the product page, and the
// environment the chart gives the webhook container (which the local webhook process then runs with).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, RbacAuthorizationV1Api, type V1Deployment } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import {
  ENV,
  LICENSE_SECRET_KEY,
  LICENSE_SECRET_NAME,
  SIDECAR_CLUSTER_ROLE,
  SIDECAR_SERVICE_ACCOUNT,
} from '../../app/contract.ts';
import { BIN_DIR, REPO_ROOT, startCluster, type Cluster } from '../cluster/harness.ts';
import { deleteNamespace } from './support.ts';
import { createWebhookTls, freePort, type WebhookProcess, type WebhookTls } from './webhook-process.ts';

export const RELEASE = 'pando-webhook';
export const RELEASE_NAMESPACE = 'pando-system';
export const CHART_DIR = join(REPO_ROOT, 'dist/pando-webhook');
export const HELM = join(BIN_DIR, 'helm');

export interface ChartValues {
  licenseKey: string;
  webhookUrl: string;
  caBundle: string;
  image: { repository: string; tag: string };
  defaultMode?: string;
  excludedNamespaces?: string[];
  /** More chart values, merged at the top level. */
  extra?: Record<string, unknown>;
}

export function helm(cluster: Cluster, args: string[]): string {
  if (!existsSync(HELM)) throw new Error(`${HELM} is missing (built by scripts/tools/helm.sh)`);
  const r = spawnSync(HELM, args, {
    encoding: 'utf8',
    env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath, HELM_CACHE_HOME: join(REPO_ROOT, '.tools/helm/cache'), HELM_CONFIG_HOME: join(REPO_ROOT, '.tools/helm/config'), HELM_DATA_HOME: join(REPO_ROOT, '.tools/helm/data') },
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/**
 * Where the chart comes from: the OCI reference `npm run test:e2e` published to its 127.0.0.1
 * registry (PANDO_E2E_CHART=oci://HOST/charts/pando-webhook:VERSION), as users install it.
 */
export function chartSource(): { ref: string; args: string[]; from: string } {
  const published = process.env.PANDO_E2E_CHART;
  if (!published) throw new Error('PANDO_E2E_CHART is not set: run the e2e tests with npm run test:e2e (it publishes the chart to a local registry)');
  const at = published.lastIndexOf(':');
  const ref = published.slice(0, at);
  const version = published.slice(at + 1);
  return { ref, args: ['--version', version, '--plain-http'], from: published };
}

function valuesYaml(v: ChartValues): string {
  return stringify({
    licenseKey: v.licenseKey,
    webhook: { url: v.webhookUrl, caBundle: v.caBundle },
    sidecar: { image: { repository: v.image.repository, tag: v.image.tag } },
    // The webhook image the scenarios run (published by the e2e runner), pinned by digest.
    ...(process.env.PANDO_E2E_IMAGE ? { image: { repository: process.env.PANDO_E2E_IMAGE.split('@')[0], digest: process.env.PANDO_E2E_IMAGE.split('@')[1] } } : {}),
    ...(v.defaultMode ? { defaultMode: v.defaultMode } : {}),
    ...(v.excludedNamespaces ? { excludedNamespaces: v.excludedNamespaces } : {}),
    ...(v.extra ?? {}),
  });
}

/** The chart from dist/ as a directory (bench/rollout-cluster.ts: no registry needed outside the e2e runner). */
export function localChartSource(): { ref: string; args: string[]; from: string } {
  return { ref: CHART_DIR, args: [], from: CHART_DIR };
}

/** `helm upgrade --install` of the chart (by default the published one); returns the rendered manifest's objects. */
export function helmUpgradeInstall(cluster: Cluster, values: ChartValues, src = chartSource()): { objects: any[]; from: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pando-e2e-values-'));
  try {
    const file = join(dir, 'values.yaml');
    writeFileSync(file, valuesYaml(values), { mode: 0o600 });
    helm(cluster, ['upgrade', '--install', RELEASE, src.ref, ...src.args, '--namespace', RELEASE_NAMESPACE, '--create-namespace', '-f', file, '--timeout', '60s']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const manifest = helm(cluster, ['get', 'manifest', RELEASE, '--namespace', RELEASE_NAMESPACE]);
  const objects = parseAllDocuments(manifest).map((d) => d.toJS()).filter((o) => o && typeof o === 'object');
  return { objects, from: src.from };
}

/** The webhook Deployment of the release. */
export async function webhookDeployment(cluster: Cluster): Promise<V1Deployment> {
  const apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
  const list = await apps.listNamespacedDeployment({ namespace: RELEASE_NAMESPACE });
  const found = list.items.filter((d) => d.spec?.template.spec?.containers.some((c) => c.env?.some((e) => e.name === ENV.sidecarImage)));
  if (found.length !== 1) throw new Error(`expected one Deployment whose container sets ${ENV.sidecarImage} in ${RELEASE_NAMESPACE}, found ${found.length}`);
  return found[0]!;
}

/**
 * The env the chart gives the webhook container, as plain values: what the local process runs with.
 * Listening and TLS settings are the local process's own (127.0.0.1 and the harness's certificate).
 */
export async function webhookEnvFromChart(cluster: Cluster): Promise<Record<string, string>> {
  const deployment = await webhookDeployment(cluster);
  const container = deployment.spec!.template.spec!.containers.find((c) => c.env?.some((e) => e.name === ENV.sidecarImage))!;
  const local = new Set<string>([ENV.host, ENV.port, ENV.metricsPort, ENV.tlsCertFile, ENV.tlsKeyFile, ENV.tlsSelfSigned]);
  const env: Record<string, string> = { KUBECONFIG: cluster.kubeconfigPath };
  for (const e of container.env ?? []) {
    if (e.value !== undefined && !local.has(e.name)) env[e.name] = e.value;
  }
  return env;
}

/** The product page's per-namespace setup: ServiceAccount, RoleBinding to the ClusterRole, license Secret. */
export async function setupProtectedNamespace(cluster: Cluster, namespace: string, licenseKey: string): Promise<void> {
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  const rbac = cluster.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: SIDECAR_SERVICE_ACCOUNT } } });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: SIDECAR_SERVICE_ACCOUNT },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: SIDECAR_CLUSTER_ROLE },
      subjects: [{ kind: 'ServiceAccount', name: SIDECAR_SERVICE_ACCOUNT, namespace }],
    },
  });
  await core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: LICENSE_SECRET_NAME }, type: 'Opaque', stringData: { [LICENSE_SECRET_KEY]: licenseKey } },
  });
}

export interface Deployed {
  /** The chart reference installed (oci://...). */
  from: string;
  /** The objects the chart rendered. */
  objects: any[];
  /** The env the local webhook process runs with. */
  env: Record<string, string>;
}

/** Installs (or upgrades) the product with helm from the published chart. */
export async function deployProduct(cluster: Cluster, values: ChartValues, src = chartSource()): Promise<Deployed> {
  const { objects, from } = helmUpgradeInstall(cluster, values, src);
  return { from, objects, env: await webhookEnvFromChart(cluster) };
}

export async function undeployProduct(cluster: Cluster, deployed: Deployed | undefined): Promise<void> {
  if (!deployed) return;
  try {
    helm(cluster, ['uninstall', RELEASE, '--namespace', RELEASE_NAMESPACE, '--wait', '--timeout', '60s']);
  } catch {
    /* best effort: the cluster is torn down anyway */
  }
}

/**
 * What an e2e file's before() needs first: the cluster, the webhook's TLS pair and port, and chart
 * values whose webhook configuration calls https://127.0.0.1:PORT/mutate with that CA.
 */
export async function prepare(values: Omit<ChartValues, 'webhookUrl' | 'caBundle'>): Promise<{ cluster: Cluster; tls: WebhookTls; port: number; values: ChartValues }> {
  const cluster = await startCluster();
  const tls = await createWebhookTls();
  const port = await freePort();
  return { cluster, tls, port, values: { ...values, webhookUrl: `https://127.0.0.1:${port}/mutate`, caBundle: tls.caBundle } };
}

/** after(): stops the webhook, deletes the test's namespaces, uninstalls, and stops a cluster this run started. */
export async function tearDown(parts: { cluster?: Cluster; tls?: WebhookTls; webhook?: WebhookProcess; deployed?: Deployed; namespaces: string[] }): Promise<void> {
  const t0 = Date.now();
  await parts.webhook?.stop();
  console.log(`# webhook stopped in ${Date.now() - t0} ms`);
  if (parts.cluster) {
    for (const ns of parts.namespaces) await deleteNamespace(parts.cluster, ns);
    await undeployProduct(parts.cluster, parts.deployed);
  }
  parts.tls?.cleanup();
  await parts.cluster?.stop();
}
