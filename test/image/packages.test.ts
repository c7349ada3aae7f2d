// scripts/image/packages.ts: the npm packages of the image's /app/node_modules as Node resolves
// them, the list an SBOM of the image is checked against.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { installedNpmPackages } from '../../scripts/image/packages.ts';

const dir = mkdtempSync(join(tmpdir(), 'pando-packages-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function pkg(path: string, content: Record<string, unknown>): void {
  mkdirSync(dirname(join(dir, path)), { recursive: true });
  writeFileSync(join(dir, path), JSON.stringify(content));
}

describe('installedNpmPackages', () => {
  it('lists top-level, scoped and nested packages once each, not package.json files inside a package', () => {
    pkg('node_modules/fastify/package.json', { name: 'fastify', version: '5.1.0' });
    pkg('node_modules/fastify/node_modules/semver/package.json', { name: 'semver', version: '7.6.0' });
    pkg('node_modules/semver/package.json', { name: 'semver', version: '6.3.1' });
    pkg('node_modules/@fastify/error/package.json', { name: '@fastify/error', version: '4.2.1' });
    pkg('node_modules/yaml/dist/package.json', { type: 'module' });
    pkg('node_modules/yaml/package.json', { name: 'yaml', version: '2.9.1' });
    pkg('node_modules/other/node_modules/yaml/package.json', { name: 'yaml', version: '2.9.1' });
    pkg('node_modules/other/package.json', { name: 'other', version: '1.0.0' });
    mkdirSync(join(dir, 'node_modules/.bin'), { recursive: true });
    assert.deepEqual(
      installedNpmPackages(join(dir, 'node_modules')).map((p) => `${p.name}@${p.version}`),
      ['@fastify/error@4.2.1', 'fastify@5.1.0', 'other@1.0.0', 'semver@6.3.1', 'semver@7.6.0', 'yaml@2.9.1'],
    );
  });

  it('refuses a package without name or version', () => {
    pkg('broken/node_modules/x/package.json', { name: 'x' });
    assert.throws(() => installedNpmPackages(join(dir, 'broken/node_modules')), /no name or version/);
  });
});
