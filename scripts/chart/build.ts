// npm run chart: writes the Helm chart to dist/pando-webhook/ (or the folder given as argument),
// replacing what is there. npm run chart:check builds into a temporary folder and fails when dist/
// differs, so dist/ is only ever what the build writes.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { packageVersion } from '../../charts-src/main.ts';
import { CHART_NAME, chartFiles } from '../../charts-src/helm/chart.ts';

const root = resolve(import.meta.dirname, '../..');
export const DIST = join(root, 'dist', CHART_NAME);

export function writeChart(dir: string): number {
  rmSync(dir, { recursive: true, force: true });
  const files = chartFiles(packageVersion());
  for (const file of files) {
    mkdirSync(dirname(join(dir, file.path)), { recursive: true });
    writeFileSync(join(dir, file.path), file.content);
  }
  return files.length;
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d)) {
      const path = join(d, entry);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(dir, path));
    }
  };
  walk(dir);
  return out.sort();
}

if (import.meta.main) {
  const t0 = performance.now();
  if (process.argv[2] === '--check') {
    const tmp = mkdtempSync(join(tmpdir(), 'pando-chart-check-'));
    try {
      writeChart(tmp);
      const fresh = listFiles(tmp);
      const committed = (() => {
        try {
          return listFiles(DIST);
        } catch {
          return [];
        }
      })();
      const stale = [...new Set([...fresh, ...committed])].filter((f) => {
        try {
          return readFileSync(join(tmp, f), 'utf8') !== readFileSync(join(DIST, f), 'utf8');
        } catch {
          return true;
        }
      });
      if (stale.length > 0) {
        console.error(`dist/${CHART_NAME} is not what charts-src/ builds; run npm run chart and commit. Differs: ${stale.join(', ')}`);
        process.exit(1);
      }
      console.log(`dist/${CHART_NAME} is fresh (${fresh.length} files, ${Math.round(performance.now() - t0)} ms)`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  } else {
    const out = process.argv[2] ? resolve(process.argv[2]) : DIST;
    const count = writeChart(out);
    console.log(`wrote ${count} files to ${relative(root, out) || out} in ${Math.round(performance.now() - t0)} ms`);
  }
}
