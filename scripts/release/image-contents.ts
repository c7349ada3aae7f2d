// What an image in an OCI layout really contains, read from its layers (not from the build's inputs):
// the Debian packages' control records in /var/lib/dpkg/status.d/, the Node binary's version string,
// and every package.json at a node_modules/<name>/ path. Also what scripts/image says it installs
// (the package list its build wrote per architecture), for the comparison `npm run sbom -- --check` makes.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FoundPackage } from './spdx.ts';

export const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

export interface Descriptor { mediaType: string; digest: string; size: number; platform?: { os: string; architecture: string; variant?: string }; annotations?: Record<string, string> }
export interface ImageManifest { mediaType?: string; config: Descriptor; layers: Descriptor[]; manifests?: undefined }
export interface ImageIndex { mediaType?: string; manifests: Descriptor[] }

export function blobPath(layout: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  return join(layout, 'blobs', alg!, hex!);
}

export function readBlobJson<T>(layout: string, digest: string): T {
  const bytes = readFileSync(blobPath(layout, digest));
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (actual !== digest) throw new Error(`blob ${digest} in ${layout} has digest ${actual}`);
  return JSON.parse(bytes.toString('utf8')) as T;
}

export interface PlatformImage { digest: string; platform: string; manifest: ImageManifest; config: { os?: string; architecture?: string; variant?: string; created?: string; config?: { Labels?: Record<string, string> } } }

/**
 * The image manifests a digest stands for: itself when it is an image manifest, each platform's
 * when it is an index (attestation manifests that some builders add are left out).
 */
export function platformImages(layout: string, digest: string): { isIndex: boolean; images: PlatformImage[] } {
  const top = readBlobJson<ImageManifest | ImageIndex>(layout, digest);
  const one = (d: string): PlatformImage => {
    const manifest = readBlobJson<ImageManifest>(layout, d);
    const config = readBlobJson<PlatformImage['config']>(layout, manifest.config.digest);
    const platform = `${config.os ?? 'unknown'}/${config.architecture ?? 'unknown'}${config.variant ? `/${config.variant}` : ''}`;
    return { digest: d, platform, manifest, config };
  };
  if (top.manifests) {
    const images = top.manifests
      .filter((m) => !m.annotations?.['vnd.docker.reference.type'] && m.platform?.os !== 'unknown')
      .map((m) => one(m.digest));
    return { isIndex: true, images };
  }
  return { isIndex: false, images: [one(digest)] };
}

/** Path of a layer entry without a leading ./ or /. */
const clean = (p: string) => p.replace(/^\.?\//, '');
const NPM_PACKAGE_JSON = /(^|\/)node_modules\/(@[^/]+\/)?[^/@][^/]*\/package\.json$/;
const WANTED = (p: string) => p.startsWith('var/lib/dpkg/status.d/') || p === 'usr/local/bin/node' || p === 'app/package.json' || (p.startsWith('app/') && NPM_PACKAGE_JSON.test(p));

/** Parses a Debian control paragraph (RFC 822 style, continuation lines start with a space). */
export function parseControl(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  let last = '';
  for (const line of text.split('\n')) {
    if (/^\s/.test(line) && last) fields[last] += `\n${line.trim()}`;
    else {
      const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
      if (m) { last = m[1]!; fields[last] = m[2]!; }
    }
  }
  return fields;
}

/** The version syft's binary classifier reads from a Node binary (`node.js/vX.Y.Z`). */
export function nodeVersionOf(binary: Buffer): string | undefined {
  const needle = Buffer.from('node.js/v');
  let at = binary.indexOf(needle);
  while (at >= 0) {
    const m = /^(\d+\.\d+\.\d+)/.exec(binary.subarray(at + needle.length, at + needle.length + 16).toString('latin1'));
    if (m) return m[1];
    at = binary.indexOf(needle, at + 1);
  }
  return undefined;
}

function licenseField(pkg: Record<string, unknown>): string | undefined {
  const l = pkg.license;
  if (typeof l === 'string') return l;
  if (l && typeof l === 'object' && typeof (l as { type?: unknown }).type === 'string') return (l as { type: string }).type;
  return undefined;
}

/** Every package in one platform image, read from its layers (later layers win, as unpacking does). */
export function packagesInImage(layout: string, image: PlatformImage): FoundPackage[] {
  const dir = mkdtempSync(join(tmpdir(), 'pando-sbom-'));
  try {
    for (const layer of image.manifest.layers) {
      const blob = blobPath(layout, layer.digest);
      const gz = layer.mediaType.endsWith('gzip') ? ['-z'] : layer.mediaType.endsWith('zstd') ? ['--zstd'] : [];
      const names = execFileSync('tar', ['-t', ...gz, '-f', blob], { maxBuffer: 256 << 20 }).toString('utf8').split('\n').filter((n) => n && !n.endsWith('/') && WANTED(clean(n)));
      if (names.length === 0) continue;
      const list = join(dir, '.list');
      writeFileSync(list, names.join('\n') + '\n');
      execFileSync('tar', ['-x', ...gz, '-f', blob, '-C', join(dir), '--no-same-owner', '-T', list]);
    }
    const files = execFileSync('find', ['.', '-type', 'f', '!', '-name', '.list'], { cwd: dir }).toString('utf8').split('\n').filter(Boolean).map(clean).sort();
    const found: FoundPackage[] = [];
    for (const f of files) {
      const abs = join(dir, f);
      if (f.startsWith('var/lib/dpkg/status.d/')) {
        const c = parseControl(readFileSync(abs, 'utf8'));
        if (!c.Package || !c.Version) continue;
        found.push({ kind: 'deb', name: c.Package, version: c.Version, ...(c.Architecture ? { arch: c.Architecture } : {}), ...(c.Maintainer ? { supplier: c.Maintainer } : {}), path: `/${f}` });
      } else if (f === 'usr/local/bin/node') {
        const version = nodeVersionOf(readFileSync(abs));
        if (version) found.push({ kind: 'binary', name: 'node', version, license: 'MIT', path: `/${f}` });
      } else if (f === 'app/package.json') {
        const pkg = JSON.parse(readFileSync(abs, 'utf8')) as Record<string, unknown>;
        const license = licenseField(pkg);
        found.push({ kind: 'app', name: String(pkg.name), version: String(pkg.version), ...(license ? { license } : {}), path: `/${f}` });
      } else {
        const pkg = JSON.parse(readFileSync(abs, 'utf8')) as Record<string, unknown>;
        if (typeof pkg.name !== 'string' || typeof pkg.version !== 'string') continue;
        const license = licenseField(pkg);
        found.push({ kind: 'npm', name: pkg.name, version: pkg.version, ...(license ? { license } : {}), path: `/${f}` });
      }
    }
    return found;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The Debian release the image's packages come from (`debian-12`), from their versions' +debNNuN. */
export function debianDistro(found: FoundPackage[]): string | undefined {
  const m = found.map((p) => p.kind === 'deb' ? /\+deb(\d+)u\d+/.exec(p.version)?.[1] : undefined).find(Boolean);
  return m ? `debian-${m}` : undefined;
}

/**
 * What scripts/image says one platform image is made of, as spdx.ts packageKey strings, from the
 * package list the build wrote for that architecture (.tools/image/packages-ARCH.txt, the one list:
 * build.sh writes it from the .debs it unpacked, the Node package it took the binary from and the
 * app it staged). Lines: deb<TAB>name<TAB>version<TAB>arch, npm<TAB>node-linux-ARCH<TAB>version (the
 * image holds its binary: `binary:node`), npm<TAB>name<TAB>version (/app/node_modules) and
 * app<TAB>name<TAB>version (/app itself).
 */
export function parsePackageList(text: string, source = 'the package list'): string[] {
  const out = new Set<string>();
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const [kind, name, version, arch, ...rest] = line.split('\t');
    const bad = () => new Error(`${source} line ${i + 1} is not KIND<TAB>NAME<TAB>VERSION[<TAB>ARCH]: ${JSON.stringify(line)}`);
    if (!name || !version || rest.length) throw bad();
    if (kind === 'deb') {
      if (!arch) throw bad();
      out.add(`deb:${name}@${version}:${arch}`);
    } else if (kind === 'npm' && /^node-linux-[a-z0-9]+$/.test(name) && !arch) out.add(`binary:node@${version}`);
    else if ((kind === 'npm' || kind === 'app') && !arch) out.add(`${kind}:${name}@${version}`);
    else throw bad();
  });
  return [...out].sort();
}

/** The package list of one architecture (amd64, arm64) that the build wrote into imageDir. */
export function declaredPackages(imageDir: string, arch: string): string[] {
  const file = join(imageDir, `packages-${arch}.txt`);
  if (!existsSync(file)) throw new Error(`${file} is missing: the build of this image wrote no package list for ${arch} (npm run image writes one per platform)`);
  return parsePackageList(readFileSync(file, 'utf8'), `packages-${arch}.txt`);
}

/** sha256 of a file, hex. */
export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function exists(path: string): boolean { return existsSync(path); }
