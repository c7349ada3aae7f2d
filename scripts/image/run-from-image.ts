// Runs the webhook from its image, as a container runtime would, where podman cannot run (this
// sandbox forbids setrlimit): the image is pulled back from the registry by digest (skopeo), unpacked
// (umoci), and its entrypoint started with chroot as the image's user, in a mount namespace of its
// own with the root filesystem read-only, a tmpfs on /tmp, the certificate files bind-mounted
// read-only (as the chart mounts its Secret), /proc and the usual /dev nodes. Needs root.
//
//   const hook = await startWebhookFromImage({ ref: '127.0.0.1:5000/pando-webhook@sha256:...',
//     env: { PANDO_NAMESPACE: 'pando-system' }, certPem, keyPem, caPem });
//   ... https://127.0.0.1:${hook.port}/mutate ...
//   await hook.stop();
import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);
const REPO_ROOT = resolve(import.meta.dirname, '../..');
const IMAGE_DIR = join(REPO_ROOT, '.tools/image');
const POLICY = join(REPO_ROOT, 'scripts/image/policy.json');
/** Where the certificate directory is mounted in the image (PANDO_TLS_CERT_FILE points into it). */
export const TLS_MOUNT_PATH = '/etc/pando-webhook/tls';

export type Platform = 'linux/amd64' | 'linux/arm64';

/** The platform this machine runs natively (what a runtime here picks from an image index). */
export function hostPlatform(): Platform {
  return process.arch === 'arm64' ? 'linux/arm64' : 'linux/amd64';
}

export interface PulledImage {
  ref: string;
  /** The platform's image manifest digest, sha256:... (for an index: the entry of `platform`). */
  digest: string;
  /** The digest `ref` resolves to: the image index (or the manifest, for a single-platform image). */
  refDigest: string;
  platform: Platform;
  /** The unpacked root filesystem, shared by every run of this digest; do not write to it. */
  rootfs: string;
  /** From the image config: what a runtime would start. */
  uid: number;
  gid: number;
  args: string[];
  env: Record<string, string>;
  cwd: string;
}

function isLoopbackRegistry(ref: string): boolean {
  const host = ref.split('/')[0] ?? '';
  return /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(host);
}

/** REGISTRY/REPO of REGISTRY/REPO@sha256:... or REGISTRY/REPO:TAG. */
function repositoryOf(ref: string): string {
  const at = ref.indexOf('@');
  if (at >= 0) return ref.slice(0, at);
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? ref.slice(0, colon) : ref;
}

const INDEX_TYPES = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'];

/**
 * What `ref` resolves to in the registry, and the manifest digest of `platform` in it: an image
 * index yields its entry for the platform (as a runtime on such a node picks it), a single image
 * its own digest if its config has that platform. A pinned ref must resolve to exactly its digest.
 */
async function resolvePlatform(ref: string, platform: Platform, tls: string[]): Promise<{ refDigest: string; digest: string }> {
  const { stdout: raw } = await run('skopeo', ['inspect', '--raw', ...tls, `docker://${ref}`], { encoding: 'buffer', maxBuffer: 16 << 20 });
  const refDigest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
  const pinned = /@(sha256:[0-9a-f]{64})$/.exec(ref)?.[1];
  if (pinned && refDigest !== pinned) throw new Error(`${ref}: the registry served ${refDigest}`);
  const doc = JSON.parse(raw.toString('utf8')) as { mediaType?: string; manifests?: { digest: string; platform?: { os: string; architecture: string } }[] };
  if (doc.mediaType && INDEX_TYPES.includes(doc.mediaType)) {
    const [os, architecture] = platform.split('/');
    const entry = doc.manifests?.find((m) => m.platform?.os === os && m.platform?.architecture === architecture);
    if (!entry) throw new Error(`${ref}: the index has no ${platform} image (${(doc.manifests ?? []).map((m) => `${m.platform?.os}/${m.platform?.architecture}`).join(', ')})`);
    return { refDigest, digest: entry.digest };
  }
  const { stdout } = await run('skopeo', ['inspect', '--config', ...tls, `docker://${ref}`]);
  const config = JSON.parse(stdout) as { os?: string; architecture?: string };
  if (`${config.os}/${config.architecture}` !== platform) throw new Error(`${ref}: a ${config.os}/${config.architecture} image, not ${platform}`);
  return { refDigest, digest: refDigest };
}

/**
 * Copies the `platform` image of `ref` (REGISTRY/REPO@sha256:... or :TAG; an index or a single
 * image) from the registry into an OCI layout and unpacks it, once per manifest digest, under
 * .tools/image/pulled/. TLS verification is off for loopback registries.
 */
export async function pullImage(ref: string, platform: Platform = hostPlatform()): Promise<PulledImage> {
  const pulledDir = join(IMAGE_DIR, 'pulled');
  mkdirSync(pulledDir, { recursive: true });
  const tls = isLoopbackRegistry(ref) ? ['--tls-verify=false'] : [];
  const { refDigest, digest } = await resolvePlatform(ref, platform, tls);
  const bundle = join(pulledDir, digest.slice(7));
  if (!existsSync(join(bundle, 'config.json'))) {
    const work = mkdtempSync(join(pulledDir, 'tmp-'));
    try {
      const digestFile = join(work, 'digest');
      const srcTls = tls.length > 0 ? ['--src-tls-verify=false'] : [];
      await run('skopeo', ['copy', '--quiet', '--policy', POLICY, ...srcTls, '--digestfile', digestFile, `docker://${repositoryOf(ref)}@${digest}`, `oci:${work}/oci:image`]);
      const copied = readFileSync(digestFile, 'utf8').trim();
      if (copied !== digest) throw new Error(`${ref}: copied ${copied} for the ${platform} image ${digest}`);
      await run('umoci', ['unpack', '--image', `${work}/oci:image`, join(work, 'bundle')]);
      try {
        renameSync(join(work, 'bundle'), bundle);
      } catch (err) {
        // Another run unpacked the same digest meanwhile: keep theirs.
        if (!existsSync(join(bundle, 'config.json'))) throw err;
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as {
    process: { user: { uid: number; gid: number }; args: string[]; env?: string[]; cwd: string };
  };
  return {
    ref,
    digest,
    refDigest,
    platform,
    rootfs: join(bundle, 'rootfs'),
    uid: spec.process.user.uid,
    gid: spec.process.user.gid,
    args: spec.process.args,
    env: Object.fromEntries((spec.process.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
    cwd: spec.process.cwd,
  };
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no port'))));
    });
  });
}

function httpsStatus(port: number, path: string, caPem: string | undefined): Promise<number> {
  return new Promise((res) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path, ca: caPem, rejectUnauthorized: caPem !== undefined, timeout: 2000, agent: false },
      (r) => {
        r.resume();
        res(r.statusCode ?? 0);
      },
    );
    req.on('error', () => res(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export interface ImageWebhookOptions {
  /** REGISTRY/pando-webhook@sha256:... (a tag works too). */
  ref: string;
  /**
   * Which image of an index to run; default the host's. Another architecture runs under qemu-user
   * through binfmt_misc (scripts/image/host-arm64.sh registers it with the F flag, so the
   * interpreter needs no file inside the chroot); give readyTimeoutMs room for the emulation.
   */
  platform?: Platform;
  /** The chart's env for the webhook container; listening and TLS variables are set here. */
  env?: Record<string, string>;
  /**
   * Serving certificate and key (PEM), mounted read-only at TLS_MOUNT_PATH as tls.crt and tls.key.
   * Without them the webhook gets no certificate files (self-signed mode: PANDO_TLS_SELF_SIGNED in env).
   */
  certPem?: string;
  keyPem?: string;
  /** CA that signed certPem: readiness is checked with verification when given. */
  caPem?: string;
  /** More read-only files in the same mounted folder (name -> content), e.g. a kubeconfig standing in for the service account token mount. */
  extraFiles?: Record<string, string>;
  port?: number;
  metricsPort?: number;
  readyTimeoutMs?: number;
  /**
   * Detached, its output appended to this file: the webhook outlives the caller (npm run demo), which
   * ends it by `pid` and removes `runDir` itself.
   */
  logFile?: string;
}

export interface ImageWebhook {
  image: PulledImage;
  port: number;
  metricsPort: number;
  /** https://127.0.0.1:PORT/mutate */
  url: string;
  /** The webhook's process id (node itself: unshare, sh and chroot exec into it). */
  pid: number;
  /** The image's command (what /proc/PID/cmdline shows) and the folder of the mounted files. */
  args: string[];
  runDir: string;
  /** From spawning the runtime to the first 200 on /readyz. */
  coldStartMs: number;
  /** Sum of the samples of a metric on the plain-HTTP metrics port whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Everything the process wrote, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

// Runs in the new mount namespace with the host's sh (the image has none), then becomes the webhook.
const RUNTIME_SCRIPT = `set -eu
R="$1"; TLS="$2"; U="$3"; G="$4"; shift 4
mount --bind "$R" "$R"
mount -t tmpfs -o mode=1777,size=64m,nosuid,nodev tmpfs "$R/tmp"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t tmpfs -o mode=755,size=64k,nosuid tmpfs "$R/dev"
for d in null zero full random urandom; do : > "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
mount --bind "$TLS" "$R${TLS_MOUNT_PATH}"
mount -o remount,bind,ro "$R${TLS_MOUNT_PATH}"
mount -o remount,bind,ro "$R"
exec chroot --userspec="$U:$G" --groups="$G" "$R" "$@"
`;

/** Pulls the image (once per digest) and starts the webhook from it; resolves when /readyz is 200. */
export async function startWebhookFromImage(opts: ImageWebhookOptions): Promise<ImageWebhook> {
  if (process.getuid?.() !== 0) throw new Error('startWebhookFromImage needs root (mount namespace, chroot)');
  const image = await pullImage(opts.ref, opts.platform);
  // Mount points a runtime creates; the image itself has none of them.
  for (const dir of ['proc', 'dev', TLS_MOUNT_PATH.slice(1)]) mkdirSync(join(image.rootfs, dir), { recursive: true });

  const runDir = mkdtempSync(join(IMAGE_DIR, 'run-'));
  const tlsDir = join(runDir, 'tls');
  mkdirSync(tlsDir);
  const pair: Record<string, string> = opts.certPem !== undefined && opts.keyPem !== undefined ? { 'tls.crt': opts.certPem, 'tls.key': opts.keyPem } : {};
  const files: Record<string, string> = { ...pair, ...opts.extraFiles };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(tlsDir, name), content);
  for (const f of Object.keys(files)) {
    chownSync(join(tlsDir, f), image.uid, image.gid);
    chmodSync(join(tlsDir, f), 0o400);
  }
  chmodSync(tlsDir, 0o755);
  chmodSync(runDir, 0o755);

  const port = opts.port ?? (await freePort());
  let metricsPort = opts.metricsPort ?? (await freePort());
  while (metricsPort === port) metricsPort = await freePort();
  const env: Record<string, string> = {
    ...image.env,
    PANDO_LOG_LEVEL: 'warn',
    PANDO_SHUTDOWN_DELAY_MS: '0',
    ...opts.env,
    PANDO_HOST: '127.0.0.1',
    PANDO_PORT: String(port),
    PANDO_METRICS_PORT: String(metricsPort),
    ...('tls.crt' in pair ? { PANDO_TLS_CERT_FILE: `${TLS_MOUNT_PATH}/tls.crt`, PANDO_TLS_KEY_FILE: `${TLS_MOUNT_PATH}/tls.key` } : {}),
  };
  const started = performance.now();
  const logFd = opts.logFile ? openSync(opts.logFile, 'a') : undefined;
  const child = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', RUNTIME_SCRIPT, 'runtime', image.rootfs, tlsDir, String(image.uid), String(image.gid), ...image.args],
    logFd === undefined ? { stdio: ['ignore', 'pipe', 'pipe'], env } : { stdio: ['ignore', logFd, logFd], env, detached: true },
  );
  if (logFd !== undefined) {
    closeSync(logFd);
    child.unref();
  }
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const output = () => (opts.logFile ? readFileSync(opts.logFile, 'utf8') : out);
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const cleanup = () => rmSync(runDir, { recursive: true, force: true });

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
      if (!done) child.kill('SIGKILL');
      await exited;
    }
    cleanup();
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      cleanup();
      throw new Error(`the webhook from ${opts.ref} (${image.platform}) exited (${child.exitCode ?? child.signalCode}):\n${output()}`);
    }
    if ((await httpsStatus(port, '/readyz', opts.caPem)) === 200) {
      const coldStartMs = performance.now() - started;
      return {
        image,
        port,
        metricsPort,
        url: `https://127.0.0.1:${port}/mutate`,
        pid: child.pid as number,
        args: image.args,
        runDir,
        coldStartMs,
        output,
        metric: async (name, labels = {}) => {
          const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
          let sum = 0;
          for (const line of text.split('\n')) {
            const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
            if (!m || m[1] !== name) continue;
            const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
            if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
          }
          return sum;
        },
        stop,
      };
    }
    await sleep(10);
  }
  await stop();
  throw new Error(`the webhook from ${opts.ref} (${image.platform}) did not become ready in ${opts.readyTimeoutMs ?? 30_000} ms:\n${output()}`);
}
