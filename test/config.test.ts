import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_EXCLUDED_NAMESPACES, imageTag, loadConfig } from '../app/config.ts';
import { ConfigError } from '../app/errors.ts';

describe('config', () => {
  it('defaults match the product page', () => {
    const config = loadConfig({});
    assert.equal(config.defaultMode, 'monitor');
    assert.deepEqual(config.excludedNamespaces, DEFAULT_EXCLUDED_NAMESPACES);
    assert.equal(config.sidecar.native, true);
    assert.equal(config.sidecar.version, '1.0.0');
    assert.equal(config.port, 8443);
    assert.equal(config.metricsPort, 9090);
    assert.equal(config.tls, null);
    assert.equal(config.bodyTimeoutMs, 2000);
    assert.equal(config.bodyStallMs, 500);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.sidecar));
  });

  it('reads every variable', () => {
    const config = loadConfig({
      PANDO_PORT: '9443',
      PANDO_METRICS_PORT: '9091',
      PANDO_DEFAULT_MODE: 'enforce',
      PANDO_EXCLUDED_NAMESPACES: 'kube-system, infra ,',
      PANDO_SIDECAR_IMAGE: 'registry.example/pando/sidecar:2.1.0',
      PANDO_SIDECAR_NATIVE: 'false',
      PANDO_SIDECAR_RESOURCES: '{"requests":{"cpu":"10m","memory":"32Mi"},"limits":{"cpu":"1","memory":"1Gi","ephemeral-storage":"100Mi"}}',
      PANDO_TLS_CERT_FILE: '/etc/pando/tls/tls.crt',
      PANDO_TLS_KEY_FILE: '/etc/pando/tls/tls.key',
      PANDO_NAMESPACE: 'security',
      PANDO_BODY_TIMEOUT_MS: '4000',
      PANDO_BODY_STALL_MS: '1000',
    });
    assert.equal(config.port, 9443);
    assert.equal(config.defaultMode, 'enforce');
    assert.deepEqual(config.excludedNamespaces, ['kube-system', 'infra']);
    assert.equal(config.sidecar.version, '2.1.0');
    assert.equal(config.sidecar.native, false);
    assert.equal(config.sidecar.resources.limits.memory, '1Gi');
    assert.deepEqual(config.tls, { certFile: '/etc/pando/tls/tls.crt', keyFile: '/etc/pando/tls/tls.key' });
    assert.equal(config.namespace, 'security');
    assert.equal(config.bodyTimeoutMs, 4000);
    assert.equal(config.bodyStallMs, 1000);
  });

  const bad: Array<[Record<string, string>, string, RegExp]> = [
    [{ PANDO_PORT: '70000' }, 'PANDO_PORT', /not a TCP port/],
    [{ PANDO_PORT: 'http' }, 'PANDO_PORT', /not a TCP port/],
    [{ PANDO_DEFAULT_MODE: 'paranoid' }, 'PANDO_DEFAULT_MODE', /"paranoid" is not one of monitor, enforce, debug/],
    [{ PANDO_SIDECAR_NATIVE: 'yes' }, 'PANDO_SIDECAR_NATIVE', /neither "true" nor "false"/],
    [{ PANDO_EXCLUDED_NAMESPACES: 'Kube_System' }, 'PANDO_EXCLUDED_NAMESPACES', /not a valid namespace/],
    [{ PANDO_SIDECAR_IMAGE: 'registry.example/sidecar@sha256:abc' }, 'PANDO_SIDECAR_VERSION', /required when PANDO_SIDECAR_IMAGE has no tag/],
    [{ PANDO_SIDECAR_RESOURCES: '{' }, 'PANDO_SIDECAR_RESOURCES', /not valid JSON/],
    [{ PANDO_SIDECAR_RESOURCES: '{"requests":{"cpu":"lots","memory":"1Gi"},"limits":{"cpu":"1","memory":"1Gi"}}' }, 'PANDO_SIDECAR_RESOURCES', /requests.cpu "lots" is not a Kubernetes quantity/],
    [{ PANDO_SIDECAR_RESOURCES: '{"requests":{"cpu":"1"},"limits":{"cpu":"1","memory":"1Gi"}}' }, 'PANDO_SIDECAR_RESOURCES', /requests.memory is required/],
    [{ PANDO_TLS_CERT_FILE: '/x.crt' }, 'PANDO_TLS_KEY_FILE', /must be set together/],
    [{ PANDO_METRICS_PORT: '8443' }, 'PANDO_METRICS_PORT', /must differ/],
    [{ PANDO_LOG_LEVEL: 'loud' }, 'PANDO_LOG_LEVEL', /not one of/],
    [{ PANDO_BODY_TIMEOUT_MS: '0' }, 'PANDO_BODY_TIMEOUT_MS', /not a whole number from 1 to 30000/],
    [{ PANDO_BODY_STALL_MS: '2s' }, 'PANDO_BODY_STALL_MS', /not a whole number/],
    [{ PANDO_BODY_TIMEOUT_MS: '1000', PANDO_BODY_STALL_MS: '1500' }, 'PANDO_BODY_STALL_MS', /must not be longer than PANDO_BODY_TIMEOUT_MS \(1000\)/],
  ];
  for (const [env, variable, reason] of bad) {
    it(`rejects ${JSON.stringify(env).slice(0, 70)}: names ${variable}`, () => {
      assert.throws(() => loadConfig(env), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.variable, variable);
        assert.match(err.message, reason);
        assert.ok(err.message.startsWith(`${variable}: `));
        return true;
      });
    });
  }

  it('watchdog: off unless asked (the chart asks), then report-only with the documented limits', () => {
    assert.equal(loadConfig({}).watchdog, null);
    assert.deepEqual(loadConfig({ PANDO_WATCHDOG: 'true' }).watchdog, {
      heal: 'off', restartStale: false, restartsPerMinute: 5, workloadCooldownMs: 600_000, resyncMs: 60_000,
      // Without the chart's env: its built-in exclusions and our label.
      namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public', 'kube-node-lease', 'pando-system'] }, { key: 'pandocore.xyz/injection', operator: 'NotIn', values: ['disabled'] }] },
      objectSelector: { matchLabels: { 'pandocore.xyz/protect': 'true' } },
    });
    assert.throws(() => loadConfig({ PANDO_WATCHDOG: 'true', PANDO_WEBHOOK_NAMESPACE_SELECTOR: '{"matchExpressions":[{"key":"a","operator":"Near"}]}' }), /PANDO_WEBHOOK_NAMESPACE_SELECTOR: is not a label selector: matchExpressions\[0\] needs a key and an operator/);
    assert.throws(() => loadConfig({ PANDO_WATCHDOG: 'true', PANDO_WEBHOOK_OBJECT_SELECTOR: 'protect=true' }), /PANDO_WEBHOOK_OBJECT_SELECTOR: is not JSON/);
    const heal = loadConfig({ PANDO_WATCHDOG: 'true', PANDO_WATCHDOG_HEAL: 'restart', PANDO_WATCHDOG_RESTART_STALE: 'true', PANDO_WATCHDOG_RESTARTS_PER_MINUTE: '2' }).watchdog;
    // restartStale of earlier values now turns the rollout on, which then alone restarts stale workloads.
    const upgraded = loadConfig({ PANDO_WATCHDOG: 'true', PANDO_WATCHDOG_HEAL: 'restart', PANDO_WATCHDOG_RESTART_STALE: 'true', PANDO_WATCHDOG_RESTARTS_PER_MINUTE: '2' });
    assert.deepEqual([heal?.heal, heal?.restartStale, heal?.restartsPerMinute, upgraded.rollout?.maxConcurrent], ['restart', false, 2, 4]);
    const legacy = loadConfig({ PANDO_WATCHDOG: 'true', PANDO_WATCHDOG_RESTART_STALE: 'true', PANDO_ROLLOUT: 'false' });
    assert.deepEqual([legacy.watchdog?.restartStale, legacy.rollout], [true, null], 'the rate-limited restart of stale pods stays reachable with PANDO_ROLLOUT=false');
    assert.throws(() => loadConfig({ PANDO_WATCHDOG: 'true', PANDO_WATCHDOG_HEAL: 'delete' }), /PANDO_WATCHDOG_HEAL: "delete" is not one of off, restart/);
    assert.throws(() => loadConfig({ PANDO_WATCHDOG: 'true', PANDO_WATCHDOG_RESTARTS_PER_MINUTE: '0' }), /PANDO_WATCHDOG_RESTARTS_PER_MINUTE/);
  });

  it('rollout: off unless asked, then the documented defaults; bad values name the variable', () => {
    assert.equal(loadConfig({}).rollout, null);
    assert.deepEqual(loadConfig({ PANDO_ROLLOUT: 'true' }).rollout, { maxConcurrent: 4, soakMs: 120_000, readyDeadlineMs: 600_000, canarySelector: 'pandocore.xyz/rollout-canary=true', intervalMs: 10_000 });
    const set = loadConfig({ PANDO_ROLLOUT: 'true', PANDO_ROLLOUT_MAX_CONCURRENT: '10', PANDO_ROLLOUT_SOAK_SECONDS: '0', PANDO_ROLLOUT_CANARY_SELECTOR: 'team in (canary)' }).rollout;
    assert.deepEqual([set?.maxConcurrent, set?.soakMs, set?.canarySelector], [10, 0, 'team in (canary)']);
    assert.throws(() => loadConfig({ PANDO_ROLLOUT: 'yes' }), /PANDO_ROLLOUT: /);
    assert.throws(() => loadConfig({ PANDO_ROLLOUT: 'true', PANDO_ROLLOUT_MAX_CONCURRENT: '0' }), /PANDO_ROLLOUT_MAX_CONCURRENT/);
    assert.throws(() => loadConfig({ PANDO_ROLLOUT: 'true', PANDO_ROLLOUT_SOAK_SECONDS: '-5' }), /PANDO_ROLLOUT_SOAK_SECONDS/);
    assert.throws(() => loadConfig({ PANDO_ROLLOUT: 'true', PANDO_ROLLOUT_CANARY_SELECTOR: 'a=b=c' }), /PANDO_ROLLOUT_CANARY_SELECTOR: "a=b=c" is not a label selector term/);
  });

  it('finds the tag of an image reference', () => {
    assert.equal(imageTag('registry:5000/a/b:1.2'), '1.2');
    assert.equal(imageTag('registry:5000/a/b'), undefined);
    assert.equal(imageTag('a/b:1.2@sha256:abc'), '1.2');
  });
});
