// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by where the code lives
// (our app, a dependency, Node itself, GC), so the results can say where a review's time goes.

import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  /** µs since the previous sample (the first: since startTime) */
  timeDeltas?: number[];
}

export interface ProfileEntry {
  /** function (file:line), or a group such as `fastify` or `(garbage collector)` */
  name: string;
  group: string;
  selfPercent: number;
}

function where(url: string, root: string): { file: string; group: string } {
  if (url === '') return { file: '', group: 'native/V8' };
  if (url.startsWith('node:')) return { file: url, group: 'node' };
  const path = url.startsWith('file:') ? fileURLToPath(url) : url;
  const rel = relative(root, path);
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(rel);
  if (dep) return { file: `${dep[1]}/${dep[2]}`, group: dep[1]! };
  if (rel.startsWith('build/app/')) return { file: rel, group: 'app' };
  return { file: rel, group: 'other' };
}

/**
 * Top `limit` functions by self time, then self time by group; percentages of all non-idle samples
 * from `skipMicros` on (so that loading the modules at start does not count).
 */
export function summariseProfile(profile: CpuProfile, root: string, limit: number, skipMicros = 0): ProfileEntry[] {
  const hits = new Map<number, number>();
  let elapsed = 0;
  (profile.samples ?? []).forEach((id, i) => {
    elapsed += profile.timeDeltas?.[i] ?? 0;
    if (elapsed >= skipMicros) hits.set(id, (hits.get(id) ?? 0) + 1);
  });
  const byFunction = new Map<string, { group: string; count: number }>();
  const byGroup = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const count = profile.samples ? (hits.get(node.id) ?? 0) : (node.hitCount ?? 0);
    const { functionName, url, lineNumber } = node.callFrame;
    if (count === 0 || functionName === '(idle)') continue;
    total += count;
    const { file, group } = functionName.startsWith('(') ? { file: '', group: functionName } : where(url, root);
    const name = file ? `${functionName || '(anonymous)'} (${file}:${lineNumber + 1})` : functionName || '(anonymous)';
    const entry = byFunction.get(name) ?? { group, count: 0 };
    entry.count += count;
    byFunction.set(name, entry);
    byGroup.set(group, (byGroup.get(group) ?? 0) + count);
  }
  const percent = (count: number) => Math.round((count / Math.max(1, total)) * 1000) / 10;
  const functions = [...byFunction].sort((a, b) => b[1].count - a[1].count).slice(0, limit)
    .map(([name, { group, count }]) => ({ name, group, selfPercent: percent(count) }));
  const groups = [...byGroup].sort((a, b) => b[1] - a[1]).slice(0, limit)
    .map(([group, count]) => ({ name: `[${group}]`, group, selfPercent: percent(count) }));
  return [...functions, ...groups];
}
