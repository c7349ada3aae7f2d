// The namespace's LimitRanges against the sidecar: fit the sidecar where that is safe, or say which
// LimitRange and field would refuse the pod. Pure: the LimitRanges come in as plain data.
//
// Kubernetes v1.37.2:
// - pkg/kubeapiserver/options/plugins.go (AllOrderedPlugins): LimitRanger runs before
//   MutatingAdmissionWebhook, so its defaults are already in the pod we see and never reach the
//   sidecar we add; its validation runs after every mutating webhook and judges the injected pod.
// - plugin/pkg/admission/limitranger/admission.go (PodValidateLimitFunc): type Container checks
//   every container and init container (min: request and limit at least min, a request required;
//   max: limit and request at most max, a limit required; maxLimitRequestRatio: limit/request, both
//   required and non-zero); type Pod checks the pod's totals from podRequests/podLimits (restartable
//   init containers add up, other init containers count at their peak, pod-level cpu/memory
//   override the sum) against the same three rules. Comparisons are in milli-units.
// - LimitRanger runs twice on our pod: once a webhook has changed the object, the API server runs the
//   whole mutating chain again, in-tree plugins included (k8s.io/apiserver pkg/admission/
//   reinvocation.go, reinvoker.Admit; the mutating dispatcher calls SetShouldReinvoke whenever a
//   patch changed the object). That second Admit (PodMutateLimitFunc: defaultContainerResourceRequirements,
//   mergeContainerResources) fills every container's missing requests from `defaultRequest` and
//   missing limits from `default`, one LimitRange after another (the first to set a key wins; within
//   one, the last type-Container item; the API server takes the LimitRanges in its informer's order,
//   we in the list's, which only matters when two LimitRanges default one key differently). Its
//   Validate then judges that pod. So the sidecar is checked,
//   and counted in the pod's totals, as the defaults leave it.
// - pkg/apis/core/v1/defaults.go (SetDefaults_LimitRangeItem): for type Container the API server
//   stores `default` from `max` and `defaultRequest` from `default`, then from `min`, where unset;
//   the same defaulting is applied here, so LimitRanges given without it judge the same.

import type { Container, Pod } from '../admission/types.ts';
import { SIDECAR_NAME } from '../contract.ts';
import { parseQuantity } from './quantity.ts';
import { quote } from './reasons.ts';

type ResourceMap = Record<string, string>;

export interface LimitRangeItem {
  type?: string;
  min?: ResourceMap;
  max?: ResourceMap;
  default?: ResourceMap;
  defaultRequest?: ResourceMap;
  maxLimitRequestRatio?: ResourceMap;
}

/** A LimitRange as the namespace lookup hands it to the core. */
export interface LimitRangeFacts {
  name: string;
  limits: LimitRangeItem[];
}

export interface SidecarRequirements {
  requests: ResourceMap;
  limits: ResourceMap;
}

export type Fit =
  /**
   * resources: what the patch writes (the sidecar's own keys, fitted, and any default that fitting
   * had to change); admitted: the sidecar as LimitRanger's second Admit leaves it, which its
   * Validate, pod validation and the pod's totals see.
   */
  | { ok: true; resources: SidecarRequirements; admitted: SidecarRequirements; notes: string[] }
  | { ok: false; problem: string };

/** Milli-units, as the API server compares (requestLimitEnforcedValues). */
export function milli(value: unknown): number {
  return Math.round(parseQuantity(value) * 1000);
}

/** A quantity string for milli-units: "Nm" unless whole; whole multiples of 1024^k with their suffix. */
export function formatMilli(value: number): string {
  if (value % 1000 !== 0) return `${value}m`;
  const units = value / 1000;
  for (const [suffix, factor] of [['Gi', 2 ** 30], ['Mi', 2 ** 20], ['Ki', 2 ** 10]] as const) {
    if (units >= factor && units % factor === 0) return `${units / factor}${suffix}`;
  }
  return String(units);
}

const entries = (map: ResourceMap | undefined) => Object.entries(map ?? {}).filter(([, v]) => typeof v === 'string');

/** The API server's three rules for one requirement set; the first violation, in few words. */
function violation(scope: string, item: LimitRangeItem, requests: ResourceMap, limits: ResourceMap): string | undefined {
  for (const [resource, min] of entries(item.min)) {
    if (requests[resource] === undefined) return `${scope} min ${resource} ${min} needs a request`;
    if (milli(requests[resource]) < milli(min)) return `${scope} min ${resource} ${min} > request ${requests[resource]}`;
    if (limits[resource] !== undefined && milli(limits[resource]) < milli(min)) return `${scope} min ${resource} ${min} > limit ${limits[resource]}`;
  }
  for (const [resource, max] of entries(item.max)) {
    if (limits[resource] === undefined) return `${scope} max ${resource} ${max} needs a limit`;
    if (requests[resource] !== undefined && milli(requests[resource]) > milli(max)) return `${scope} max ${resource} ${max} < request ${requests[resource]}`;
    if (milli(limits[resource]) > milli(max)) return `${scope} max ${resource} ${max} < limit ${limits[resource]}`;
  }
  for (const [resource, ratio] of entries(item.maxLimitRequestRatio)) {
    const request = milli(requests[resource]);
    const limit = milli(limits[resource]);
    if (!(request > 0) || !(limit > 0)) return `${scope} ${resource} maxLimitRequestRatio ${ratio} needs a request and a limit`;
    if (limit / request > parseQuantity(ratio)) return `${scope} ${resource} limit/request > maxLimitRequestRatio ${ratio}`;
  }
  return undefined;
}

/** SetDefaults_LimitRangeItem: a type-Container item as the API server stores it. */
export function withApiDefaults(item: LimitRangeItem): LimitRangeItem {
  if (item?.type !== 'Container') return item;
  const defaults: ResourceMap = Object.fromEntries(entries(item.default));
  for (const [k, v] of entries(item.max)) if (defaults[k] === undefined) defaults[k] = v;
  const defaultRequests: ResourceMap = Object.fromEntries(entries(item.defaultRequest));
  for (const [k, v] of Object.entries(defaults)) if (defaultRequests[k] === undefined) defaultRequests[k] = v;
  for (const [k, v] of entries(item.min)) if (defaultRequests[k] === undefined) defaultRequests[k] = v;
  return { ...item, default: defaults, defaultRequest: defaultRequests };
}

const itemsOf = (range: LimitRangeFacts) => (Array.isArray(range.limits) ? range.limits : []).filter((item) => item && typeof item === 'object').map(withApiDefaults);

/**
 * A container's requests and limits after LimitRanger's Admit (PodMutateLimitFunc): each LimitRange
 * in turn fills the keys still missing from its type-Container defaults, the last item winning
 * within one LimitRange (defaultContainerResourceRequirements, mergeContainerResources).
 */
export function withLimitRangeDefaults(resources: SidecarRequirements, ranges: LimitRangeFacts[]): SidecarRequirements {
  const requests: ResourceMap = { ...resources.requests };
  const limits: ResourceMap = { ...resources.limits };
  for (const range of ranges) {
    const rangeRequests: ResourceMap = {};
    const rangeLimits: ResourceMap = {};
    for (const item of itemsOf(range).filter((i) => i.type === 'Container')) {
      Object.assign(rangeRequests, Object.fromEntries(entries(item.defaultRequest)));
      Object.assign(rangeLimits, Object.fromEntries(entries(item.default)));
    }
    for (const [k, v] of Object.entries(rangeRequests)) if (requests[k] === undefined) requests[k] = v;
    for (const [k, v] of Object.entries(rangeLimits)) if (limits[k] === undefined) limits[k] = v;
  }
  return { requests, limits };
}

function resourcesOf(container: Container): SidecarRequirements {
  const r = container.resources as { requests?: ResourceMap; limits?: ResourceMap } | undefined;
  return { requests: r?.requests ?? {}, limits: r?.limits ?? {} };
}

/**
 * The containers' aggregate requests or limits with the sidecar in the pod, in milli-units:
 * restartable init containers (native sidecars) add up, other init containers count at their peak
 * beside the restartable ones before them (podRequests/podLimits of limitranger/admission.go, and
 * AggregateContainerRequests of k8s.io/component-helpers/resource, which pod validation uses).
 */
export function aggregateContainers(pod: Pod, sidecar: SidecarRequirements, native: boolean, which: 'requests' | 'limits'): Record<string, number> {
  const own = (c: Container) => c.name !== SIDECAR_NAME;
  const sidecarContainer: Container = { name: SIDECAR_NAME, resources: sidecar, ...(native ? { restartPolicy: 'Always' } : {}) };
  const containers = [...pod.spec.containers.filter(own), ...(native ? [] : [sidecarContainer])];
  const initContainers = [...(native ? [sidecarContainer] : []), ...(pod.spec.initContainers ?? []).filter(own)];
  const sum: Record<string, number> = {};
  const add = (into: Record<string, number>, list: ResourceMap) => {
    for (const [k, v] of entries(list)) into[k] = (into[k] ?? 0) + milli(v);
  };
  for (const c of containers) add(sum, resourcesOf(c)[which]);
  const restartable: Record<string, number> = {};
  const initPeak: Record<string, number> = {};
  for (const c of initContainers) {
    let current: Record<string, number>;
    if (c.restartPolicy === 'Always') {
      add(sum, resourcesOf(c)[which]);
      add(restartable, resourcesOf(c)[which]);
      current = restartable;
    } else {
      current = { ...restartable };
      add(current, resourcesOf(c)[which]);
    }
    for (const [k, v] of Object.entries(current)) initPeak[k] = Math.max(initPeak[k] ?? v, v);
  }
  for (const [k, v] of Object.entries(initPeak)) sum[k] = Math.max(sum[k] ?? v, v);
  return sum;
}

/**
 * The pod's totals as LimitRanger's Validate sees them: every container defaulted by its second Admit
 * (the pod's own already were by the first, before the webhooks), aggregated, with pod-level
 * cpu/memory overriding the sum.
 */
function podTotals(pod: Pod, sidecar: SidecarRequirements, native: boolean, which: 'requests' | 'limits', ranges: LimitRangeFacts[]): ResourceMap {
  const defaulted = (c: Container | undefined): Container | undefined =>
    c && c.name !== SIDECAR_NAME ? { ...c, resources: withLimitRangeDefaults(resourcesOf(c), ranges) } : c;
  const admitted: Pod = {
    ...pod,
    spec: { ...pod.spec, containers: pod.spec.containers.map(defaulted) as Container[], ...(pod.spec.initContainers ? { initContainers: pod.spec.initContainers.map(defaulted) as Container[] } : {}) },
  };
  const totals: ResourceMap = Object.fromEntries(Object.entries(aggregateContainers(admitted, sidecar, native, which)).map(([k, v]) => [k, formatMilli(v)]));
  const podLevel = (pod.spec.resources as Partial<Record<'requests' | 'limits', ResourceMap>> | undefined)?.[which];
  for (const k of ['cpu', 'memory']) if (typeof podLevel?.[k] === 'string') totals[k] = podLevel[k];
  return totals;
}

const containerItems = (ranges: LimitRangeFacts[]) =>
  ranges.flatMap((range) => itemsOf(range).filter((item) => item.type === 'Container').map((item) => ({ range: range.name, item })));
const podItems = (ranges: LimitRangeFacts[]) =>
  ranges.flatMap((range) => itemsOf(range).filter((item) => item.type === 'Pod').map((item) => ({ range: range.name, item })));

/**
 * The sidecar's requests and limits fitted to the namespace's type-Container limits, or which
 * LimitRange and field would refuse it. The sidecar is first defaulted as LimitRanger's second Admit
 * will default it. Fitting only moves a value toward the range and never below the sidecar's
 * request: a limit above a max is lowered to it, a request or limit below a min is raised to it, a
 * limit over maxLimitRequestRatio is lowered to request × ratio. The result is then checked as the
 * API server checks it; whatever still fails is the problem.
 */
export function fitToLimitRanges(sidecar: SidecarRequirements, ranges: LimitRangeFacts[]): Fit {
  const defaulted = withLimitRangeDefaults(sidecar, ranges);
  const requests: ResourceMap = { ...defaulted.requests };
  const limits: ResourceMap = { ...defaulted.limits };
  const notes: string[] = [];
  const items = containerItems(ranges);
  for (const { range, item } of items) {
    for (const [resource, max] of entries(item.max)) {
      if (limits[resource] !== undefined && milli(limits[resource]) > milli(max) && milli(requests[resource]) <= milli(max)) {
        notes.push(`sidecar ${resource} limit lowered from ${limits[resource]} to ${max} (LimitRange ${quote(range, 30)})`);
        limits[resource] = max;
      }
    }
    for (const [resource, min] of entries(item.min)) {
      for (const [list, word] of [[requests, 'request'], [limits, 'limit']] as const) {
        if (list[resource] !== undefined && milli(list[resource]) < milli(min)) {
          notes.push(`sidecar ${resource} ${word} raised from ${list[resource]} to ${min} (LimitRange ${quote(range, 30)})`);
          list[resource] = min;
        }
      }
    }
  }
  for (const { range, item } of items) {
    for (const [resource, ratio] of entries(item.maxLimitRequestRatio)) {
      const request = milli(requests[resource]);
      const allowed = Math.floor(request * parseQuantity(ratio));
      if (request > 0 && milli(limits[resource]) > allowed) {
        notes.push(`sidecar ${resource} limit lowered from ${limits[resource]} to ${formatMilli(allowed)} (LimitRange ${quote(range, 30)} maxLimitRequestRatio)`);
        limits[resource] = formatMilli(allowed);
      }
    }
  }
  for (const { range, item } of items) {
    const problem = violation('Container', item, requests, limits);
    if (problem) return { ok: false, problem: `LimitRange ${quote(range, 30)}: ${problem}` };
  }
  // Pod validation (ValidateResourceRequirements) refuses a request above its limit: a default can
  // give the sidecar a limit below a request of its own.
  for (const [resource, limit] of entries(limits)) {
    if (requests[resource] !== undefined && milli(requests[resource]) > milli(limit)) {
      return { ok: false, problem: `LimitRange default ${resource} limit ${limit} < the sidecar's request ${requests[resource]}` };
    }
  }
  // The patch writes the sidecar's own keys and the defaults fitting changed; LimitRanger fills the rest.
  const written = (list: ResourceMap, own: ResourceMap, before: ResourceMap): ResourceMap =>
    Object.fromEntries(Object.entries(list).filter(([k, v]) => own[k] !== undefined || v !== before[k]));
  const resources = { requests: written(requests, sidecar.requests, defaulted.requests), limits: written(limits, sidecar.limits, defaulted.limits) };
  return { ok: true, resources, admitted: { requests, limits }, notes };
}

/**
 * What a type-Pod limit says of the pod's totals once the sidecar is in it (pod-level resources as
 * given). `sidecar` is the sidecar as LimitRanger's second Admit leaves it (Fit's admitted).
 */
export function podLimitRangeProblem(pod: Pod, sidecar: SidecarRequirements, native: boolean, ranges: LimitRangeFacts[]): string | undefined {
  const items = podItems(ranges);
  if (items.length === 0) return undefined;
  const requests = podTotals(pod, sidecar, native, 'requests', ranges);
  const limits = podTotals(pod, sidecar, native, 'limits', ranges);
  for (const { range, item } of items) {
    const problem = violation('Pod', item, requests, limits);
    if (problem) return `LimitRange ${quote(range, 30)}: ${problem} with the sidecar`;
  }
  return undefined;
}

/** a + b (or a - b) of two quantities, as a quantity string. */
export function addQuantities(a: unknown, b: unknown, sign: 1 | -1 = 1): string {
  return formatMilli(Math.max(0, milli(a) + sign * milli(b)));
}
