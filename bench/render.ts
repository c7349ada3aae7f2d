// node bench/render.ts bench/results/RUN.json [--write]: the markdown of a recorded run again (after
// a change to the report's layout); --write puts it into bench/RESULTS.md. Figures come only from
// the JSON the run wrote.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderMarkdown } from './report.ts';
import type { Run } from './report.ts';

const [file] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (!file) {
  process.stderr.write('usage: node bench/render.ts bench/results/RUN.json [--write]\n');
  process.exit(2);
}
const markdown = renderMarkdown(JSON.parse(readFileSync(file, 'utf8')) as Run);
if (process.argv.includes('--write')) writeFileSync(join(import.meta.dirname, 'RESULTS.md'), markdown);
process.stdout.write(markdown);
