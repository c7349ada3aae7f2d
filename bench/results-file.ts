// bench/RESULTS.md is written by four commands: a full `npm run bench` (everything but the three
// sections below), `npm run bench -- --cluster`, `npm run bench -- --node` and `npm run fuzz` (one section each, which take
// minutes of their own). Each replaces only its own sections, so none erases the others' figures.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const RESULTS_FILE = join(import.meta.dirname, 'RESULTS.md');
export const CLUSTER_HEADING = '## Admission overhead at the API server';
export const FUZZ_AT_SCALE_HEADING = '## Fuzz at scale';
export const NODE_HEADING = '## What users feel on a node';
/** Written by hand from the --cluster figures (issue 17 item 1): no command replaces it. */
export const CLUSTER_BREAKDOWN_HEADING = "## Where the API server's milliseconds go";
/** Written by hand from `node bench/rollout.ts` (issue 24): no command replaces it. */
export const ROLLOUT_HEADING = '## Sidecar rollout planner';
const SEPARATE = [CLUSTER_HEADING, NODE_HEADING, FUZZ_AT_SCALE_HEADING, CLUSTER_BREAKDOWN_HEADING, ROLLOUT_HEADING];

/** The markdown split at its `## ` headings: the text before the first, then one entry per section. */
function sections(markdown: string): string[] {
  return markdown.split(/\n(?=## )/);
}

function current(): string {
  return existsSync(RESULTS_FILE) ? readFileSync(RESULTS_FILE, 'utf8') : '';
}

/** Writes a full run's report, keeping the separately measured sections of the previous file. */
export function writeFullRun(markdown: string): void {
  const kept = sections(current()).filter((s) => SEPARATE.some((h) => s.startsWith(h)));
  writeFileSync(RESULTS_FILE, [markdown.trimEnd(), ...kept.map((s) => s.trimEnd())].join('\n\n') + '\n');
}

/** Replaces (or appends) the one section that starts with `heading`. */
export function writeSection(heading: string, section: string): void {
  const parts = sections(current()).map((s) => s.trimEnd());
  const at = parts.findIndex((s) => s.startsWith(heading));
  if (at >= 0) parts[at] = section.trimEnd();
  else parts.push(section.trimEnd());
  writeFileSync(RESULTS_FILE, `${parts.join('\n\n')}\n`);
}
