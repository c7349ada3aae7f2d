// The static import graph of our own TypeScript files: for the tests that keep rooms apart (the
// chart never reaches the controllers, bench/ has no circle). Reads `import ... from '...'` and
// `export ... from '...'` lines; dynamic import() and `import type` (erased, never loaded) are not followed.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const IMPORT = /^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms;

/** Each file's imports: relative ones resolved to absolute paths, packages by name. */
export function importsOf(file: string): { files: string[]; packages: string[] } {
  const source = readFileSync(file, 'utf8');
  const files: string[] = [];
  const packages: string[] = [];
  for (const [statement, spec] of source.matchAll(IMPORT)) {
    if (/^\s*(?:import|export)\s+type\s/.test(statement)) continue;
    if (spec!.startsWith('.')) files.push(resolve(dirname(file), spec!));
    else packages.push(spec!);
  }
  return { files, packages };
}

/** Every file reachable from the entries, with its own imports. */
export function importGraph(entries: string[]): Map<string, { files: string[]; packages: string[] }> {
  const graph = new Map<string, { files: string[]; packages: string[] }>();
  const todo = entries.map((e) => resolve(e));
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (graph.has(file) || !file.endsWith('.ts')) continue;
    const imports = importsOf(file);
    graph.set(file, imports);
    todo.push(...imports.files);
  }
  return graph;
}

/** A circle of imports among the files of the graph (limited to `within` when given), if any. */
export function findCycle(graph: Map<string, { files: string[] }>, within: (file: string) => boolean = () => true): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  function visit(file: string): string[] | undefined {
    if (state.get(file) === 'done') return undefined;
    if (state.get(file) === 'open') return [...stack.slice(stack.indexOf(file)), file];
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file)?.files ?? []) {
      if (!within(next)) continue;
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(file, 'done');
    return undefined;
  }
  for (const file of graph.keys()) {
    if (!within(file)) continue;
    const cycle = visit(file);
    if (cycle) return cycle;
  }
  return undefined;
}
