// The shared pod classification (app/pods/classify.ts): each state from decide()'s own answer, the
// slim pods the watchdog keeps judged exactly like whole ones, readiness looked up only when the
// server would look it up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Pod } from '../../app/admission/types.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { classifyPod, classifyWithReadiness, isLive, slimPod } from '../../app/pods/classify.ts';
import { caseNames, configFor, loadCase, readJson } from '../helpers/golden.ts';

function podOf(name: string, which: 'input' | 'patched' = 'input'): { pod: Pod; env: Record<string, string>; context?: ReturnType<typeof loadCase>['context'] } | undefined {
  const c = loadCase(name);
  const request = c.review?.request;
  const patched = join(c.dir, 'pod.json');
  const object = (which === 'input' ? request?.object : existsSync(patched) ? readJson(patched) : undefined) as Pod | undefined;
  if (!object?.spec || !Array.isArray(object.spec.containers)) return undefined;
  const pod = structuredClone(object);
  pod.metadata = { ...pod.metadata, namespace: request?.namespace ?? pod.metadata?.namespace ?? 'default' };
  return { pod, env: c.env, context: c.context };
}

describe('pod classification', () => {
  it('every golden pod, whole and slim, gets the same classification (input and patched)', () => {
    let compared = 0;
    for (const name of caseNames()) {
      for (const which of ['input', 'patched'] as const) {
        const found = podOf(name, which);
        if (!found) continue;
        const plan = planInjection(configFor(found.env));
        const whole = classifyPod(found.pod, plan, found.context ?? {});
        const slim = classifyPod(slimPod(found.pod), plan, found.context ?? {});
        assert.deepEqual(slim, whole, `${name} (${which})`);
        compared++;
      }
    }
    assert.ok(compared >= 30, `compared ${compared} pods`);
  });

  it('states follow what the webhook would do now', () => {
    const state = (name: string, which: 'input' | 'patched' = 'input') => {
      const found = podOf(name, which)!;
      const c = classifyPod(found.pod, planInjection(configFor(found.env)), found.context ?? {});
      return `${c.state}/${c.reason}`;
    };
    assert.equal(state('minimal-pod'), 'unprotected/injected');
    assert.equal(state('minimal-pod', 'patched'), 'protected/already-injected');
    assert.equal(state('injected-older-version'), 'stale/reinjected');
    assert.equal(state('excluded-namespace'), 'skipped/namespace-excluded');
    assert.equal(state('own-namespace'), 'skipped/own-namespace');
    assert.equal(state('namespace-not-ready'), 'skipped/namespace-not-ready');
    assert.equal(state('hand-added-sidecar'), 'skipped/unmanaged-sidecar');
    assert.equal(state('pod-resources-too-small'), 'skipped/pod-resources-too-small');
    assert.equal(state('unlabelled'), 'skipped/not-labelled');
  });

  it('a newer sidecar config makes an injected pod stale', () => {
    const found = podOf('minimal-pod', 'patched')!;
    const newer = planInjection(configFor({ ...found.env, PANDO_SIDECAR_IMAGE: 'registry.pandocore.xyz/pandocore/sidecar:2.0.0' }));
    assert.equal(classifyPod(found.pod, newer).state, 'stale');
  });

  it('looks the namespace up only for a pod it would inject, and a namespace without setup skips it', async () => {
    const plan = planInjection(configFor({}));
    const lookups: string[] = [];
    const readiness = { get: async (ns: string) => (lookups.push(ns), { ok: true as const, facts: { serviceAccount: false, licenseSecret: true } }) };
    const unprotected = podOf('minimal-pod')!.pod;
    const injected = podOf('minimal-pod', 'patched')!.pod;
    assert.equal((await classifyWithReadiness(injected, plan, readiness)).state, 'protected');
    assert.deepEqual(lookups, []);
    const c = await classifyWithReadiness(unprotected, plan, readiness);
    assert.equal(`${c.state}/${c.reason}`, 'skipped/namespace-not-ready');
    assert.equal(lookups.length, 1);
    assert.equal((await classifyWithReadiness(unprotected, plan, undefined)).state, 'unprotected');
    const failed = await classifyWithReadiness(unprotected, plan, { get: async () => ({ ok: false as const, reason: 'forbidden' as const }) });
    assert.equal(`${failed.state}/${failed.reason}`, 'skipped/namespace-check-failed', 'as the server: a failed lookup skips');
  });

  it('keeps only what it reads: no other annotations, labels, env, volumes or status', () => {
    const slim = slimPod({
      metadata: {
        name: 'p', namespace: 'n', uid: 'u', labels: { 'pandocore.xyz/protect': 'true', app: 'x' },
        annotations: { 'pandocore.xyz/status': 'injected', 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(1000) },
        ownerReferences: [{ kind: 'ReplicaSet', name: 'web-1', uid: 'rs', controller: true }, { kind: 'Other', name: 'o', uid: 'o' }],
        managedFields: [{ manager: 'kubectl' }],
      },
      spec: { containers: [{ name: 'app', image: 'i', env: [{ name: 'SECRET', value: 's' }], resources: { requests: { cpu: '1' } } }], volumes: [{ name: 'v' }] },
      status: { phase: 'Running', conditions: [{ type: 'Ready' }] },
    });
    assert.deepEqual(slim, {
      metadata: { name: 'p', namespace: 'n', uid: 'u', labels: { 'pandocore.xyz/protect': 'true' }, annotations: { 'pandocore.xyz/status': 'injected' }, controller: { kind: 'ReplicaSet', name: 'web-1', uid: 'rs' } },
      spec: { containers: [{ name: 'app', resources: { requests: { cpu: '1' } } }] },
      status: { phase: 'Running' },
    });
  });

  it('finished and terminating pods are not looked at', () => {
    assert.equal(isLive({ status: { phase: 'Running' } }), true);
    assert.equal(isLive({ status: { phase: 'Pending' } }), true);
    assert.equal(isLive({ status: { phase: 'Succeeded' } }), false);
    assert.equal(isLive({ status: { phase: 'Failed' } }), false);
    assert.equal(isLive({ metadata: { deletionTimestamp: '2026-11-24T12:00:00Z' } }), false);
  });
});
