// `pando rollout status | pause | resume` (app/cli/rollout.ts) against a fake cluster: what status
// prints and its exit code per phase (0 done, 1 paused, 3 rolling, 2 could not run), and what pause
// and resume write. The same commands on the real API server: test/e2e/rollout.e2e.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runRollout, type RolloutDeps } from '../../app/cli/rollout.ts';
import { PLAIN } from '../../app/cli/output.ts';
import { CliError } from '../../app/cli/output.ts';
import { slimRolloutPod, slimWorkload, type ClusterSnapshot } from '../../app/controllers/rollout.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { loadConfig } from '../../app/config.ts';
import type { PersistedState } from '../../app/controllers/rollout-plan.ts';

const ENV = { PANDO_NAMESPACE: 'pando-system', PANDO_SIDECAR_IMAGE: 'registry.example.invalid/sidecar:2.0.0', PANDO_ROLLOUT: 'true', PANDO_ROLLOUT_SOAK_SECONDS: '60' };
const PLAN = planInjection(loadConfig(ENV));
const TARGET = `${PLAN.version}/${PLAN.configHash}`;
const NOW = Date.parse('2026-12-01T00:10:00Z');

function deployment(namespace: string, name: string, opts: { version: string; restarted?: boolean; crash?: boolean }) {
  const workload = slimWorkload('Deployment', {
    metadata: { name, namespace, generation: 2 },
    spec: { replicas: 1, template: { metadata: { annotations: opts.restarted ? { 'kubectl.kubernetes.io/restartedAt': '2026-12-01T00:00:00Z', 'pandocore.xyz/rollout-target': TARGET } : {} } } },
    status: { observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
  });
  const hash = opts.version === PLAN.version ? PLAN.configHash : 'aaaaaaaaaaaa';
  const pod = slimRolloutPod({
    metadata: { name: `${name}-1`, namespace, annotations: { 'pandocore.xyz/status': 'injected', 'pandocore.xyz/version': opts.version, 'pandocore.xyz/config-hash': hash }, ownerReferences: [{ kind: 'ReplicaSet', name: `${name}-rs`, controller: true }] },
    status: { initContainerStatuses: [{ name: 'pando-sidecar', ready: !opts.crash, restartCount: 0, state: opts.crash ? { waiting: { reason: 'CrashLoopBackOff' } } : { running: { startedAt: '2026-12-01T00:01:00Z' } } }] },
  });
  return { workload, pod, rs: [`${namespace}/${name}-rs`, name] as const };
}

function deps(state: PersistedState | undefined, items: ReturnType<typeof deployment>[], env: Record<string, string> | null = ENV) {
  const written: PersistedState[] = [];
  let rv = 1;
  let conflicts = 0;
  const d: RolloutDeps & { written: PersistedState[]; conflictOnce(): void } = {
    written,
    conflictOnce: () => void (conflicts = 1),
    webhookEnv: async () => env ?? undefined,
    store: {
      read: async () => (state ? { state, resourceVersion: String(rv) } : undefined),
      write: async (next, at) => {
        if (conflicts-- > 0) {
          rv++;
          return false;
        }
        assert.equal(at, String(rv));
        written.push(next);
        state = next;
        rv++;
        return true;
      },
    },
    snapshot: async (): Promise<ClusterSnapshot> => ({ workloads: items.map((i) => i.workload), pods: items.map((i) => i.pod), replicaSetOwners: new Map(items.map((i) => i.rs)), canaryNamespaces: new Set() }),
    now: () => NOW,
  };
  return d;
}

async function status(d: RolloutDeps, output: 'text' | 'json' = 'text') {
  let out = '';
  const code = await runRollout('status', { releaseNamespace: 'pando-system', output }, { stdout: (t) => void (out += t), style: PLAIN }, d);
  return { code, out };
}

describe('pando rollout status', () => {
  it('done: exit 0, counts', async () => {
    const { code, out } = await status(deps({ target: TARGET, paused: false }, [deployment('a', 'x', { version: '2.0.0', restarted: true }), deployment('b', 'y', { version: '2.0.0' })]));
    assert.equal(code, 0);
    assert.match(out, /^ok {3}sidecar rollout to 2\.0\.0\/[0-9a-f]{12}: done\n {2}done 2, in-progress 0, waiting 0, failed 0, manual 0, skipped 0\n/);
  });

  it('rolling: exit 3, per namespace, what waits and why', async () => {
    const { code, out } = await status(deps({ target: TARGET, paused: false }, [deployment('a', 'x', { version: '2.0.0', restarted: true }), deployment('b', 'y', { version: '1.0.0' }), deployment('b', 'z', { version: '1.0.0' })]));
    assert.equal(code, 3);
    assert.match(out, /rolling/);
    assert.match(out, / {2}b: waiting 2\n/);
    assert.match(out, /waiting {5}b\/Deployment\/y: restarted at the leader's next pass\n/);
    assert.match(out, /waiting {5}b\/Deployment\/z: waiting: one workload at a time in this namespace\n/);
    assert.match(out, /next: restart b\/Deployment\/y\n/);
  });

  it('paused on a failure: exit 1, workload, pod, reason and the fix', async () => {
    const failure = { workload: 'a/Deployment/x', pod: 'x-1', reason: 'CrashLoopBackOff', message: 'the new sidecar of pod x-1 is in CrashLoopBackOff', at: NOW };
    const { code, out } = await status(deps({ target: TARGET, paused: true, failure }, [deployment('a', 'x', { version: '2.0.0', restarted: true, crash: true }), deployment('b', 'y', { version: '1.0.0' })]));
    assert.equal(code, 1);
    assert.match(out, /^FAIL sidecar rollout to .*: paused/);
    assert.match(out, /paused: a\/Deployment\/x: pod x-1: CrashLoopBackOff: the new sidecar of pod x-1 is in CrashLoopBackOff/);
    assert.match(out, /fix: fix the sidecar \(helm rollback pando-webhook -n pando-system .*pando rollout resume/);
    assert.match(out, /failed {6}a\/Deployment\/x/);
  });

  it('a failure the leader has not recorded yet already reads as paused (exit 1); -o json', async () => {
    const { code, out } = await status(deps({ target: TARGET, paused: false }, [deployment('a', 'x', { version: '2.0.0', restarted: true, crash: true })]), 'json');
    assert.equal(code, 1);
    const r = JSON.parse(out);
    assert.equal(r.phase, 'paused');
    assert.equal(r.paused.reason, 'CrashLoopBackOff');
    assert.equal(r.counts.failed, 1);
  });

  it('could not run: no webhook Deployment, no ConfigMap (exit 2 through CliError, with the fix)', async () => {
    await assert.rejects(status(deps({ paused: false }, [], null)), (err: CliError) => err.exitCode === 2 && /no Deployment pando-webhook/.test(err.message));
    await assert.rejects(status(deps(undefined, [])), (err: CliError) => err.exitCode === 2 && /rollout.enabled=true/.test(err.hint!));
  });
});

describe('pando rollout pause | resume', () => {
  it('pause sets paused and keeps the target; resume clears paused and the failure; a conflicting write is retried', async () => {
    const failure = { workload: 'a/Deployment/x', reason: 'CrashLoopBackOff', message: 'm', at: NOW };
    const d = deps({ target: TARGET, paused: false }, []);
    d.conflictOnce();
    let out = '';
    assert.equal(await runRollout('pause', { releaseNamespace: 'pando-system', output: 'text' }, { stdout: (t) => void (out += t), style: PLAIN }, d), 0);
    assert.deepEqual(d.written, [{ target: TARGET, paused: true }]);
    assert.match(out, /rollout paused/);
    const r = deps({ target: TARGET, paused: true, failure }, []);
    assert.equal(await runRollout('resume', { releaseNamespace: 'pando-system', output: 'text' }, { stdout: () => undefined, style: PLAIN }, r), 0);
    assert.deepEqual(r.written, [{ target: TARGET, paused: false }]);
  });
});
