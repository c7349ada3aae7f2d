// Makes the per-platform images build.sh pushed into one OCI layout a single image index: writes the
// index blob (each platform's manifest digest, size and platform, in the order given) and an
// index.json whose only entry is that index, tagged TAG. Prints the index digest.
// Usage: node scripts/image/oci-index.ts LAYOUT TAG PLATFORMS_FILE   (lines: os/arch<TAB>sha256:...)
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
const MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';

export interface PlatformManifest {
  platform: string;
  digest: string;
}

export function parsePlatforms(text: string): PlatformManifest[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [platform = '', digest = ''] = line.split('\t');
      if (!/^linux\/(amd64|arm64)$/.test(platform) || !/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`not PLATFORM<TAB>DIGEST: ${line}`);
      return { platform, digest };
    });
}

export function writeIndex(layout: string, tag: string, platforms: PlatformManifest[]): string {
  const blobPath = (digest: string) => join(layout, 'blobs', ...digest.split(':'));
  const manifests = platforms.map(({ platform, digest }) => {
    const raw = readFileSync(blobPath(digest));
    const mediaType = (JSON.parse(raw.toString('utf8')) as { mediaType?: string }).mediaType ?? MANIFEST_MEDIA_TYPE;
    if (mediaType !== MANIFEST_MEDIA_TYPE) throw new Error(`${digest} is ${mediaType}, not an OCI image manifest`);
    const [os, architecture] = platform.split('/');
    return { mediaType, digest, size: raw.length, platform: { architecture, os } };
  });
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests }));
  const digest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
  writeFileSync(blobPath(digest), index);
  const layoutIndex = {
    schemaVersion: 2,
    manifests: [{ mediaType: INDEX_MEDIA_TYPE, digest, size: index.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  };
  writeFileSync(join(layout, 'index.json'), JSON.stringify(layoutIndex));
  return digest;
}

if (import.meta.filename === resolve(process.argv[1] ?? '')) {
  const [layout, tag, platformsFile] = process.argv.slice(2);
  if (!layout || !tag || !platformsFile) throw new Error('usage: node scripts/image/oci-index.ts LAYOUT TAG PLATFORMS_FILE');
  process.stdout.write(writeIndex(layout, tag, parsePlatforms(readFileSync(platformsFile, 'utf8'))) + '\n');
}
