// Property (issue 15): a pod the webhook injects never violates the namespace's LimitRanges because
// of the sidecar. The checker below is written from the Go of Kubernetes v1.37.2,
// plugin/pkg/admission/limitranger/admission.go (PodValidateLimitFunc, podRequests, podLimits),
// independently of app/inject/limit-range.ts; it compares integers in milli-units, as the API server.
// Issue 23 item 5: the model runs LimitRanger as the API server does, twice. The LimitRanges are
// stored defaulted (pkg/apis/core/v1/defaults.go, SetDefaults_LimitRangeItem); its Admit
// (PodMutateLimitFunc) defaults the pod before the webhook sees it and again after our patch (the
// reinvocation of the mutating chain, k8s.io/apiserver pkg/admission/reinvocation.go); its Validate
// judges that final pod. A limit-range skip must also be needed: the sidecar as planned, defaulted,
// would have broken a rule.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { AdmissionRequest, Container, Pod } from '../../app/admission/types.ts';
import { LABEL_PROTECT, SIDECAR_NAME } from '../../app/contract.ts';
import type { LimitRangeFacts, LimitRangeItem } from '../../app/inject/limit-range.ts';
import { parseQuantity } from '../../app/inject/quantity.ts';
import { review } from '../../app/inject/review.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { applyStrict, configFor } from '../helpers/golden.ts';
import { podReview } from '../helpers/server.ts';

type List = Record<string, string>;
const milli = (q: string) => BigInt(Math.round(parseQuantity(q) * 1000));

/** Errors of one LimitRange item against one requests/limits pair, as the Go functions return them. */
function check(item: LimitRangeItem, requests: List, limits: List): string[] {
  const errors: string[] = [];
  for (const [r, v] of Object.entries(item.min ?? {})) {
    if (!(r in requests)) errors.push(`min ${r}: no request`);
    else if (milli(requests[r]!) < milli(v)) errors.push(`min ${r}: request`);
    else if (r in limits && milli(limits[r]!) < milli(v)) errors.push(`min ${r}: limit`);
  }
  for (const [r, v] of Object.entries(item.max ?? {})) {
    if (!(r in limits)) errors.push(`max ${r}: no limit`);
    else if (milli(limits[r]!) > milli(v)) errors.push(`max ${r}: limit`);
    else if (r in requests && milli(requests[r]!) > milli(v)) errors.push(`max ${r}: request`);
  }
  for (const [r, v] of Object.entries(item.maxLimitRequestRatio ?? {})) {
    const req = r in requests ? milli(requests[r]!) : 0n;
    const lim = r in limits ? milli(limits[r]!) : 0n;
    if (req === 0n || lim === 0n) errors.push(`ratio ${r}: missing`);
    else if (Number(lim) / Number(req) * 1000 > Number(milli(v))) errors.push(`ratio ${r}`);
  }
  return errors;
}

const res = (c: Container, which: 'requests' | 'limits'): List => ((c.resources as Record<string, List> | undefined)?.[which] ?? {});

/** SetDefaults_LimitRangeItem: default from max; defaultRequest from default, then from min. */
function stored(item: LimitRangeItem): LimitRangeItem {
  if (item.type !== 'Container') return item;
  const def: List = { ...item.max, ...item.default };
  const defaultRequest: List = { ...item.min, ...def, ...item.defaultRequest };
  return { ...item, default: def, defaultRequest };
}

/** PodMutateLimitFunc for each LimitRange in turn: missing requests and limits of every container filled. */
function admit(pod: Pod, ranges: LimitRangeFacts[]): Pod {
  const out = structuredClone(pod);
  for (const range of ranges) {
    const requests: List = {};
    const limits: List = {};
    for (const item of range.limits.map(stored)) {
      if (item.type !== 'Container') continue;
      Object.assign(requests, item.defaultRequest);
      Object.assign(limits, item.default);
    }
    for (const c of [...out.spec.containers, ...(out.spec.initContainers ?? [])]) {
      const r = (c.resources ??= {}) as Record<string, List>;
      r.requests = { ...requests, ...r.requests };
      r.limits = { ...limits, ...r.limits };
    }
  }
  return out;
}

/** Pod validation (ValidateResourceRequirements): no container requests more than its limit. */
function requestAboveLimit(pod: Pod): string[] {
  const sidecar = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])].find((c) => c.name === SIDECAR_NAME);
  if (!sidecar) return [];
  const limits = res(sidecar, 'limits');
  return Object.entries(res(sidecar, 'requests')).filter(([k, v]) => k in limits && milli(v) > milli(limits[k]!)).map(([k]) => `sidecar ${k} request > limit`);
}

/** podRequests / podLimits of admission.go (PodLevelResources on). */
function podTotal(pod: Pod, which: 'requests' | 'limits'): List {
  const sum = new Map<string, bigint>();
  const add = (into: Map<string, bigint>, list: List) => { for (const [k, v] of Object.entries(list)) into.set(k, (into.get(k) ?? 0n) + milli(v)); };
  for (const c of pod.spec.containers) add(sum, res(c, which));
  const restartable = new Map<string, bigint>();
  const peak = new Map<string, bigint>();
  for (const c of pod.spec.initContainers ?? []) {
    let current: Map<string, bigint>;
    if (c.restartPolicy === 'Always') { add(sum, res(c, which)); add(restartable, res(c, which)); current = restartable; }
    else { current = new Map(restartable); add(current, res(c, which)); }
    for (const [k, v] of current) if (!peak.has(k) || v > peak.get(k)!) peak.set(k, v);
  }
  for (const [k, v] of peak) if (!sum.has(k) || v > sum.get(k)!) sum.set(k, v);
  const out: List = Object.fromEntries([...sum].map(([k, v]) => [k, `${v}m`]));
  for (const [k, v] of Object.entries(((pod.spec.resources as Record<string, List> | undefined)?.[which]) ?? {})) if (k === 'cpu' || k === 'memory') out[k] = v;
  return out;
}

function violations(pod: Pod, ranges: LimitRangeFacts[], onlySidecar: boolean): string[] {
  const errors: string[] = [];
  for (const range of ranges) {
    for (const item of range.limits.map(stored)) {
      if (item.type === 'Container') {
        for (const c of [...pod.spec.containers, ...(pod.spec.initContainers ?? [])]) {
          if (onlySidecar && c.name !== SIDECAR_NAME) continue;
          errors.push(...check(item, res(c, 'requests'), res(c, 'limits')).map((e) => `${range.name} ${c.name} ${e}`));
        }
      } else if (item.type === 'Pod') {
        errors.push(...check(item, podTotal(pod, 'requests'), podTotal(pod, 'limits')).map((e) => `${range.name} pod ${e}`));
      }
    }
  }
  return errors;
}

const cpu = fc.integer({ min: 1, max: 2000 }).map((m) => `${m}m`);
const memory = fc.integer({ min: 1, max: 1024 }).map((m) => `${m}Mi`);
// Neither the sidecar nor the generated app containers set ephemeral-storage: only defaults give it.
const storage = fc.integer({ min: 1, max: 4096 }).map((m) => `${m}Mi`);
const list = fc.record({ cpu, memory, 'ephemeral-storage': storage }, { requiredKeys: [] });
const ratio = fc.constantFrom('1', '1.5', '2', '4', '10');
const rarely = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
// A type-Pod item limits ephemeral-storage only now and then (a max, the shape a Container default
// can break): without Container defaults for it, every pod breaks it on its own.
const itemArb = fc.tuple(fc.record(
  {
    type: fc.constantFrom('Container', 'Pod'),
    min: list,
    max: list,
    default: rarely(list),
    defaultRequest: rarely(list),
    maxLimitRequestRatio: fc.record({ cpu: ratio, memory: ratio }, { requiredKeys: [] }),
  },
  { requiredKeys: ['type'] },
), rarely(storage)).map(([item, podStorage]) => {
  const { default: def, defaultRequest, ...rest } = item;
  if (item.type === 'Pod') {
    const { 'ephemeral-storage': _min, ...min } = rest.min ?? {};
    const { 'ephemeral-storage': _max, ...max } = rest.max ?? {};
    return { ...rest, ...(rest.min ? { min } : {}), ...(rest.max || podStorage ? { max: { ...max, ...(podStorage ? { 'ephemeral-storage': podStorage } : {}) } } : {}) };
  }
  return { ...rest, ...(def ? { default: def } : {}), ...(defaultRequest ? { defaultRequest } : {}) };
}) as fc.Arbitrary<LimitRangeItem>;
const rangesArb = fc.array(fc.record({ name: fc.constantFrom('a', 'b', 'c'), limits: fc.array(itemArb, { minLength: 1, maxLength: 2 }) }), { minLength: 1, maxLength: 2 });

const containerArb = (name: string) =>
  fc.record({ requests: fc.record({ cpu, memory }), extra: fc.record({ cpu: fc.integer({ min: 0, max: 1000 }), memory: fc.integer({ min: 0, max: 512 }) }) }).map(({ requests, extra }) => ({
    name,
    image: 'app:1',
    resources: {
      requests,
      limits: { cpu: `${parseInt(requests.cpu, 10) + extra.cpu}m`, memory: `${parseInt(requests.memory, 10) + extra.memory}Mi` },
    },
  }));

const podArb = fc.record({
  containers: fc.array(containerArb('app'), { minLength: 1, maxLength: 1 }),
  podLevel: fc.option(fc.record({ requests: fc.record({ cpu: fc.constant('4'), memory: fc.constant('4Gi') }), limits: fc.record({ cpu: fc.constant('8'), memory: fc.constant('8Gi') }) }), { nil: undefined }),
}).map(({ containers, podLevel }): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', namespace: 'shop', labels: { [LABEL_PROTECT]: 'true' } },
  spec: { containers, ...(podLevel ? { resources: podLevel } : {}) },
}));

const request = (pod: Pod) => podReview(pod, { uid: 'limit-range-prop' }).request as AdmissionRequest;

describe('LimitRange property', () => {
  const plans = [
    planInjection(configFor({})),
    planInjection(configFor({ PANDO_SIDECAR_NATIVE: 'false' })),
    planInjection(configFor({ PANDO_SIDECAR_POD_RESOURCES: 'grow' })),
  ];

  it('an injected pod never violates a generated LimitRange because of the sidecar; otherwise the skip says limit-range, and only when needed', () => {
    let injected = 0;
    let skipped = 0;
    fc.assert(
      fc.property(podArb, rangesArb, fc.integer({ min: 0, max: plans.length - 1 }), (raw, ranges, p) => {
        // What the webhook sees: the pod after LimitRanger's first Admit.
        const pod = admit(raw, ranges);
        const before = violations(pod, ranges, true).filter((e) => e.includes(' pod '));
        const outcome = review(request(pod), plans[p]!, { namespace: { serviceAccount: true, licenseSecret: true, limitRanges: ranges } });
        if (outcome.reason !== 'injected') {
          assert.ok(['limit-range', 'pod-resources-too-small'].includes(outcome.reason), `${outcome.reason}: ${outcome.message}`);
          skipped++;
          if (outcome.reason === 'limit-range') {
            // Needed: the sidecar as planned (no LimitRange to fit to), defaulted by the second Admit, breaks a rule.
            const unfitted = review(request(pod), plans[p]!, { namespace: { serviceAccount: true, licenseSecret: true, limitRanges: [] } });
            if (unfitted.reason === 'injected') {
              const plain = admit(applyStrict(pod, unfitted.patch), ranges);
              const broken = [...violations(plain, ranges, true), ...requestAboveLimit(plain)];
              assert.ok(broken.length > 0, `a needless limit-range skip: ${outcome.message}`);
            }
          }
          return;
        }
        injected++;
        // The final pod: our patch, then LimitRanger's second Admit; its Validate and pod validation judge it.
        const patched = admit(applyStrict(pod, outcome.patch), ranges);
        // The sidecar itself meets every type-Container item; the pod's totals meet every type-Pod
        // item unless the pod broke it on its own (the API server refuses that pod with or without us).
        assert.deepEqual(violations(patched, ranges, true).filter((e) => !e.includes(' pod ')), [], 'the sidecar fits');
        assert.deepEqual(requestAboveLimit(patched), [], 'no sidecar request above its limit');
        const podErrors = violations(patched, ranges, true).filter((e) => e.includes(' pod '));
        assert.ok(podErrors.every((e) => before.includes(e)), `the sidecar adds a Pod violation: ${podErrors.join('; ')}`);
        for (const w of outcome.warnings) assert.ok(w.length <= 120, w);
      }),
      // Two LimitRanger passes and ephemeral-storage defaults skip more pods: 2000 runs keep both outcomes well exercised.
      { numRuns: 2000 },
    );
    assert.ok(injected > 100 && skipped > 100, `both outcomes are exercised (injected ${injected}, skipped ${skipped})`);
  });
});
