// (AdmissionRequest, InjectionPlan) -> Decision. Pure: no I/O, no clock, no logger.

import type { AdmissionRequest, Container, Pod } from '../admission/types.ts';
import {
  ANNOTATION_CONFIG_HASH,
  ANNOTATION_MODE,
  ANNOTATION_STATUS,
  ANNOTATION_VERSION,
  LABEL_PROTECT,
  MODES,
  LICENSE_SECRET_NAME,
  SIDECAR_ENV_MODE,
  SIDECAR_NAME,
  SIDECAR_SERVICE_ACCOUNT,
  STATUS_INJECTED,
  type Mode,
} from '../contract.ts';
import { parseQuantity } from './quantity.ts';
import { quote, warning, type Reason } from './reasons.ts';
import type { InjectionPlan } from './sidecar.ts';

/** What the namespace provides; undefined fields (or no value at all) mean unknown. */
export interface NamespaceReadiness {
  serviceAccount: boolean;
  licenseSecret: boolean;
}

export interface ReviewContext {
  namespace?: NamespaceReadiness;
}

export type Decision =
  | { action: 'skip'; reason: Reason; message: string; warnings: string[] }
  | { action: 'inject'; reason: 'injected' | 'reinjected'; message: string; warnings: string[]; pod: Pod; mode: Mode };

function skip(reason: Reason, message: string, warnings: string[] = []): Decision {
  return { action: 'skip', reason, message, warnings };
}

function isPodRequest(request: AdmissionRequest): boolean {
  const { kind, resource, subResource } = request;
  const isPodKind = kind?.group === '' && kind.version === 'v1' && kind.kind === 'Pod';
  const isPodsResource = resource === undefined || (resource.group === '' && resource.resource === 'pods');
  return isPodKind && isPodsResource && !subResource;
}

function isPod(object: unknown): object is Pod {
  if (typeof object !== 'object' || object === null || Array.isArray(object)) return false;
  const { spec, metadata } = object as Record<string, unknown>;
  if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))) {
    return false;
  }
  if (typeof spec !== 'object' || spec === null) return false;
  const { containers, initContainers } = spec as Record<string, unknown>;
  return Array.isArray(containers) && (initContainers === undefined || Array.isArray(initContainers));
}

/** Every container named pando-sidecar, in containers and initContainers. */
export function findSidecars(pod: Pod): Container[] {
  const all = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  return all.filter((c) => c?.name === SIDECAR_NAME);
}

function modeOf(pod: Pod, plan: InjectionPlan, warnings: string[]): Mode {
  const requested = pod.metadata?.annotations?.[ANNOTATION_MODE];
  if (requested === undefined) return plan.defaultMode;
  if ((MODES as readonly string[]).includes(requested)) return requested as Mode;
  warnings.push(
    warning(`${ANNOTATION_MODE} ${quote(requested, 24)} is not monitor, enforce or debug; using ${plan.defaultMode}`),
  );
  return plan.defaultMode;
}

function isCurrent(pod: Pod, sidecars: Container[], plan: InjectionPlan, mode: Mode): boolean {
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[ANNOTATION_VERSION] !== plan.version) return false;
  if (annotations[ANNOTATION_CONFIG_HASH] !== plan.configHash) return false;
  if (sidecars.length !== 1) return false;
  const modeEnv = sidecars[0]?.env?.find((e) => e.name === SIDECAR_ENV_MODE);
  return modeEnv?.value === mode;
}

function usesDefaultAccount(pod: Pod): boolean {
  const account = pod.spec.serviceAccountName || pod.spec.serviceAccount || 'default';
  return account === 'default';
}

/** What the namespace lacks for this pod, as words for a warning; empty when nothing (or unknown). */
function missingSetup(pod: Pod, readiness: NamespaceReadiness | undefined): string[] {
  if (!readiness) return [];
  const missing: string[] = [];
  // A pod that names its own account never gets ours, so only the Secret matters for it.
  if (!readiness.serviceAccount && usesDefaultAccount(pod)) missing.push(`ServiceAccount ${SIDECAR_SERVICE_ACCOUNT}`);
  if (!readiness.licenseSecret) missing.push(`Secret ${LICENSE_SECRET_NAME}`);
  return missing;
}

/**
 * With pod-level resources, the API server requires the containers' requests to add up to no more
 * than the pod's, and each container limit to stay within the pod's. Returns what would break.
 */
function podResourcesProblem(pod: Pod, plan: InjectionPlan): string | undefined {
  const podResources = pod.spec.resources as { requests?: Record<string, unknown>; limits?: Record<string, unknown> } | undefined;
  if (!podResources || typeof podResources !== 'object') return undefined;
  const containers = [...pod.spec.containers, ...(pod.spec.initContainers ?? []).filter((c) => c.restartPolicy === 'Always')]
    .filter((c) => c.name !== SIDECAR_NAME);
  for (const resource of ['cpu', 'memory'] as const) {
    const podLimit = parseQuantity(podResources.limits?.[resource]);
    if (!Number.isNaN(podLimit) && parseQuantity(plan.resources.limits[resource]) > podLimit) {
      return `the sidecar's ${resource} limit ${plan.resources.limits[resource]} exceeds the pod's ${String(podResources.limits?.[resource])}`;
    }
    const podRequest = parseQuantity(podResources.requests?.[resource]);
    if (Number.isNaN(podRequest)) continue;
    const requested = containers.reduce((sum, c) => {
      const value = parseQuantity((c.resources as { requests?: Record<string, unknown> } | undefined)?.requests?.[resource]);
      return sum + (Number.isNaN(value) ? 0 : value);
    }, parseQuantity(plan.resources.requests[resource]));
    if (requested > podRequest) {
      return `containers would request more ${resource} than the pod's ${String(podResources.requests?.[resource])}`;
    }
  }
  return undefined;
}

/** Skips that keep a pod valid: injecting would make its creation fail or its sidecar never start. */
function notInjectable(pod: Pod, namespace: string, plan: InjectionPlan, context: ReviewContext): Decision | undefined {
  const missing = missingSetup(pod, context.namespace);
  if (missing.length > 0) {
    const sentence = `namespace ${namespace} lacks ${missing.join(' and ')}`;
    const fix = `fix: pando setup-namespace ${namespace}`;
    // Three short warnings rather than one long one: kubectl shows 120 characters, and with a long
    // namespace name one sentence would lose what is missing or the fix.
    return skip('namespace-not-ready', `${sentence}; ${fix} (or list it in the chart's protectedNamespaces)`, [
      warning(`sidecar not injected: namespace ${namespace} is not set up`),
      warning(`missing ${missing.join(' and ')} (or list the namespace in protectedNamespaces)`),
      warning(fix),
    ]);
  }
  const problem = podResourcesProblem(pod, plan);
  if (problem) return skip('pod-resources-too-small', problem, [warning(`sidecar not injected: ${problem}`)]);
  return undefined;
}

export function decide(request: AdmissionRequest, plan: InjectionPlan, context: ReviewContext = {}): Decision {
  if (!isPodRequest(request)) {
    const kind = request.kind?.kind ?? 'unknown kind';
    return skip('not-a-pod', `${kind}${request.subResource ? `/${request.subResource}` : ''} is not a pod`);
  }
  if (request.operation !== 'CREATE') {
    return skip('operation-not-create', `${String(request.operation)} is not CREATE; a pod spec is only changed at creation`);
  }
  const object = request.object;
  if (!isPod(object)) {
    return skip('error-invalid-object', 'the request object is not a pod with spec.containers', [
      warning('sidecar not injected: the request object is not a pod with spec.containers'),
    ]);
  }
  const namespace = request.namespace ?? object.metadata?.namespace ?? '';
  const label = object.metadata?.labels?.[LABEL_PROTECT];
  if (label !== 'true') {
    if (label === undefined || label === 'false') {
      return skip('not-labelled', `pod is not labelled ${LABEL_PROTECT}="true"`);
    }
    const sentence = `label ${LABEL_PROTECT} is ${quote(label, 20)}; only "true" enables injection`;
    return skip('not-labelled', sentence, [warning(`sidecar not injected: ${sentence}`)]);
  }
  if (namespace === plan.ownNamespace) {
    const sentence = `namespace ${namespace} is the webhook's own namespace`;
    return skip('own-namespace', sentence, [warning(`sidecar not injected: ${sentence}`)]);
  }
  if (plan.excludedNamespaces.has(namespace)) {
    const sentence = `namespace ${namespace} is excluded from injection`;
    return skip('namespace-excluded', sentence, [warning(`sidecar not injected: ${sentence}`)]);
  }

  const warnings: string[] = [];
  const mode = modeOf(object, plan, warnings);
  const sidecars = findSidecars(object);
  const status = object.metadata?.annotations?.[ANNOTATION_STATUS];
  if (status !== STATUS_INJECTED) {
    if (sidecars.length > 0) {
      const sentence = `pod already has a container named ${SIDECAR_NAME} that PandoCore did not inject; left as is`;
      return skip('unmanaged-sidecar', sentence, [...warnings, warning(sentence)]);
    }
    const blocked = notInjectable(object, namespace, plan, context);
    if (blocked) return blocked;
    return { action: 'inject', reason: 'injected', message: `sidecar ${plan.version} injected (${mode})`, warnings, pod: object, mode };
  }
  if (isCurrent(object, sidecars, plan, mode)) {
    return skip('already-injected', `sidecar ${plan.version} already injected`, warnings);
  }
  const blocked = notInjectable(object, namespace, plan, context);
  if (blocked) return blocked;
  const old = object.metadata?.annotations?.[ANNOTATION_VERSION] ?? 'unknown';
  const sentence = `replaced sidecar ${quote(old, 20)} with ${plan.version} (config ${plan.configHash})`;
  warnings.push(warning(sentence));
  return { action: 'inject', reason: 'reinjected', message: sentence, warnings, pod: object, mode };
}
