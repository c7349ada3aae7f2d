// sidecar.startupProbe (PANDO_SIDECAR_STARTUP_PROBE): what the webhook accepts and refuses, what it
// injects, and what it means for pods injected before or after the value changed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { loadConfig } from '../app/config.ts';
import { planRollout, podHealth } from '../app/controllers/rollout-plan.ts';
import { ENV } from '../app/contract.ts';
import { ConfigError } from '../app/errors.ts';
import { planInjection } from '../app/inject/sidecar.ts';
import { STARTUP_PROBE_SCHEMA, parseStartupProbe, startupBudgetSeconds } from '../app/startup-probe.ts';

const NAME = ENV.sidecarStartupProbe;
const STANDIN = { exec: { command: ['/pando-sidecar', 'probe'] }, periodSeconds: 1, failureThreshold: 30 };
const validate = new Ajv({ strict: false }).compile(STARTUP_PROBE_SCHEMA);

const accepted: [string, unknown][] = [
  ['the stand-in\'s exec probe', STANDIN],
  ['httpGet with a named port, scheme and a header', { httpGet: { path: '/ready', port: 'admin', scheme: 'HTTPS', httpHeaders: [{ name: 'X-Probe', value: '1' }] }, timeoutSeconds: 2 }],
  ['httpGet with only a port', { httpGet: { port: 8080 } }],
  ['tcpSocket', { tcpSocket: { port: 9000 }, initialDelaySeconds: 0 }],
  ['grpc with a service', { grpc: { port: 9090, service: 'pando' }, successThreshold: 1 }],
];

const refused: [string, unknown, RegExp][] = [
  ['no handler', { periodSeconds: 1 }, /needs one of exec, httpGet, tcpSocket, grpc/],
  ['two handlers', { exec: { command: ['x'] }, tcpSocket: { port: 1 } }, /exec and tcpSocket: a probe has exactly one handler/],
  ['an empty command', { exec: { command: [] } }, /exec.command must be a non-empty list/],
  ['httpGet.host (Pod Security baseline refuses it)', { httpGet: { path: '/', port: 80, host: 'sidecar.example.invalid' } }, /httpGet.host is not allowed: Pod Security/],
  ['tcpSocket.host', { tcpSocket: { port: 80, host: 'db' } }, /tcpSocket.host is not allowed/],
  ['a port out of range', { tcpSocket: { port: 70000 } }, /tcpSocket.port 70000 is not a port/],
  ['a port name of digits only', { tcpSocket: { port: '8080' } }, /tcpSocket.port "8080" is not a port/],
  ['a port name with two hyphens', { httpGet: { port: 'a--b' } }, /httpGet.port "a--b" is not a port/],
  ['a grpc port name', { grpc: { port: 'grpc' } }, /grpc.port "grpc" is not a port \(1-65535\)/],
  ['periodSeconds 0', { exec: { command: ['x'] }, periodSeconds: 0 }, /periodSeconds 0 is not a whole number from 1/],
  ['a negative initial delay', { exec: { command: ['x'] }, initialDelaySeconds: -1 }, /initialDelaySeconds -1/],
  ['failureThreshold as a string', { exec: { command: ['x'] }, failureThreshold: '3' }, /failureThreshold "3"/],
  ['successThreshold 2 (the API server requires 1)', { exec: { command: ['x'] }, successThreshold: 2 }, /successThreshold 2 must be 1/],
  ['a field of another probe kind', { exec: { command: ['x'] }, terminationGracePeriodSeconds: 5 }, /unknown field "terminationGracePeriodSeconds"/],
  ['a list', [STANDIN], /the probe must be an object/],
];

describe('sidecar.startupProbe: parsing (app/config.ts) and the chart schema agree', () => {
  it('unset, empty, {} and null are no probe: the config is what it was', () => {
    for (const text of [undefined, '', '  ', '{}', 'null']) assert.equal(parseStartupProbe(NAME, text), undefined, String(text));
    assert.ok(!('startupProbe' in loadConfig({}).sidecar));
    assert.ok(!('startupProbe' in loadConfig({ [NAME]: '{}' }).sidecar));
    assert.ok(validate({}), 'the schema accepts the default {}');
  });

  for (const [what, probe] of accepted) {
    it(`accepts ${what}`, () => {
      assert.deepEqual(parseStartupProbe(NAME, JSON.stringify(probe)), probe);
      assert.ok(validate(probe), JSON.stringify(validate.errors));
    });
  }

  for (const [what, probe, message] of refused) {
    it(`refuses ${what}, naming the variable`, () => {
      assert.throws(() => loadConfig({ [NAME]: JSON.stringify(probe) }), (err: unknown) => err instanceof ConfigError && err.message.startsWith(`${NAME}: `) && message.test(err.message));
      assert.equal(validate(probe), false, `the chart schema refuses it too: ${JSON.stringify(probe)}`);
    });
  }

  it('refuses text that is not JSON', () => {
    assert.throws(() => loadConfig({ [NAME]: '{exec: ' }), /PANDO_SIDECAR_STARTUP_PROBE: is not JSON/);
  });

  it('the parsed probe is frozen: no pod can change it', () => {
    const probe = loadConfig({ [NAME]: JSON.stringify(STANDIN) }).sidecar.startupProbe!;
    assert.ok(Object.isFrozen(probe) && Object.isFrozen(probe.exec) && Object.isFrozen(probe.exec!.command));
  });

  it('with the rollout on, a probe that may take as long as its ready deadline is refused (the rollout would pause on a sidecar still starting)', () => {
    assert.equal(startupBudgetSeconds(STANDIN), 30);
    assert.equal(startupBudgetSeconds({ exec: { command: ['x'] } }), 30, 'the API server defaults: 10 s x 3');
    const slow = JSON.stringify({ exec: { command: ['x'] }, initialDelaySeconds: 60, periodSeconds: 10, failureThreshold: 54 });
    assert.throws(() => loadConfig({ [NAME]: slow, [ENV.rollout]: 'true' }), /allows 600 s to start .* not less than PANDO_ROLLOUT_READY_DEADLINE_SECONDS \(600\)/);
    assert.ok(loadConfig({ [NAME]: slow, [ENV.rollout]: 'true', [ENV.rolloutReadyDeadlineSeconds]: '900' }).sidecar.startupProbe);
    assert.ok(loadConfig({ [NAME]: slow }).sidecar.startupProbe, 'without the rollout nothing judges the start');
  });
});

describe('sidecar.startupProbe: injection', () => {
  const without = planInjection(loadConfig({}));
  const withProbe = planInjection(loadConfig({ [NAME]: JSON.stringify(STANDIN) }));

  it('the sidecar gains the probe, nothing else changes', () => {
    const a = without.sidecar('monitor', undefined);
    const b = withProbe.sidecar('monitor', undefined);
    assert.equal(a.startupProbe, undefined);
    assert.deepEqual(b.startupProbe, STANDIN);
    const { startupProbe: _, ...rest } = b;
    assert.deepEqual(rest, a);
  });

  it('the config hash is unchanged without the value, and differs with it (pods injected before it count as stale, as after a resources change)', () => {
    assert.equal(planInjection(loadConfig({ [NAME]: '{}' })).configHash, without.configHash);
    assert.notEqual(withProbe.configHash, without.configHash);
    const resources = planInjection(loadConfig({ [ENV.sidecarResources]: '{"requests":{"cpu":"60m","memory":"64Mi"},"limits":{"cpu":"200m","memory":"128Mi"}}' }));
    assert.notEqual(resources.configHash, without.configHash, 'the same rule as resources');
    const other = planInjection(loadConfig({ [NAME]: JSON.stringify({ ...STANDIN, failureThreshold: 10 }) }));
    assert.notEqual(other.configHash, withProbe.configHash, 'another probe is another config');
  });
});

describe('sidecar.startupProbe: the rollout reads a sidecar still probing as starting, not failing', () => {
  // The sidecar's status while its probe has not passed yet, as the node showed it: running,
  // started false, ready false (kubelet v1.37.2 prober_manager: a restartable init container is
  // Ready only once started).
  const TARGET = { version: '1.0.0', configHash: 'bbbbbbbbbbbb' };
  const pod = {
    metadata: { name: 'web-1', annotations: { 'pandocore.xyz/status': 'injected', 'pandocore.xyz/version': TARGET.version, 'pandocore.xyz/config-hash': TARGET.configHash } },
    status: { initContainerStatuses: [{ name: 'pando-sidecar', ready: false, started: false, restartCount: 0, state: { running: { startedAt: '2026-12-06T10:01:31Z' } } }] },
  };

  it('podHealth: current, not Ready, no problem, no restart; the plan waits, no pause', () => {
    const health = podHealth(pod, TARGET, 'pando-sidecar');
    assert.deepEqual({ current: health.current, sidecarReady: health.sidecarReady, restartCount: health.restartCount, problem: health.problem }, { current: true, sidecarReady: false, restartCount: 0, problem: undefined });
    const now = Date.parse('2026-12-06T10:01:40Z');
    const plan = planRollout({
      target: TARGET,
      workloads: [{ kind: 'Deployment', namespace: 'shop', name: 'web', size: 1, manual: false, canary: false, restartedFor: `${TARGET.version}/${TARGET.configHash}`, restartedAt: now - 9000, complete: false, progressDeadlineExceeded: false, pods: [health] }],
      state: { paused: false },
      limits: { maxConcurrent: 4, soakMs: 30_000, readyDeadlineMs: 60_000 },
      now,
    });
    assert.equal(plan.pause, undefined, 'no pause while the probe runs');
    assert.equal(plan.verdicts.get('shop/Deployment/web')?.state, 'in-progress');
  });
});
