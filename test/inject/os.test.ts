import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pod } from '../../app/admission/types.ts';
import { nonLinuxTarget } from '../../app/inject/os.ts';

const term = (operator: string, values?: string[]) => ({ matchExpressions: [{ key: 'kubernetes.io/os', operator, ...(values ? { values } : {}) }] });
const withTerms = (...terms: unknown[]): Pod => ({
  spec: { containers: [{ name: 'app' }], affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } } },
});

describe('which OS a pod targets', () => {
  it('reads spec.os.name and the kubernetes.io/os node selector', () => {
    assert.deepEqual(nonLinuxTarget({ spec: { containers: [], os: { name: 'windows' } } }), { os: 'windows', source: 'spec.os.name' });
    assert.equal(nonLinuxTarget({ spec: { containers: [], os: { name: 'linux' } } }), undefined);
    assert.deepEqual(nonLinuxTarget({ spec: { containers: [], nodeSelector: { 'kubernetes.io/os': 'windows' } } })?.os, 'windows');
    assert.equal(nonLinuxTarget({ spec: { containers: [], nodeSelector: { 'kubernetes.io/arch': 'arm64' } } }), undefined);
  });

  it('skips only when no required node selector term admits a Linux node (terms are ORed)', () => {
    assert.equal(nonLinuxTarget(withTerms(term('In', ['windows'])))?.os, 'windows');
    assert.ok(nonLinuxTarget(withTerms(term('NotIn', ['linux']))));
    assert.ok(nonLinuxTarget(withTerms(term('DoesNotExist'))), 'every kubelet sets kubernetes.io/os');
    assert.equal(nonLinuxTarget(withTerms(term('In', ['windows', 'linux']))), undefined);
    assert.equal(nonLinuxTarget(withTerms(term('NotIn', ['windows']))), undefined);
    assert.equal(nonLinuxTarget(withTerms(term('Exists'))), undefined);
    assert.equal(nonLinuxTarget(withTerms(term('In', ['windows']), { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] })), undefined, 'another term admits Linux');
    assert.equal(nonLinuxTarget(withTerms()), undefined, 'no terms: nothing said about the OS');
  });

  it('reads beta.kubernetes.io/os as kubernetes.io/os: the kubelet still sets both labels on every node', () => {
    const beta = (operator: string, values?: string[]) => ({ matchExpressions: [{ key: 'beta.kubernetes.io/os', operator, ...(values ? { values } : {}) }] });
    assert.deepEqual(nonLinuxTarget({ spec: { containers: [], nodeSelector: { 'beta.kubernetes.io/os': 'windows' } } }), { os: 'windows', source: 'nodeSelector beta.kubernetes.io/os' });
    assert.equal(nonLinuxTarget({ spec: { containers: [], nodeSelector: { 'beta.kubernetes.io/os': 'linux' } } }), undefined);
    assert.equal(nonLinuxTarget(withTerms(beta('In', ['windows'])))?.os, 'windows');
    assert.ok(nonLinuxTarget(withTerms(beta('NotIn', ['linux']))));
    assert.equal(nonLinuxTarget(withTerms(beta('In', ['linux']))), undefined);
    assert.equal(nonLinuxTarget(withTerms(beta('In', ['windows']), term('In', ['linux']))), undefined, 'another term admits Linux');
    assert.ok(nonLinuxTarget(withTerms({ matchExpressions: [...term('In', ['linux']).matchExpressions, ...beta('In', ['windows']).matchExpressions] })), 'both labels in one term: ANDed');
  });
});
