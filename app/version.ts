// The package version, for logs, metrics and `pando --version`. app/ from source, build/app/ in the
// image or an install: package.json is one or two folders above this file.
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pando-webhook' && pkg.version) return pkg.version;
    } catch {
      // try the next place
    }
  }
  return 'unknown';
}
