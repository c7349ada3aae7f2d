// Property (issue 15): a pod the webhook injects never violates the namespace's LimitRanges because
// of the sidecar. The checker below is written from the Go of Kubernetes v1.37.2,
// plugin/pkg/admission/limitranger/admission.go (PodValidateLimitFunc, podRequests, podLimits),
// independently of app/inject/limit-range.ts; it compares integers in milli-units, as the API server.

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
    for (const item of range.limits) {
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
const list = fc.record({ cpu, memory }, { requiredKeys: [] });
const ratio = fc.constantFrom('1', '1.5', '2', '4', '10');
const itemArb = fc.record(
  {
    type: fc.constantFrom('Container', 'Pod'),
    min: list,
    max: list,
    maxLimitRequestRatio: fc.record({ cpu: ratio, memory: ratio }, { requiredKeys: [] }),
  },
  { requiredKeys: ['type'] },
) as fc.Arbitrary<LimitRangeItem>;
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

  it('an injected pod never violates a generated LimitRange because of the sidecar; otherwise the skip says limit-range', () => {
    let injected = 0;
    let skipped = 0;
    fc.assert(
      fc.property(podArb, rangesArb, fc.integer({ min: 0, max: plans.length - 1 }), (pod, ranges, p) => {
        const outcome = review(request(pod), plans[p]!, { namespace: { serviceAccount: true, licenseSecret: true, limitRanges: ranges } });
        if (outcome.reason !== 'injected') {
          assert.ok(['limit-range', 'pod-resources-too-small'].includes(outcome.reason), `${outcome.reason}: ${outcome.message}`);
          skipped++;
          return;
        }
        injected++;
        const patched = applyStrict(pod, outcome.patch);
        // The sidecar itself meets every type-Container item; the pod's totals meet every type-Pod
        // item unless the pod broke it on its own (the API server refuses that pod with or without us).
        assert.deepEqual(violations(patched, ranges, true).filter((e) => !e.includes(' pod ')), [], 'the sidecar fits');
        const podErrors = violations(patched, ranges, true).filter((e) => e.includes(' pod '));
        const before = violations(pod, ranges, true).filter((e) => e.includes(' pod '));
        assert.ok(podErrors.every((e) => before.includes(e)), `the sidecar adds a Pod violation: ${podErrors.join('; ')}`);
        for (const w of outcome.warnings) assert.ok(w.length <= 120, w);
      }),
      { numRuns: 1000 },
    );
    assert.ok(injected > 100 && skipped > 100, `both outcomes are exercised (injected ${injected}, skipped ${skipped})`);
  });
});
