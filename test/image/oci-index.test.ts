// scripts/image/oci-index.ts: the image index build.sh writes over the per-platform images it pushed
// into one OCI layout. What a registry and a runtime read from it: each platform's manifest digest,
// size and platform, in the given order, and a layout whose only entry is the index under the tag.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { INDEX_MEDIA_TYPE, parsePlatforms, writeIndex } from '../../scripts/image/oci-index.ts';

const dir = mkdtempSync(join(tmpdir(), 'pando-oci-index-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function addBlob(layout: string, content: unknown): { digest: string; size: number } {
  const bytes = Buffer.from(JSON.stringify(content));
  const hex = createHash('sha256').update(bytes).digest('hex');
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(layout, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

function layoutWithTwoImages(name: string) {
  const layout = join(dir, name);
  const manifest = (arch: string) => ({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${arch.padEnd(64, '0')}`, size: 1 },
    layers: [],
  });
  return { layout, amd64: addBlob(layout, manifest('amd64')), arm64: addBlob(layout, manifest('arm64')) };
}

describe('oci-index', () => {
  it('writes an index of each platform manifest (digest, size, platform) in order, the only entry of index.json under the tag', () => {
    const { layout, amd64, arm64 } = layoutWithTwoImages('two');
    const digest = writeIndex(layout, '0.1.0', [
      { platform: 'linux/amd64', digest: amd64.digest },
      { platform: 'linux/arm64', digest: arm64.digest },
    ]);
    const raw = readFileSync(join(layout, 'blobs', ...digest.split(':')));
    assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, digest, 'the blob is stored under its digest');
    const index = JSON.parse(raw.toString('utf8')) as { mediaType: string; manifests: { digest: string; size: number; platform: unknown }[] };
    assert.equal(index.mediaType, INDEX_MEDIA_TYPE);
    assert.deepEqual(
      index.manifests.map((m) => [m.digest, m.size, m.platform]),
      [
        [amd64.digest, amd64.size, { architecture: 'amd64', os: 'linux' }],
        [arm64.digest, arm64.size, { architecture: 'arm64', os: 'linux' }],
      ],
    );
    const top = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; size: number; annotations: Record<string, string> }[] };
    assert.deepEqual(top.manifests, [{ mediaType: INDEX_MEDIA_TYPE, digest, size: raw.length, annotations: { 'org.opencontainers.image.ref.name': '0.1.0' } }]);
  });

  it('gives the same digest for the same images (nothing in it depends on the run), another for another order', () => {
    const a = layoutWithTwoImages('a');
    const b = layoutWithTwoImages('b');
    const order = (x: typeof a) => [
      { platform: 'linux/amd64', digest: x.amd64.digest },
      { platform: 'linux/arm64', digest: x.arm64.digest },
    ];
    const first = writeIndex(a.layout, '0.1.0', order(a));
    assert.equal(writeIndex(b.layout, '0.1.0', order(b)), first);
    assert.notEqual(writeIndex(b.layout, '0.1.0', order(b).reverse()), first);
  });

  it('refuses an entry that is not an image manifest, and a platforms line it cannot read', () => {
    const { layout, amd64 } = layoutWithTwoImages('nested');
    const nested = addBlob(layout, { schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests: [] });
    assert.throws(() => writeIndex(layout, 't', [{ platform: 'linux/amd64', digest: nested.digest }]), /not an OCI image manifest/);
    assert.deepEqual(parsePlatforms(`linux/amd64\t${amd64.digest}\n`), [{ platform: 'linux/amd64', digest: amd64.digest }]);
    assert.throws(() => parsePlatforms(`linux/s390x\t${amd64.digest}\n`), /not PLATFORM<TAB>DIGEST/);
    assert.throws(() => parsePlatforms('linux/amd64 sha256:abc\n'), /not PLATFORM<TAB>DIGEST/);
  });
});
