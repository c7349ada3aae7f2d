// npm run lint:chart [-- --chart DIR]: kube-score (scripts/tools/kube-score.sh builds it) on
// `helm template` of dist/pando-webhook with each render of charts-src/helm/kube-score.ts. Prints
// one line per render (checks OK, WARNING, CRITICAL, skipped) and fails naming each WARNING or
// CRITICAL that is not in ACCEPTED_FINDINGS, and each accepted finding that no longer occurs.
// --chart scores another chart folder (an older dist/, to compare).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ACCEPTED_FINDINGS, KUBE_SCORE_RENDERS, type AcceptedFinding, type KubeScoreRender } from '../../charts-src/helm/kube-score.ts';

const root = resolve(import.meta.dirname, '../..');
export const KUBE_SCORE = join(root, '.tools/bin/kube-score');
const HELM = join(root, '.tools/bin/helm');
export const CHART_DIR = join(root, 'dist/pando-webhook');
const NAMESPACE = 'pando-system';
/** The e2e's Kubernetes, as the chart tests render with: kube-score's stable-version check reads it too. */
export const KUBE_VERSION = '1.37.2';

/** Builds what is missing (each script returns at once when its stamp matches). */
export function ensureTools(): void {
  for (const script of ['scripts/tools/helm.sh', 'scripts/tools/kube-score.sh']) {
    const r = spawnSync('bash', [join(root, script)], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`${script} failed`);
  }
}

export function helmTemplate(values: unknown, chart = CHART_DIR): string {
  const dir = mkdtempSync(join(tmpdir(), 'pando-kube-score-'));
  try {
    const file = join(dir, 'values.json');
    writeFileSync(file, JSON.stringify(values));
    const home = join(root, '.tools/helm');
    const r = spawnSync(HELM, ['template', 'pando-webhook', chart, '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION, '-f', file], {
      encoding: 'utf8',
      env: { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') },
      timeout: 120_000,
    });
    if (r.status !== 0) throw new Error(`helm template ${chart} failed: ${r.stderr || r.error?.message}`);
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** kube-score's JSON output (v2), the fields read here. */
interface ScoredObject {
  type_meta: { kind: string };
  object_meta: { name: string };
  checks: { check: { id: string }; grade: number; skipped: boolean; comments: { path: string; summary: string }[] | null }[];
}

const GRADE_CRITICAL = 1;
const GRADE_WARNING = 5;

export interface Finding {
  readonly render: string;
  readonly check: string;
  readonly object: string;
  readonly grade: 'CRITICAL' | 'WARNING';
  readonly summary: string;
}

export interface Counts {
  ok: number;
  warning: number;
  critical: number;
  skipped: number;
}

export interface RenderScore {
  readonly render: string;
  readonly counts: Counts;
  readonly findings: Finding[];
}

/** Runs kube-score on the manifests; it exits 1 when anything is CRITICAL, which is not an error here. */
export function kubeScore(render: string, manifests: string): RenderScore {
  const r = spawnSync(KUBE_SCORE, ['score', '--output-format', 'json', '--kubernetes-version', `v${KUBE_VERSION.split('.').slice(0, 2).join('.')}`, '-'], {
    input: manifests,
    encoding: 'utf8',
    timeout: 120_000,
  });
  let objects: ScoredObject[];
  try {
    if (r.status !== 0 && r.status !== 1) throw new Error(`exit ${r.status}`);
    objects = JSON.parse(r.stdout) as ScoredObject[];
  } catch (e) {
    throw new Error(`kube-score failed on the ${render} render (${(e as Error).message}): ${r.stderr || r.error?.message || r.stdout.slice(0, 500)}`);
  }
  const counts: Counts = { ok: 0, warning: 0, critical: 0, skipped: 0 };
  const findings: Finding[] = [];
  for (const o of objects) {
    for (const c of o.checks) {
      if (c.skipped) {
        counts.skipped++;
        continue;
      }
      if (c.grade > GRADE_WARNING) {
        counts.ok++;
        continue;
      }
      const grade = c.grade <= GRADE_CRITICAL ? 'CRITICAL' : 'WARNING';
      counts[grade === 'CRITICAL' ? 'critical' : 'warning']++;
      const summary = (c.comments ?? []).map((m) => `${m.path ? `(${m.path}) ` : ''}${m.summary}`).join('; ');
      findings.push({ render, check: c.check.id, object: `${o.type_meta.kind}/${o.object_meta.name}`, grade, summary });
    }
  }
  findings.sort((a, b) => `${a.object} ${a.check}`.localeCompare(`${b.object} ${b.check}`));
  return { render, counts, findings };
}

export interface LintResult {
  readonly scores: RenderScore[];
  /** WARNING or CRITICAL findings no accepted entry covers. */
  readonly unaccepted: Finding[];
  /** Accepted entries that did not occur in a render they name. */
  readonly stale: { render: string; accepted: AcceptedFinding }[];
}

const covers = (a: AcceptedFinding, f: Finding) => a.check === f.check && a.object === f.object && a.renders.includes(f.render);

export function judge(scores: RenderScore[], accepted: readonly AcceptedFinding[] = ACCEPTED_FINDINGS): LintResult {
  const unaccepted = scores.flatMap((s) => s.findings.filter((f) => !accepted.some((a) => covers(a, f))));
  const stale = accepted.flatMap((a) =>
    a.renders.filter((render) => scores.some((s) => s.render === render) && !scores.some((s) => s.render === render && s.findings.some((f) => covers(a, f)))).map((render) => ({ render, accepted: a })),
  );
  return { scores, unaccepted, stale };
}

export function lintChart(options: { chart?: string; renders?: readonly KubeScoreRender[]; accepted?: readonly AcceptedFinding[] } = {}): LintResult {
  const renders = options.renders ?? KUBE_SCORE_RENDERS;
  const scores = renders.map((r) => kubeScore(r.name, helmTemplate(r.values, options.chart)));
  return judge(scores, options.accepted);
}

export function summaryLine(s: RenderScore): string {
  const { ok, warning, critical, skipped } = s.counts;
  return `kube-score ${s.render}: ${ok} OK, ${warning} WARNING, ${critical} CRITICAL (${skipped} skipped)`;
}

/** The failure report: one line per finding not accepted and per accepted finding gone. */
export function problems(result: LintResult): string[] {
  return [
    ...result.unaccepted.map((f) => `${f.grade} not accepted: ${f.check} on ${f.object} (${f.render} render): ${f.summary}`),
    ...result.stale.map(({ render, accepted }) => `accepted but no longer found: ${accepted.check} on ${accepted.object} (${render} render): remove it from ACCEPTED_FINDINGS in charts-src/helm/kube-score.ts (or its render)`),
  ];
}

if (import.meta.main) {
  const at = process.argv.indexOf('--chart');
  const chart = at >= 0 && process.argv[at + 1] ? resolve(process.argv[at + 1]!) : CHART_DIR;
  const t0 = performance.now();
  try {
    ensureTools();
    const result = lintChart({ chart });
    for (const s of result.scores) console.log(summaryLine(s));
    const found = problems(result);
    if (found.length > 0) {
      for (const line of found) console.error(line);
      console.error(`npm run lint:chart: ${found.length} problem(s); the accepted findings and why: charts-src/helm/kube-score.ts`);
      process.exitCode = 1;
    } else {
      const count = result.scores.reduce((n, s) => n + s.findings.length, 0);
      console.log(`kube-score: only accepted findings (${count} in ${result.scores.length} renders, charts-src/helm/kube-score.ts), ${Math.round(performance.now() - t0)} ms`);
    }
  } catch (e) {
    console.error(`npm run lint:chart: ${(e as Error).message.trim()}`);
    process.exitCode = 1;
  }
}
