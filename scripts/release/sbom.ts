// npm run sbom [-- --check] [--layout DIR] [--digest sha256:...] [--out DIR]
// Writes the SPDX 2.3 JSON SBOM of the image `npm run image` built (.tools/image/oci, digest
// .tools/image/digest), one per platform image (sbom-OS-ARCH.spdx.json) and, for an index, one for
// the index that names the platform images (sbom-index.spdx.json). Read from the image's layers: see
// scripts/release/spdx.ts for why not syft. --check fails (exit 1) when the document's shape is wrong
// or it lists a package that is not in its platform's package list (or misses one that is), one line
// each: the list build.sh wrote for that architecture, .tools/image/packages-ARCH.txt (--packages DIR).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { compareWithPackageList, spdxDocument, spdxId, spdxProblems, type SpdxDocument } from './spdx.ts';
import { debianDistro, declaredPackages, packagesInImage, platformImages } from './image-contents.ts';

const ROOT = resolve(import.meta.dirname, '../..');

export interface SbomResult {
  /** Per image manifest digest: the document and the file it was written to. */
  images: { digest: string; platform: string; file: string; doc: SpdxDocument }[];
  /** For an index: the document that lists the platform images. */
  index?: { digest: string; file: string; doc: SpdxDocument };
  problems: string[];
}

function createdOf(config: { created?: string }): string {
  // SOURCE_DATE_EPOCH made the image's created time; second precision as SPDX wants it.
  const t = config.created ? new Date(config.created) : new Date(0);
  return t.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function writeSboms(opts: { layout: string; digest: string; out: string; check: boolean; packagesDir?: string }): SbomResult {
  const { isIndex, images } = platformImages(opts.layout, opts.digest);
  mkdirSync(opts.out, { recursive: true });
  const packagesDir = opts.packagesDir ?? join(ROOT, '.tools/image');
  const problems: string[] = [];
  const result: SbomResult = { images: [], problems };
  for (const image of images) {
    const found = packagesInImage(opts.layout, image);
    const labels = image.config.config?.Labels ?? {};
    const doc = spdxDocument({
      name: labels['org.opencontainers.image.title'] ?? 'pando-webhook', type: 'image', digest: image.digest,
      version: labels['org.opencontainers.image.version'] ?? 'unknown', platform: image.platform,
      created: createdOf(image.config), ...(debianDistro(found) ? { distro: debianDistro(found)! } : {}),
    }, found);
    const file = join(opts.out, `sbom-${image.platform.replaceAll('/', '-')}.spdx.json`);
    writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
    result.images.push({ digest: image.digest, platform: image.platform, file, doc });
    if (opts.check) {
      for (const p of spdxProblems(doc)) problems.push(`${image.platform}: ${p}`);
      let declared: string[] | undefined;
      try { declared = declaredPackages(packagesDir, image.config.architecture ?? 'unknown'); } catch (e) { problems.push(`${image.platform}: ${(e as Error).message}`); }
      if (declared) for (const p of compareWithPackageList(doc, declared)) problems.push(`${image.platform}: ${p}`);
    }
  }
  if (isIndex) {
    // The index's own document: the index, and each platform image it contains with its digest (each
    // platform's packages are in that platform's document, attested on its digest).
    const first = result.images[0]!.doc;
    const base = spdxDocument({
      name: first.packages[0]!.name, type: 'image', digest: opts.digest, version: first.packages[0]!.versionInfo ?? 'unknown',
      created: first.creationInfo.created,
    }, []);
    const rootId = base.documentDescribes[0]!;
    for (const img of result.images) {
      const id = spdxId('Image', img.platform);
      base.packages.push({
        name: `${base.packages[0]!.name} ${img.platform}`, SPDXID: id, versionInfo: base.packages[0]!.versionInfo!,
        downloadLocation: 'NOASSERTION', filesAnalyzed: false, primaryPackagePurpose: 'CONTAINER',
        checksums: [{ algorithm: 'SHA256', checksumValue: img.digest.replace(/^sha256:/, '') }],
        externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:oci/${encodeURIComponent(base.packages[0]!.name)}@${encodeURIComponent(img.digest)}?platform=${encodeURIComponent(img.platform)}` }],
      });
      base.relationships.push({ spdxElementId: rootId, relationshipType: 'CONTAINS', relatedSpdxElement: id });
    }
    const file = join(opts.out, 'sbom-index.spdx.json');
    writeFileSync(file, JSON.stringify(base, null, 2) + '\n');
    result.index = { digest: opts.digest, file, doc: base };
    if (opts.check) for (const p of spdxProblems(base)) problems.push(`index: ${p}`);
  }
  return result;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      check: { type: 'boolean', default: false },
      layout: { type: 'string', default: join(ROOT, '.tools/image/oci') },
      digest: { type: 'string' },
      out: { type: 'string', default: join(ROOT, '.tools/image') },
      packages: { type: 'string', default: join(ROOT, '.tools/image') },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: npm run sbom [-- --check] [--layout DIR] [--digest sha256:...] [--out DIR] [--packages DIR (holding packages-ARCH.txt)]');
    return;
  }
  let digest = values.digest;
  if (!digest) {
    try { digest = readFileSync(join(ROOT, '.tools/image/digest'), 'utf8').trim(); } catch {
      console.error('npm run sbom: no image built (.tools/image/digest): run npm run image first');
      process.exit(1);
    }
  }
  const t0 = Date.now();
  const r = writeSboms({ layout: values.layout, digest, out: values.out, check: values.check, packagesDir: values.packages });
  for (const i of r.images) console.log(`${i.file}  ${i.platform} ${i.digest}  ${i.doc.packages.length - 1} packages`);
  if (r.index) console.log(`${r.index.file}  index ${r.index.digest}  ${r.images.length} platform images`);
  console.log(`sbom: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (values.check) {
    for (const p of r.problems) console.error(`sbom check: ${p}`);
    if (r.problems.length) process.exit(1);
    console.log(`sbom check: ${r.images.length === 1 ? 'the SBOM is' : `each of the ${r.images.length} platform SBOMs is`} valid SPDX 2.3 and lists exactly its platform's package list (packages-ARCH.txt)`);
  }
}

if (import.meta.main) main();
