// `pando setup-namespace`: which release Secret it copies (the chart's license.existingSecret reaches
// it through the webhook Deployment's env, as it reaches the webhook).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Deployment } from '@kubernetes/client-node';
import { ENV } from '../../app/contract.ts';
import { licenseSourceOf } from '../../app/cli/setup-namespace.ts';
import { plainSynth } from '../chart/render.ts';

const deploymentOf = (values: unknown) => plainSynth(values).find((o) => o.kind === 'Deployment') as unknown as V1Deployment;

describe('setup-namespace: the license Secret it copies', () => {
  it('the chart default: pando-license, key license-key', () => {
    assert.deepEqual(licenseSourceOf(deploymentOf({ licenseKey: 'k' })), { name: 'pando-license', key: 'license-key' });
  });
  it('license.existingSecret: the Secret and key the chart put into the env', () => {
    const deployment = deploymentOf({ license: { existingSecret: { name: 'vault-license', key: 'token' } } });
    const env = deployment.spec!.template.spec!.containers[0]!.env!;
    assert.equal(env.find((e) => e.name === ENV.licenseSecretName)?.value, 'vault-license');
    assert.deepEqual(licenseSourceOf(deployment), { name: 'vault-license', key: 'token' });
  });
  it('no Deployment readable: the defaults', () => {
    assert.deepEqual(licenseSourceOf(undefined), { name: 'pando-license', key: 'license-key' });
  });
});
