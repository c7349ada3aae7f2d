// `pando rollout status | pause | resume`: the sidecar rollout (app/controllers/rollout.ts) as an
// operator sees and steers it. status runs the leader's own planner on what the cluster shows now,
// so it says exactly what the leader will do; pause and resume write the one ConfigMap the leader
// reads (with the resourceVersion read: a concurrent write is retried, never overwritten).
// Exit codes, for pipelines: 0 done, 1 paused, 3 rolling, 2 could not run.

import type { KubeConfig, V1Deployment } from '@kubernetes/client-node';
import { loadConfig, type RolloutConfig } from '../config.ts';
import { ENV, ROLLOUT_CONFIGMAP } from '../contract.ts';
import { buildViews, kubeSnapshot, type ClusterSnapshot } from '../controllers/rollout.ts';
import { WORKLOAD_STATES, planRollout, targetKey, type PersistedState, type RolloutPlan, type Target, type WorkloadState } from '../controllers/rollout-plan.ts';
import { kubeRolloutStore, type RolloutStore } from '../controllers/rollout-state.ts';
import { planInjection } from '../inject/sidecar.ts';
import { CHART, kubeError, loadKubeConfig, readWebhookDeployment, webhookContainer } from './cluster.ts';
import { CliError, jsonSafe, mark, paint, terminalSafe, type Style } from './output.ts';

export const EXIT = Object.freeze({ done: 0, paused: 1, error: 2, rolling: 3 });

export interface RolloutReport {
  target: string;
  version: string;
  enabled: boolean;
  phase: 'done' | 'paused' | 'rolling';
  counts: Record<WorkloadState, number>;
  namespaces: Record<string, Partial<Record<WorkloadState, number>>>;
  /** Workloads not done, with why. */
  workloads: Array<{ workload: string; state: WorkloadState; detail?: string }>;
  paused?: { workload?: string; pod?: string; reason?: string; message: string; fix: string };
  next?: string;
}

const FIX = `fix the sidecar (helm rollback ${CHART.release} -n NS to the last good one, or helm upgrade with a corrected version), then: pando rollout resume`;

/** What status prints, from the plan the leader would make now. Pure. */
export function report(target: Target, enabled: boolean, state: PersistedState, plan: RolloutPlan, releaseNamespace: string): RolloutReport {
  const counts = Object.fromEntries(WORKLOAD_STATES.map((s) => [s, 0])) as Record<WorkloadState, number>;
  const namespaces: RolloutReport['namespaces'] = {};
  const workloads: RolloutReport['workloads'] = [];
  for (const v of [...plan.verdicts.values()].sort((a, b) => (a.key < b.key ? -1 : 1))) {
    counts[v.state]++;
    const ns = v.key.split('/')[0]!;
    const row = (namespaces[ns] ??= {});
    row[v.state] = (row[v.state] ?? 0) + 1;
    const detail = plan.restart.includes(v.key) ? "restarted at the leader's next pass" : v.detail;
    if (v.state !== 'done') workloads.push({ workload: v.key, state: v.state, ...(detail ? { detail } : {}) });
  }
  const failure = state.paused ? state.failure : plan.pause;
  const paused = state.paused || plan.pause !== undefined;
  const fix = FIX.replace('-n NS', `-n ${releaseNamespace}`);
  return {
    target: targetKey(target),
    version: target.version,
    enabled,
    phase: paused ? 'paused' : plan.complete ? 'done' : 'rolling',
    counts,
    namespaces,
    workloads,
    ...(paused
      ? { paused: failure ? { workload: failure.workload, ...(failure.pod ? { pod: failure.pod } : {}), reason: failure.reason, message: failure.message, fix } : { message: 'paused by an operator (pando rollout pause)', fix: 'pando rollout resume' } }
      : {}),
    ...(!paused && plan.restart.length > 0 ? { next: `restart ${plan.restart.join(', ')}` } : plan.wait && !paused ? { next: plan.wait } : {}),
  };
}

export function exitCodeOf(r: RolloutReport): number {
  return EXIT[r.phase];
}

export function formatReport(style: Style, r: RolloutReport): string {
  const status = r.phase === 'done' ? 'ok' : r.phase === 'paused' ? 'fail' : 'warn';
  const lines = [`${mark(style, status)} sidecar rollout to ${terminalSafe(r.target)}: ${paint(style, 'bold', r.phase)}${r.enabled ? '' : ' (rollout.enabled is off: nothing is restarted)'}`];
  lines.push(`  ${WORKLOAD_STATES.map((s) => `${s} ${r.counts[s]}`).join(', ')}`);
  for (const [ns, row] of Object.entries(r.namespaces)) {
    lines.push(`  ${terminalSafe(ns)}: ${WORKLOAD_STATES.filter((s) => row[s]).map((s) => `${s} ${row[s]}`).join(', ')}`);
  }
  for (const w of r.workloads) lines.push(`    ${w.state.padEnd(11)} ${terminalSafe(w.workload)}${w.detail ? `: ${terminalSafe(w.detail)}` : ''}`);
  if (r.paused) {
    const where = [r.paused.workload, r.paused.pod && `pod ${r.paused.pod}`, r.paused.reason].filter(Boolean).join(': ');
    lines.push(`  ${paint(style, 'red', 'paused:')} ${terminalSafe(where ? `${where}: ${r.paused.message}` : r.paused.message)}`);
    lines.push(`  ${paint(style, 'yellow', 'fix:')} ${terminalSafe(r.paused.fix)}`);
  }
  if (r.next) lines.push(`  next: ${terminalSafe(r.next)}`);
  return `${lines.join('\n')}\n`;
}

export interface RolloutDeps {
  /** The webhook Deployment's env (undefined: none installed). */
  webhookEnv(): Promise<Record<string, string> | undefined>;
  store: RolloutStore;
  snapshot(canarySelector: string): Promise<ClusterSnapshot>;
  now(): number;
}

export interface RolloutCommandOptions {
  releaseNamespace: string;
  output: 'text' | 'json';
  context?: string;
}

function deploymentEnv(deployment: V1Deployment): Record<string, string> {
  const values: Record<string, string> = {};
  for (const e of webhookContainer(deployment)?.env ?? []) if (e.value !== undefined) values[e.name] = e.value;
  return values;
}

export function kubeDeps(kc: KubeConfig, releaseNamespace: string): RolloutDeps {
  const store = kubeRolloutStore(kc, releaseNamespace, ROLLOUT_CONFIGMAP);
  const wrap = <T>(doing: string, f: () => Promise<T>) => f().catch((err: unknown) => { throw kubeError(err, doing, kc); });
  return {
    webhookEnv: async () => {
      const d = await readWebhookDeployment(kc, releaseNamespace);
      return d ? deploymentEnv(d) : undefined;
    },
    store: {
      read: () => wrap(`reading ConfigMap ${ROLLOUT_CONFIGMAP} in ${releaseNamespace}`, () => store.read()),
      write: (s, rv) => wrap(`writing ConfigMap ${ROLLOUT_CONFIGMAP} in ${releaseNamespace}`, () => store.write(s, rv)),
    },
    snapshot: (selector) => wrap('listing workloads, ReplicaSets, labelled pods and namespaces', () => kubeSnapshot(kc, selector)()),
    now: Date.now,
  };
}

async function readState(deps: RolloutDeps, releaseNamespace: string) {
  const stored = await deps.store.read();
  if (!stored) throw new CliError(`no ConfigMap ${ROLLOUT_CONFIGMAP} in ${releaseNamespace}: the rollout is not installed`, `helm upgrade ${CHART.release} ${CHART.ref} -n ${releaseNamespace} --reuse-values --set rollout.enabled=true (or --release-namespace NS)`);
  return stored;
}

export async function rolloutStatus(options: RolloutCommandOptions, deps: RolloutDeps): Promise<RolloutReport> {
  const env = await deps.webhookEnv();
  if (!env) throw new CliError(`no Deployment ${CHART.deployment} in ${options.releaseNamespace}`, 'install the chart, or pass --release-namespace NS');
  let config;
  try {
    config = loadConfig({ ...env, [ENV.namespace]: env[ENV.namespace] ?? options.releaseNamespace });
  } catch (err) {
    throw new CliError(`the webhook Deployment's settings do not load: ${(err as Error).message}`, `kubectl -n ${options.releaseNamespace} get deployment ${CHART.deployment} -o yaml`);
  }
  const stored = await readState(deps, options.releaseNamespace);
  const plan = planInjection(config);
  const target: Target = { version: plan.version, configHash: plan.configHash };
  const limits: RolloutConfig = config.rollout ?? loadConfig({ [ENV.rollout]: 'true' }).rollout!;
  const excluded = new Set(config.excludedNamespaces);
  const snapshot = await deps.snapshot(limits.canarySelector);
  const views = buildViews(snapshot, target, (ns) => (ns === config.namespace ? 'own-namespace' : excluded.has(ns) ? 'namespace-excluded' : undefined));
  const rolloutPlan = planRollout({ target, workloads: views, state: stored.state, limits, now: deps.now() });
  return report(target, config.rollout !== null, stored.state, rolloutPlan, options.releaseNamespace);
}

/** pause (paused: true) or resume (paused: false, failure cleared), retried on a conflicting write. */
export async function setPaused(paused: boolean, options: RolloutCommandOptions, deps: RolloutDeps): Promise<PersistedState> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const stored = await readState(deps, options.releaseNamespace);
    const { failure: _failure, ...rest } = stored.state;
    const next: PersistedState = paused ? { ...stored.state, paused: true } : { ...rest, paused: false };
    if (await deps.store.write(next, stored.resourceVersion)) return next;
  }
  throw new CliError(`ConfigMap ${ROLLOUT_CONFIGMAP} kept changing while writing it`, 'run the command again');
}

export async function runRollout(action: 'status' | 'pause' | 'resume', options: RolloutCommandOptions, io: { stdout(text: string): void; style: Style }, deps?: RolloutDeps): Promise<number> {
  const d = deps ?? kubeDeps(loadKubeConfig(options.context), options.releaseNamespace);
  if (action === 'status') {
    const r = await rolloutStatus(options, d);
    io.stdout(options.output === 'json' ? `${jsonSafe(JSON.stringify(r, null, 2))}\n` : formatReport(io.style, r));
    return exitCodeOf(r);
  }
  const state = await setPaused(action === 'pause', options, d);
  const text = action === 'pause'
    ? 'rollout paused: no further workload is restarted (workloads already restarting finish their own rollout); resume with: pando rollout resume'
    : 'rollout resumed: the leader continues at its next pass (within 10 s); watch it with: pando rollout status';
  io.stdout(options.output === 'json' ? `${JSON.stringify({ action, state })}\n` : `${mark(io.style, 'ok')} ${text}\n`);
  return 0;
}
