// npm run release [-- --registry HOST[:PORT]] [--key PATH|KMS-URI | --keyless] [--build | --image-layout DIR --image-digest D] [--out DIR]
//
// Publishes the image and the chart and, for each by digest, a cosign signature, an SBOM attestation
// (SPDX 2.3 JSON, predicate https://spdx.dev/Document) and a SLSA v1 provenance attestation
// (https://slsa.dev/provenance/v1). The image: the index `npm run image` built (linux/amd64 and
// linux/arm64, pushed whole by image:publish; `--build` builds it again; none built yet: builds it),
// signed as a whole and per platform (`cosign sign --recursive`), each platform image attested with
// its own SBOM (checked against that platform's packages-ARCH.txt) and provenance (its node-linux-ARCH
// tarball and .deb files by digest); the index with an SBOM naming the platform images. The chart: dist/
// (`npm run chart` writes it) with `image.repository` and `image.digest` set to the image just
// published, so the chart pins the signed image; packaged and pushed with helm.
//
// Registry: default the project's one on 127.0.0.1 (scripts/registry.sh start; it keeps running).
// Signer: `--key` a private key file (COSIGN_PASSWORD from the environment) or a KMS URI
// (awskms://, gcpkms://, azurekms://, hashivault://), signed without a transparency log; without
// --key and --keyless, a fresh key pair in OUT (CI's case: nobody else holds it); `--keyless`: a
// Fulcio certificate for an OIDC identity and a Rekor entry (needs a reachable Sigstore instance).
// Prints the digests and the exact verify commands; writes OUT/release.json.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { COSIGN, ROOT, git, isLoopbackRegistry, mustCosign, rawManifest, registryFlags, signerFlags, type Signer } from './cosign.ts';
import { blobPath, platformImages, sha256File, packagesInImage } from './image-contents.ts';
import { slsaProvenance, type ResourceDescriptor } from './provenance.ts';
import { writeSboms } from './sbom.ts';
import { spdxDocument, spdxProblems, type FoundPackage } from './spdx.ts';

const IMAGE_DIR = join(ROOT, '.tools/image');
const NODE = process.execPath;

function log(msg: string): void { process.stderr.write(`[release] ${msg}\n`); }
function die(msg: string): never { process.stderr.write(`[release] error: ${msg}\n`); process.exit(1); }
function sh(cmd: string, args: string[], opts: { quiet?: boolean } = {}): string {
  return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', opts.quiet ? 'pipe' : 'inherit'], maxBuffer: 64 << 20 }).trim();
}
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

interface Timed { step: string; seconds: number }
const timings: Timed[] = [];
function timed<T>(step: string, f: () => T): T {
  const t0 = process.hrtime.bigint();
  try { return f(); } finally {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    timings.push({ step, seconds });
    log(`${step}: ${seconds.toFixed(1)} s`);
  }
}

/** Signs REF@DIGEST and attaches the SBOM and provenance attestations. */
function signAndAttest(signer: Signer, repo: string, digest: string, opts: { recursive: boolean; sbom: string; provenance: string; env: Record<string, string>; label: string; attestOnly?: boolean }): void {
  const ref = `${repo}@${digest}`;
  const common = [...signerFlags(signer), ...registryFlags(repo), '--yes'];
  if (!opts.attestOnly) timed(`sign ${opts.label}`, () => mustCosign(['sign', ...common, ...(opts.recursive ? ['--recursive'] : []), ref], opts.env));
  timed(`attest SBOM ${opts.label}`, () => mustCosign(['attest', ...common, '--type', 'spdxjson', '--predicate', opts.sbom, ref], opts.env));
  timed(`attest provenance ${opts.label}`, () => mustCosign(['attest', ...common, '--type', 'slsaprovenance1', '--predicate', opts.provenance, ref], opts.env));
}

function lockVersion(lock: { packages: Record<string, { version?: string }> }, name: string): string | undefined {
  return lock.packages[`node_modules/${name}`]?.version;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      registry: { type: 'string' },
      key: { type: 'string' },
      keyless: { type: 'boolean', default: false },
      build: { type: 'boolean', default: false },
      'image-layout': { type: 'string' },
      'image-digest': { type: 'string' },
      out: { type: 'string', default: join(ROOT, '.tools/release') },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: npm run release -- [--registry HOST[:PORT]] [--key PATH|KMS-URI | --keyless] [--build | --image-layout DIR --image-digest sha256:...] [--out DIR]');
    return;
  }
  if (values.key && values.keyless) die('--key and --keyless exclude each other');
  const started = now();
  const out = values.out;
  mkdirSync(out, { recursive: true });
  const env: Record<string, string> = { COSIGN_PASSWORD: process.env.COSIGN_PASSWORD ?? '' };

  timed('tools (cosign, helm)', () => {
    sh('bash', ['scripts/tools/cosign.sh']);
    sh('bash', ['scripts/tools/helm.sh']);
  });
  const registry = values.registry ?? timed('registry', () => sh('bash', ['scripts/registry.sh', 'start']));
  if (registry.includes('://')) die(`--registry takes HOST[:PORT][/PATH], not a URL: ${registry}`);

  let signer: Signer;
  let pub: string | undefined;
  if (values.keyless) signer = { kind: 'keyless' };
  else if (values.key) {
    signer = { kind: 'key', key: values.key };
    pub = join(out, 'cosign.pub');
    // The public half, for the verify commands (works for a key file and a KMS URI alike).
    writeFileSync(pub, mustCosign(['public-key', '--key', values.key], env).stdout);
  } else {
    // A fresh pair for this run (CI): the private key never leaves OUT and signs nothing else.
    rmSync(join(out, 'cosign.key'), { force: true });
    rmSync(join(out, 'cosign.pub'), { force: true });
    timed('generate key pair', () => mustCosign(['generate-key-pair', '--output-key-prefix', join(out, 'cosign')], env));
    signer = { kind: 'key', key: join(out, 'cosign.key') };
    pub = join(out, 'cosign.pub');
  }

  // --- the image ---------------------------------------------------------------------------------
  const imageRepo = `${registry}/pando-webhook`;
  let imageDigest: string, imageTag: string, layout: string;
  if (values['image-layout']) {
    // Another OCI layout (an index made elsewhere, a test's): pushed whole and unchanged.
    layout = values['image-layout'];
    imageDigest = values['image-digest'] ?? die('--image-layout needs --image-digest');
    const entry = (JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] })
      .manifests.find((m) => m.digest === imageDigest);
    imageTag = entry?.annotations?.['org.opencontainers.image.ref.name'] ?? die(`${layout}/index.json has no tag for ${imageDigest}`);
    const digestFile = join(out, 'pushed-digest');
    timed('publish image', () => sh('skopeo', ['copy', '--quiet', '--all', '--preserve-digests', '--policy', join(ROOT, 'scripts/image/policy.json'),
      ...(isLoopbackRegistry(registry) ? ['--dest-tls-verify=false'] : []), '--digestfile', digestFile, `oci:${layout}:${imageTag}`, `docker://${imageRepo}:${imageTag}`]));
    if (readFileSync(digestFile, 'utf8').trim() !== imageDigest) die(`the registry has ${readFileSync(digestFile, 'utf8').trim()}, the layout ${imageDigest}`);
  } else {
    if (values.build || !existsSync(join(IMAGE_DIR, 'digest'))) timed('build image', () => sh('bash', ['scripts/image/build.sh', '--quiet']));
    imageDigest = readFileSync(join(IMAGE_DIR, 'digest'), 'utf8').trim();
    const published = timed('publish image', () => sh('bash', ['scripts/image/publish.sh', imageRepo]).split('\n').pop()!);
    if (!published.endsWith(`@${imageDigest}`)) die(`publish gave ${published}, the build is ${imageDigest}`);
    imageTag = readFileSync(join(IMAGE_DIR, 'tag'), 'utf8').trim();
    layout = join(IMAGE_DIR, 'oci');
  }
  const sboms = timed('sbom image', () => writeSboms({ layout, digest: imageDigest, out, check: true }));
  if (sboms.problems.length) die(`the SBOM does not match the image:\n  ${sboms.problems.join('\n  ')}`);

  const commit = git('rev-parse', 'HEAD');
  const dirty = git('status', '--porcelain', '--', 'app', 'package.json', 'package-lock.json', 'Containerfile', 'scripts/image', 'charts-src', 'dist') !== '';
  if (dirty) log('warning: uncommitted changes in the inputs: the provenance says dirty: true');
  // The image names the commit it was built from (its revision label): that one goes into its
  // provenance, HEAD only into the chart's (the chart is packaged now, from dist/ at HEAD).
  const revisionOf = (image: { config: { config?: { Labels?: Record<string, string> } } }) => image.config.config?.Labels?.['org.opencontainers.image.revision'] ?? commit;
  const chartYaml = readFileSync(join(ROOT, 'dist/pando-webhook/Chart.yaml'), 'utf8');
  const sourceUri = /^sources:\n\s+-\s+(\S+)/m.exec(chartYaml)?.[1] ?? 'https://github.com/pandocore/pando-webhook';
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  const lockDep: ResourceDescriptor = { name: 'package-lock.json', digest: { sha256: sha256File(join(ROOT, 'package-lock.json')) } };
  const tools: Record<string, string> = {
    node: process.version,
    cosign: /GitVersion:\s+(\S+)/.exec(mustCosign(['version']).stdout)?.[1] ?? 'unknown',
    buildah: sh('buildah', ['--version'], { quiet: true }).split(' ')[2] ?? 'unknown',
    skopeo: sh('skopeo', ['--version'], { quiet: true }).split(' ').pop() ?? 'unknown',
    helm: sh(join(ROOT, '.tools/bin/helm'), ['version', '--short'], { quiet: true }),
  };
  const run = { builderId: `https://pandocore.xyz/slsa/builders/${process.env.CI ? 'ci' : 'local'}`, builderVersions: tools, invocationId: randomUUID() };

  // What went into each platform image, pinned: the Debian packages (version and .deb digest), the
  // Node binary's npm package, the lock file, the Containerfile.
  const debDir = join(IMAGE_DIR, 'cache/debs');
  const debFiles = existsSync(debDir) ? readdirSync(debDir) : [];
  const npmDir = join(IMAGE_DIR, 'cache/npm');
  const npmFiles = existsSync(npmDir) ? readdirSync(npmDir) : [];
  const { images } = platformImages(layout, imageDigest);
  const provenanceFiles = new Map<string, string>();
  const allImageDeps: ResourceDescriptor[] = [];
  const sourceDateEpoch = images[0]?.config.created ? String(Date.parse(images[0].config.created) / 1000) : undefined;
  for (const image of images) {
    const found = packagesInImage(layout, image);
    const deps: ResourceDescriptor[] = [lockDep, { name: 'Containerfile', digest: { sha256: sha256File(join(ROOT, 'Containerfile')) } }];
    for (const p of found) {
      if (p.kind === 'deb') {
        const file = `${p.name}_${p.version.replace(/^\d+:/, '')}_${p.arch}.deb`;
        deps.push({ uri: `pkg:deb/debian/${p.name}@${encodeURIComponent(p.version)}?arch=${p.arch}`, ...(debFiles.includes(file) ? { digest: { sha256: sha256File(join(debDir, file)) } } : {}) });
      } else if (p.kind === 'binary' && p.name === 'node') {
        const arch = image.platform.endsWith('arm64') ? 'arm64' : 'x64';
        const tgz = `node-linux-${arch}-${p.version}.tgz`;
        deps.push({ uri: `pkg:npm/node-linux-${arch}@${p.version}`, ...(npmFiles.includes(tgz) ? { digest: { sha256: sha256File(join(npmDir, tgz)) } } : {}) });
      }
    }
    const revision = revisionOf(image);
    if (revision !== commit) log(`warning: the image ${image.platform} was built from ${revision}, HEAD is ${commit}: its provenance names ${revision.slice(0, 12)} (--build builds it from HEAD)`);
    const pred = slsaProvenance({
      kind: 'image', sourceUri, commit: revision, dirty: revision === commit ? dirty : 'unknown', command: 'npm run image', version: imageTag,
      ...(sourceDateEpoch ? { sourceDateEpoch } : {}), dependencies: deps, ...run, startedOn: started, finishedOn: now(),
    });
    const file = join(out, `provenance-${image.platform.replaceAll('/', '-')}.json`);
    writeFileSync(file, JSON.stringify(pred, null, 2) + '\n');
    provenanceFiles.set(image.digest, file);
    allImageDeps.push(...pred.buildDefinition.resolvedDependencies);
  }

  // --- the chart, pinned to the image just published -------------------------------------------
  const work = mkdtempSync(join(tmpdir(), 'pando-release-chart-'));
  let chartRef: string, chartDigest: string, chartVersion: string;
  try {
    const chartDir = join(work, 'pando-webhook');
    cpSync(join(ROOT, 'dist/pando-webhook'), chartDir, { recursive: true });
    const valuesFile = join(chartDir, 'values.yaml');
    const valuesText = readFileSync(valuesFile, 'utf8');
    const pinned = valuesText.replace(/^(image:\n(?:[ ]{2}.*\n)*?[ ]{2}repository: ).*$/m, `$1${imageRepo}`)
      .replace(/^(image:\n(?:[ ]{2}.*\n)*?[ ]{2}digest: ).*$/m, `$1"${imageDigest}"`);
    if (!pinned.includes(`repository: ${imageRepo}`) || !pinned.includes(`digest: "${imageDigest}"`)) die('could not set image.repository and image.digest in the chart\'s values.yaml');
    writeFileSync(valuesFile, pinned);
    const helm = join(ROOT, '.tools/bin/helm');
    const helmEnv = { HELM_CACHE_HOME: join(ROOT, '.tools/helm/cache'), HELM_CONFIG_HOME: join(ROOT, '.tools/helm/config'), HELM_DATA_HOME: join(ROOT, '.tools/helm/data') };
    Object.assign(process.env, helmEnv);
    const rendered = sh(helm, ['template', 'pando-webhook', chartDir, '--set', 'licenseKey=x'], { quiet: true });
    if (!rendered.includes(`image: "${imageRepo}@${imageDigest}"`)) die('the packaged chart does not render the pinned image');
    sh(helm, ['package', chartDir, '--destination', work], { quiet: true });
    const pkg = readdirSync(work).find((f) => f.endsWith('.tgz'))!;
    chartVersion = basename(pkg, '.tgz').replace(/^pando-webhook-/, '');
    timed('publish chart', () => sh(helm, ['push', join(work, pkg), `oci://${registry}/charts`, ...(isLoopbackRegistry(registry) ? ['--plain-http'] : [])], { quiet: true }));
    chartRef = `${registry}/charts/pando-webhook`;
    chartDigest = rawManifest(`${chartRef}:${chartVersion}`).digest;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const chartFound: FoundPackage[] = [
    { kind: 'oci', name: imageRepo, version: imageDigest, path: 'values.yaml image.repository@image.digest' },
  ];
  const sidecar = /^sidecar:\n(?:[ ]{2}.*\n)*?[ ]{2}image:\n(?:[ ]{4}.*\n)*?[ ]{4}repository: (\S+)\n(?:[ ]{4}.*\n)*?[ ]{4}tag: "?([^"\n]+)"?/m.exec(readFileSync(join(ROOT, 'dist/pando-webhook/values.yaml'), 'utf8'));
  if (sidecar) chartFound.push({ kind: 'oci', name: sidecar[1]!, version: sidecar[2]!, path: 'values.yaml sidecar.image' });
  const chartSbom = spdxDocument({ name: 'pando-webhook', type: 'chart', digest: chartDigest, version: chartVersion, created: sboms.images[0]!.doc.creationInfo.created }, chartFound);
  const chartSbomProblems = spdxProblems(chartSbom);
  if (chartSbomProblems.length) die(`chart SBOM: ${chartSbomProblems.join('; ')}`);
  const chartSbomFile = join(out, 'sbom-chart.spdx.json');
  writeFileSync(chartSbomFile, JSON.stringify(chartSbom, null, 2) + '\n');
  const chartProv = slsaProvenance({
    kind: 'chart', sourceUri, commit, dirty, command: 'npm run chart', version: chartVersion,
    dependencies: [lockDep, ...['cdk8s', 'cdk8s-plus-28', 'cdk8s-cli', 'typescript'].map((n) => ({ uri: `pkg:npm/${n}@${lockVersion(lock, n)}` })),
      { uri: `pkg:oci/pando-webhook@${encodeURIComponent(imageDigest)}?repository_url=${encodeURIComponent(imageRepo)}`, digest: { sha256: imageDigest.replace(/^sha256:/, '') }, annotations: { role: 'the image the chart pins (values image.digest)' } }],
    ...run, startedOn: started, finishedOn: now(),
  });
  const chartProvFile = join(out, 'provenance-chart.json');
  writeFileSync(chartProvFile, JSON.stringify(chartProv, null, 2) + '\n');

  // --- signatures and attestations, by digest ------------------------------------------------------
  const isIndex = sboms.index !== undefined;
  if (isIndex) {
    // The index signed with its platform images (--recursive); its own SBOM names the platform images.
    // The index's provenance: the first platform's, with every platform's inputs.
    const indexProv = join(out, 'provenance-index.json');
    const pred = JSON.parse(readFileSync(provenanceFiles.get(images[0]!.digest)!, 'utf8')) as ReturnType<typeof slsaProvenance>;
    const seen = new Set<string>();
    pred.buildDefinition.resolvedDependencies = allImageDeps.filter((d) => { const k = JSON.stringify(d); return seen.has(k) ? false : (seen.add(k), true); });
    writeFileSync(indexProv, JSON.stringify(pred, null, 2) + '\n');
    signAndAttest(signer, imageRepo, imageDigest, { recursive: true, sbom: sboms.index!.file, provenance: indexProv, env, label: 'image index' });
    for (const img of sboms.images) signAndAttest(signer, imageRepo, img.digest, { recursive: false, sbom: img.file, provenance: provenanceFiles.get(img.digest)!, env, label: `image ${img.platform}`, attestOnly: true });
  } else {
    const img = sboms.images[0]!;
    signAndAttest(signer, imageRepo, img.digest, { recursive: true, sbom: img.file, provenance: provenanceFiles.get(img.digest)!, env, label: 'image' });
  }
  signAndAttest(signer, chartRef, chartDigest, { recursive: false, sbom: chartSbomFile, provenance: chartProvFile, env, label: 'chart' });

  const record = {
    registry, commit, dirty,
    image: { ref: `${imageRepo}:${imageTag}`, digest: imageDigest, revision: revisionOf(images[0]!), platforms: sboms.images.map((i) => ({ platform: i.platform, digest: i.digest })) },
    chart: { ref: `${chartRef}:${chartVersion}`, digest: chartDigest },
    publicKey: pub ?? null, signer: signer.kind, timings,
  };
  writeFileSync(join(out, 'release.json'), JSON.stringify(record, null, 2) + '\n');

  const flags = isLoopbackRegistry(registry) ? ' --allow-http-registry' : '';
  const rel = (p: string) => (p.startsWith(ROOT) ? relative(process.cwd(), p) || '.' : p);
  if (pub) pub = rel(pub);
  const keyFlags = pub ? `--key ${pub} --insecure-ignore-tlog=true` : '--certificate-identity IDENTITY --certificate-oidc-issuer ISSUER';
  console.log(`image  ${imageRepo}@${imageDigest}   (tag ${imageTag})`);
  for (const i of sboms.images) console.log(`       ${i.platform}  ${imageRepo}@${i.digest}`);
  console.log(`chart  oci://${chartRef}@${chartDigest}   (version ${chartVersion}, pins the image above)`);
  console.log('\nverify (all three, names what is missing):');
  console.log(`  npm run verify -- ${imageRepo}@${imageDigest}${pub ? ` --key ${pub}` : ''}`);
  console.log(`  npm run verify -- ${chartRef}@${chartDigest}${pub ? ` --key ${pub}` : ''}`);
  console.log('or with cosign itself:');
  for (const ref of [`${imageRepo}@${imageDigest}`, `${chartRef}@${chartDigest}`]) {
    console.log(`  ${rel(COSIGN)} verify ${keyFlags}${flags} ${ref}`);
    console.log(`  ${rel(COSIGN)} verify-attestation ${keyFlags}${flags} --type spdxjson ${ref}`);
    console.log(`  ${rel(COSIGN)} verify-attestation ${keyFlags}${flags} --type slsaprovenance1 ${ref}`);
  }
  console.log(`\ninstall: helm install pando-webhook oci://${chartRef} --version ${chartVersion}${flags ? ' --plain-http' : ''} ...   (after verifying oci://${chartRef}@${chartDigest})`);
  console.log(`release: ${timings.reduce((s, t) => s + t.seconds, 0).toFixed(1)} s in the timed steps; ${join(out, 'release.json')}`);
}

if (import.meta.main) {
  try { main(); } catch (e) { die(e instanceof Error ? e.message : String(e)); }
}
