// The npm packages in the image's /app/node_modules, as installed (npm ci --omit=dev), for the
// per-platform package list build.sh writes (.tools/image/packages-ARCH.txt), which an SBOM is
// checked against. Walks the tree as Node resolves it: node_modules/NAME, node_modules/@SCOPE/NAME,
// and each package's own node_modules.
// Usage: node scripts/image/packages.ts NODE_MODULES_DIR   (prints npm<TAB>name<TAB>version, sorted)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface InstalledPackage {
  name: string;
  version: string;
}

export function installedNpmPackages(nodeModules: string): InstalledPackage[] {
  const found = new Map<string, InstalledPackage>();
  const visit = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const dirs = entry.name.startsWith('@')
        ? readdirSync(join(dir, entry.name), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, entry.name, e.name))
        : [join(dir, entry.name)];
      for (const pkgDir of dirs) {
        const manifest = join(pkgDir, 'package.json');
        if (!existsSync(manifest)) continue;
        const { name, version } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
        if (!name || !version) throw new Error(`${manifest}: no name or version`);
        found.set(`${name}@${version}`, { name, version });
        visit(join(pkgDir, 'node_modules'));
      }
    }
  };
  visit(nodeModules);
  return [...found.values()].sort((a, b) => (a.name === b.name ? (a.version < b.version ? -1 : 1) : a.name < b.name ? -1 : 1));
}

if (import.meta.filename === resolve(process.argv[1] ?? '')) {
  const [dir] = process.argv.slice(2);
  if (!dir) throw new Error('usage: node scripts/image/packages.ts NODE_MODULES_DIR');
  process.stdout.write(installedNpmPackages(dir).map((p) => `npm\t${p.name}\t${p.version}\n`).join(''));
}
