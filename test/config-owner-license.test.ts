// The env the chart adds for issue 16: the license Secret namespace setup copies (and where to), and
// the webhook's own Deployment (owner of the objects it creates).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../app/config.ts';
import { ENV } from '../app/contract.ts';
import { ConfigError } from '../app/errors.ts';

describe('config: license Secret and owner Deployment', () => {
  it('defaults: pando-license/license-key, no owner', () => {
    const config = loadConfig({});
    assert.deepEqual(config.licenseSecret, { name: 'pando-license', key: 'license-key' });
    assert.equal(config.ownerDeployment, '');
  });
  it('the chart values arrive', () => {
    const config = loadConfig({ [ENV.licenseSecretName]: 'vault-license', [ENV.licenseSecretKey]: 'token', [ENV.ownerDeployment]: 'pando-webhook' });
    assert.deepEqual(config.licenseSecret, { name: 'vault-license', key: 'token' });
    assert.equal(config.ownerDeployment, 'pando-webhook');
  });
  it('license copy namespaces: none by default, a checked list when set', () => {
    assert.deepEqual(loadConfig({}).licenseCopyNamespaces, []);
    assert.deepEqual(loadConfig({ [ENV.licenseCopyNamespaces]: '' }).licenseCopyNamespaces, []);
    assert.deepEqual(loadConfig({ [ENV.licenseCopyNamespaces]: 'team-a,team-b' }).licenseCopyNamespaces, ['team-a', 'team-b']);
    assert.throws(() => loadConfig({ [ENV.licenseCopyNamespaces]: 'Team_A' }), (e: unknown) => e instanceof ConfigError && e.variable === ENV.licenseCopyNamespaces);
  });
  it('a bad name or key names the variable', () => {
    assert.throws(() => loadConfig({ [ENV.licenseSecretName]: 'Bad_Name' }), (e: unknown) => e instanceof ConfigError && e.variable === ENV.licenseSecretName && e.message.includes('Bad_Name'));
    assert.throws(() => loadConfig({ [ENV.licenseSecretKey]: 'a/b' }), (e: unknown) => e instanceof ConfigError && e.variable === ENV.licenseSecretKey);
  });
});
