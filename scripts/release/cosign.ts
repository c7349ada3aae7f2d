// Running cosign (.tools/bin/cosign, built by scripts/tools/cosign.sh) and skopeo for the release and
// its verification, with the flags a registry on this machine and an offline signer need.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
export const COSIGN = join(ROOT, '.tools/bin/cosign');

/** How signatures are made: with a key (a file or a KMS URI) and no transparency log, or keyless. */
export type Signer = { kind: 'key'; key: string } | { kind: 'keyless' };

/** A registry on the loopback address speaks plain HTTP (scripts/registry.sh). */
export function isLoopbackRegistry(ref: string): boolean {
  const host = ref.replace(/^oci:\/\//, '').split('/')[0]!;
  return /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(host);
}

/** cosign's flags for a registry: plain HTTP only for one on this machine. */
export function registryFlags(ref: string): string[] {
  return isLoopbackRegistry(ref) ? ['--allow-http-registry', '--allow-insecure-registry'] : [];
}

/**
 * cosign v3's flags to sign or attest. With a key: no transparency log and no signing config from
 * Sigstore's TUF repository (v3 fetches one by default, which needs the public Sigstore instance);
 * cosign v3.1.3 refuses `--tlog-upload=false` together with a signing config
 * (cmd/cosign/cli/signcommon/common.go), so `--use-signing-config=false` goes with it. The bundle
 * is the new format (the default), stored beside the image as an OCI referrer (tag fallback on
 * registries without the referrers API). Keyless: cosign's defaults (Fulcio, Rekor, an OIDC login).
 */
export function signerFlags(signer: Signer): string[] {
  if (signer.kind === 'keyless') return [];
  return ['--key', signer.key, '--tlog-upload=false', '--use-signing-config=false'];
}

/** cosign's flags to verify a signature made with a key and no transparency log. */
export function verifyKeyFlags(pub: string): string[] {
  return ['--key', pub, '--insecure-ignore-tlog=true'];
}

export interface RunResult { code: number; stdout: string; stderr: string }

export function cosign(args: string[], env: Record<string, string> = {}): RunResult {
  const r = spawnSync(COSIGN, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? String(r.error) : '') };
}

export function mustCosign(args: string[], env: Record<string, string> = {}): RunResult {
  const r = cosign(args, env);
  if (r.code !== 0) throw new Error(`cosign ${args.filter((a) => !a.startsWith('/')).join(' ')} failed (${r.code}): ${lastLines(r.stderr)}`);
  return r;
}

export function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').filter((l) => !/^WARNING|^\s*$/.test(l)).slice(-n).join(' | ');
}

/** The manifest a reference names, raw, and its digest (what a pull by digest checks). */
export function rawManifest(ref: string): { digest: string; json: { mediaType?: string; config?: { mediaType?: string }; manifests?: unknown[] } } {
  const tls = isLoopbackRegistry(ref) ? ['--tls-verify=false'] : [];
  const bytes = execFileSync('skopeo', ['inspect', '--raw', ...tls, `docker://${ref}`], { maxBuffer: 16 << 20 });
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, json: JSON.parse(bytes.toString('utf8')) };
}

/** REPO[:TAG][@DIGEST] split; REPO keeps its registry host and port. */
export function parseRef(ref: string): { repo: string; tag?: string; digest?: string } {
  const [nameTag, digest] = ref.split('@') as [string, string | undefined];
  const slash = nameTag.lastIndexOf('/');
  const colon = nameTag.lastIndexOf(':');
  const tag = colon > slash ? nameTag.slice(colon + 1) : undefined;
  const repo = colon > slash ? nameTag.slice(0, colon) : nameTag;
  return { repo, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

export function git(...args: string[]): string {
  return execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).trim();
}
