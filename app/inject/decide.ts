// (AdmissionRequest, InjectionPlan) -> Decision, or a decision pending the namespace's facts.
// Pure: no I/O, no clock, no logger.

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
import { addQuantities, aggregateContainers, fitToLimitRanges, milli, podLimitRangeProblem, type LimitRangeFacts, type SidecarRequirements } from './limit-range.ts';
import { nonLinuxTarget } from './os.ts';
import { quote, warning, type Reason } from './reasons.ts';
import type { InjectionPlan } from './sidecar.ts';

/** What the namespace provides; undefined fields (or no value at all) mean unknown. */
export interface NamespaceReadiness {
  serviceAccount: boolean;
  licenseSecret: boolean;
  /** Whether each of the sidecar's image pull Secrets exists, by name (absent: none configured). */
  pullSecrets?: Record<string, boolean>;
  /** The namespace's LimitRanges (absent: not looked up). */
  limitRanges?: LimitRangeFacts[];
}

export interface ReviewContext {
  namespace?: NamespaceReadiness;
  /** Set when the namespace lookup failed (its reason key, e.g. timeout, forbidden): the pod is skipped. */
  namespaceLookupFailed?: string;
}

/** What the pod needs changed besides the sidecar itself. */
export interface Adjustments {
  /** The sidecar's requests and limits, fitted to the namespace's LimitRanges. */
  resources: SidecarRequirements;
  /** New pod-level resources (sidecar.podResources grow); absent: unchanged. */
  podResources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}

export type Decision =
  | { action: 'skip'; reason: Reason; message: string; warnings: string[] }
  | { action: 'inject'; reason: 'injected' | 'reinjected'; message: string; warnings: string[]; pod: Pod; mode: Mode; adjustments: Adjustments };

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
  // Without its pull Secret the sidecar image never pulls, and the pod never starts.
  for (const [name, present] of Object.entries(readiness.pullSecrets ?? {})) if (!present) missing.push(`pull Secret ${name}`);
  return missing;
}

type PodResources = { requests?: Record<string, unknown>; limits?: Record<string, unknown> };

/**
 * With pod-level resources, the API server requires the containers' aggregate requests to stay
 * within the pod's, and each container limit within the pod's (Kubernetes v1.37.2,
 * pkg/apis/core/validation/validation.go, validatePodResourceConsistency). Returns what would break.
 */
function podResourcesProblem(pod: Pod, sidecar: SidecarRequirements, native: boolean): string | undefined {
  const podResources = pod.spec.resources as PodResources | undefined;
  if (!podResources || typeof podResources !== 'object') return undefined;
  const requested = aggregateContainers(pod, sidecar, native, 'requests');
  for (const resource of ['cpu', 'memory'] as const) {
    const podLimit = podResources.limits?.[resource];
    if (podLimit !== undefined && milli(sidecar.limits[resource]) > milli(podLimit)) {
      return `the sidecar's ${resource} limit ${sidecar.limits[resource]} exceeds the pod's ${String(podLimit)}`;
    }
    const podRequest = podResources.requests?.[resource];
    if (podRequest !== undefined && (requested[resource] ?? 0) > milli(podRequest)) {
      return `containers would request more ${resource} than the pod's ${String(podRequest)}`;
    }
  }
  return undefined;
}

/**
 * sidecar.podResources grow: the pod-level cpu and memory the pod sets, plus the sidecar's (minus a
 * sidecar being replaced), as the scheduler has to count the sidecar anyway.
 */
function grownPodResources(pod: Pod, sidecar: SidecarRequirements): Adjustments['podResources'] {
  const podResources = pod.spec.resources as PodResources | undefined;
  const old = findSidecars(pod).map((c) => (c.resources ?? {}) as SidecarRequirements);
  const grow = (which: 'requests' | 'limits') => {
    const list = podResources?.[which];
    if (!list || typeof list !== 'object') return undefined;
    const grown: Record<string, string> = { ...(list as Record<string, string>) };
    for (const resource of ['cpu', 'memory'] as const) {
      if (typeof list[resource] !== 'string') continue;
      let value = addQuantities(list[resource], sidecar[which][resource]);
      for (const o of old) value = addQuantities(value, o[which]?.[resource] ?? '0', -1);
      grown[resource] = value;
    }
    return grown;
  };
  const requests = grow('requests');
  const limits = grow('limits');
  return { ...podResources, ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) } as Adjustments['podResources'];
}

function withPodResources(pod: Pod, podResources: Adjustments['podResources']): Pod {
  return podResources ? { ...pod, spec: { ...pod.spec, resources: podResources } } : pod;
}

type Plan = { ok: true; adjustments: Adjustments; warnings: string[] } | { ok: false; skip: Decision };

/** Skips that keep a pod valid: injecting would make its creation fail or its sidecar never start. */
function planFor(pod: Pod, namespace: string, plan: InjectionPlan, context: ReviewContext): Plan {
  const os = nonLinuxTarget(pod);
  // The seam for a Windows sidecar: a plan that supports the OS would build its own template here.
  if (os && !plan.operatingSystems.has(os.os)) {
    const sentence = `pod targets ${quote(os.os, 20)} (${os.source}); the sidecar runs on Linux only`;
    return { ok: false, skip: skip('unsupported-os', sentence, [warning(`sidecar not injected: ${sentence}`)]) };
  }
  if (context.namespaceLookupFailed !== undefined) {
    const sentence = `namespace ${namespace} could not be checked (${context.namespaceLookupFailed})`;
    return {
      ok: false,
      skip: skip('namespace-check-failed', `${sentence}; the pod is created without the sidecar`, [warning(`sidecar not injected: ${sentence}`)]),
    };
  }
  const missing = missingSetup(pod, context.namespace);
  if (missing.length > 0) {
    const sentence = `namespace ${namespace} lacks ${missing.join(' and ')}`;
    const fix = `fix: pando setup-namespace ${namespace}`;
    // Three short warnings rather than one long one: kubectl shows 120 characters, and with a long
    // namespace name one sentence would lose what is missing or the fix.
    return {
      ok: false,
      skip: skip('namespace-not-ready', `${sentence}; ${fix} (or list it in the chart's protectedNamespaces)`, [
        warning(`sidecar not injected: namespace ${namespace} is not set up`),
        warning(`missing ${missing.join(' and ')} (or list the namespace in protectedNamespaces)`),
        warning(fix),
      ]),
    };
  }
  const ranges = context.namespace?.limitRanges ?? [];
  const fit = fitToLimitRanges(plan.resources as unknown as SidecarRequirements, ranges);
  if (!fit.ok) return { ok: false, skip: skip('limit-range', fit.problem, [warning(`sidecar not injected: ${fit.problem}`)]) };
  const warnings = fit.notes.map((note) => warning(note));
  // Everything after the fit judges the sidecar as the API server will hold it: with the defaults
  // LimitRanger's second Admit gives it (app/inject/limit-range.ts).
  let podResources: Adjustments['podResources'];
  if (plan.podResources === 'grow' && pod.spec.resources && typeof pod.spec.resources === 'object') {
    podResources = grownPodResources(pod, fit.admitted);
    warnings.push(warning(`pod-level resources grown by the sidecar's requests and limits`));
  } else {
    const problem = podResourcesProblem(pod, fit.admitted, plan.native);
    if (problem) return { ok: false, skip: skip('pod-resources-too-small', problem, [warning(`sidecar not injected: ${problem}`)]) };
  }
  const podProblem = podLimitRangeProblem(withPodResources(pod, podResources), fit.admitted, plan.native, ranges);
  if (podProblem) return { ok: false, skip: skip('limit-range', podProblem, [warning(`sidecar not injected: ${podProblem}`)]) };
  return { ok: true, adjustments: { resources: fit.resources, ...(podResources ? { podResources } : {}) }, warnings };
}

/**
 * The namespace's facts are needed to finish this decision: the caller looks them up and calls
 * resolve(). Everything that does not depend on them (kind, operation, label, namespace, mode, the
 * sidecars already there, the pod's own fit) is decided already and is not decided again.
 */
export interface PendingDecision {
  action: 'needs-namespace';
  namespace: string;
  /** The decision with the lookup's answer ({} when the namespace is not checked). */
  resolve(context: ReviewContext): Decision;
}

/** Whether the namespace's facts could change a plan made without them. */
function factsMatter(pod: Pod, context: ReviewContext): boolean {
  return (
    context.namespaceLookupFailed !== undefined ||
    missingSetup(pod, context.namespace).length > 0 ||
    (context.namespace?.limitRanges?.length ?? 0) > 0
  );
}

/**
 * Decides a review once. A pod that would be injected without knowing its namespace comes back
 * pending: only then is the (cached) namespace lookup worth its cost. Any other answer is final.
 */
export function decide(request: AdmissionRequest, plan: InjectionPlan): Decision | PendingDecision {
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
  const reinject = status === STATUS_INJECTED;
  if (!reinject && sidecars.length > 0) {
    const sentence = `pod already has a container named ${SIDECAR_NAME} that PandoCore did not inject; left as is`;
    return skip('unmanaged-sidecar', sentence, [...warnings, warning(sentence)]);
  }
  if (reinject && isCurrent(object, sidecars, plan, mode)) {
    return skip('already-injected', `sidecar ${plan.version} already injected`, warnings);
  }
  // The plan without the namespace's facts: a pod it refuses is refused whatever they are.
  const factless = planFor(object, namespace, plan, {});
  if (!factless.ok) return factless.skip;
  const old = object.metadata?.annotations?.[ANNOTATION_VERSION] ?? 'unknown';
  return {
    action: 'needs-namespace',
    namespace,
    resolve(context: ReviewContext): Decision {
      const planned = factsMatter(object, context) ? planFor(object, namespace, plan, context) : factless;
      if (!planned.ok) return planned.skip;
      const all = [...warnings, ...planned.warnings];
      if (!reinject) {
        return { action: 'inject', reason: 'injected', message: `sidecar ${plan.version} injected (${mode})`, warnings: all, pod: object, mode, adjustments: planned.adjustments };
      }
      const sentence = `replaced sidecar ${quote(old, 20)} with ${plan.version} (config ${plan.configHash})`;
      all.push(warning(sentence));
      return { action: 'inject', reason: 'reinjected', message: sentence, warnings: all, pod: object, mode, adjustments: planned.adjustments };
    },
  };
}

/** decide() with the namespace's facts at hand ({}: not checked), for callers that look them up first. */
export function decideWith(request: AdmissionRequest, plan: InjectionPlan, context: ReviewContext = {}): Decision {
  const decision = decide(request, plan);
  return decision.action === 'needs-namespace' ? decision.resolve(context) : decision;
}
