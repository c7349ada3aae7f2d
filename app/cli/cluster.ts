// The command line's view of a live cluster: the current kubeconfig context, the chart's fixed names,
// and API errors turned into sentences that say what to do.

import { AppsV1Api, KubeConfig, type V1Container, type V1Deployment } from '@kubernetes/client-node';
import { ENV } from '../contract.ts';
import { CliError } from './output.ts';
import { pickInjectionEnv, type InjectionEnv } from './settings.ts';
import { statusOf } from '../kube/errors.ts';

export { statusOf };

/** What the chart names; doctor and setup-namespace look for exactly these. */
export const CHART = Object.freeze({
  releaseNamespace: 'pando-system',
  deployment: 'pando-webhook',
  service: 'pando-webhook',
  webhookConfiguration: 'pando-webhook',
  webhookName: 'inject.pandocore.xyz',
  tlsSecret: 'pando-webhook-tls',
  /** The release name the install instructions use; doctor reads the live one from Helm's annotation. */
  release: 'pando-webhook',
  /** Where users get the chart, as the chart's own messages spell it. */
  ref: 'oci://REGISTRY/charts/pando-webhook',
});

/** Helm's annotation on every object of a release. */
export const HELM_RELEASE_ANNOTATION = 'meta.helm.sh/release-name';

export function loadKubeConfig(context?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (err) {
    throw new CliError(`cannot load a kubeconfig: ${(err as Error).message}`, 'set KUBECONFIG or run kubectl config use-context');
  }
  if (context) {
    if (!kc.getContexts().some((c) => c.name === context)) {
      throw new CliError(`no context ${context} in the kubeconfig`, 'list them with kubectl config get-contexts');
    }
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster()) {
    throw new CliError('the kubeconfig has no current cluster', 'set KUBECONFIG or run kubectl config use-context NAME');
  }
  return kc;
}


function causeOf(err: unknown): string {
  let e = err as { cause?: unknown; code?: unknown; message?: string } | undefined;
  for (let i = 0; i < 5 && e; i++) {
    if (typeof e.code === 'string') return e.code;
    e = e.cause as typeof e;
  }
  return (err as Error)?.message ?? String(err);
}

/** Any failure of an API call as a CliError naming what was being done and what to do about it. */
export function kubeError(err: unknown, doing: string, kc?: KubeConfig): CliError {
  if (err instanceof CliError) return err;
  const status = statusOf(err);
  const server = kc?.getCurrentCluster()?.server ?? 'the API server';
  if (status === 401) return new CliError(`${doing}: unauthorized (401)`, 'your credentials were refused: log in again or check the kubeconfig user');
  if (status === 403) {
    const body = (err as { body?: unknown }).body;
    const text = typeof body === 'string' ? body : JSON.stringify(body ?? '');
    const message = /"message":"([^"]+)"/.exec(text)?.[1] ?? 'forbidden';
    return new CliError(`${doing}: ${message}`, 'ask for the permission, or run as a user who has it (kubectl auth can-i ...)');
  }
  if (status !== undefined) return new CliError(`${doing}: HTTP ${status}`, 'see kubectl get --raw /readyz and the API server logs');
  return new CliError(`${doing}: cannot reach ${server} (${causeOf(err)})`, 'check that the cluster runs and KUBECONFIG points at it (kubectl cluster-info)');
}

/** The webhook container of the release's Deployment: the one that sets the sidecar image. */
export function webhookContainer(deployment: V1Deployment): V1Container | undefined {
  const containers = deployment.spec?.template.spec?.containers ?? [];
  return containers.find((c) => c.env?.some((e) => e.name === ENV.sidecarImage)) ?? containers[0];
}

/** The injection variables of the webhook Deployment, as its container will read them. */
export function deploymentInjectionEnv(deployment: V1Deployment): InjectionEnv {
  const values: Record<string, string> = {};
  for (const e of webhookContainer(deployment)?.env ?? []) {
    if (e.value !== undefined) values[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace' && deployment.metadata?.namespace) {
      values[e.name] = deployment.metadata.namespace;
    }
  }
  return pickInjectionEnv(values);
}

/** The sidecar's image pull Secret names the webhook Deployment's env gives (sidecar.imagePullSecrets). */
export function sidecarPullSecretNames(deployment: V1Deployment | null | undefined): string[] {
  const value = deployment ? deploymentInjectionEnv(deployment)[ENV.sidecarPullSecrets] : undefined;
  return (value ?? '').split(',').map((n) => n.trim()).filter(Boolean);
}

export async function readWebhookDeployment(kc: KubeConfig, namespace: string): Promise<V1Deployment | undefined> {
  try {
    return await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: CHART.deployment, namespace });
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw kubeError(err, `reading Deployment ${CHART.deployment} in ${namespace}`, kc);
  }
}
