// npm run verify -- REF --key cosign.pub
//
// Checks what `npm run release` attaches to an image or chart in a registry, against a public key
// (a file or a KMS URI): the cosign signature, the SBOM attestation (SPDX 2.3 JSON, its shape and
// that it describes this digest) and the SLSA v1 provenance attestation. REF is REPO:TAG, REPO@DIGEST
// or REPO:TAG@DIGEST (the tag must still point at the digest: a moved tag is named). An image index
// is checked as a whole and per platform. One line per check (ok or what is missing or wrong); exit
// code 1 if any failed. `--expect-commit SHA` also requires the provenance to name that commit.
import { parseArgs } from 'node:util';
import { cosign, parseRef, rawManifest, registryFlags, lastLines, verifyKeyFlags } from './cosign.ts';
import { provenanceProblems, SLSA_PREDICATE_TYPE } from './provenance.ts';
import { spdxProblems, type SpdxDocument } from './spdx.ts';

export const SPDX_PREDICATE_TYPE = 'https://spdx.dev/Document';
const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';

export interface Check { ok: boolean; what: string; detail: string }

interface Statement { _type?: string; predicateType?: string; subject?: { name?: string; digest?: Record<string, string> }[]; predicate?: unknown }

/** Statements cosign verify-attestation printed (one DSSE envelope per line, or a bundle). */
export function statementsOf(stdout: string): Statement[] {
  const out: Statement[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as { payload?: string; dsseEnvelope?: { payload?: string } };
      const payload = j.payload ?? j.dsseEnvelope?.payload;
      if (payload) out.push(JSON.parse(Buffer.from(payload, 'base64').toString('utf8')) as Statement);
    } catch { /* not an envelope */ }
  }
  return out;
}

/** A cosign failure as a sentence: missing, made with another key, or cosign's own words. */
export function classifyCosignFailure(stderr: string, what: 'signature' | 'attestation'): string {
  // cosign v3.1.3's words (pkg/cosign/verify.go): a signature or attestation that does not verify
  // with the key is "failed to verify signature ... accepted signatures do not match threshold";
  // none at all is "no matching attestations: " with nothing after it (also for signatures, which
  // are bundles now) or "no signatures found".
  if (/failed to verify|do not match threshold|invalid signature|signature mismatch|crypto\/(ecdsa|rsa)/i.test(stderr)) return what === 'signature'
    ? 'a signature exists but does not verify with this key (made with another key, or altered)'
    : 'no attestation verifies with this key (what is attached was signed with another key, or altered)';
  if (/none of the attestations matched the predicate type/i.test(stderr)) return `no attestation of this type found (${/found: (.*)$/m.exec(stderr)?.[1] ?? 'none'} only)`;
  if (/no signatures found|no attestations found|no matching (signatures|attestations):[ \t]*$/im.test(stderr)) return `no ${what} found`;
  return `cosign failed: ${lastLines(stderr, 2)}`;
}

function verifySignature(ref: string, key: string): Check {
  const r = cosign(['verify', ...verifyKeyFlags(key), ...registryFlags(ref), ref]);
  if (r.code === 0) return { ok: true, what: 'signature', detail: `${ref} is signed with ${key}` };
  return { ok: false, what: 'signature', detail: `${ref}: ${classifyCosignFailure(r.stderr, 'signature')}` };
}

function verifyAttestation(ref: string, digest: string, key: string, type: 'spdxjson' | 'slsaprovenance1', expect: { commit?: string }): Check {
  const what = type === 'spdxjson' ? 'SBOM attestation' : 'provenance attestation';
  const predicateType = type === 'spdxjson' ? SPDX_PREDICATE_TYPE : SLSA_PREDICATE_TYPE;
  const r = cosign(['verify-attestation', ...verifyKeyFlags(key), ...registryFlags(ref), '--type', type, ref]);
  if (r.code !== 0) return { ok: false, what, detail: `${ref}: ${classifyCosignFailure(r.stderr, 'attestation')}` };
  const statements = statementsOf(r.stdout).filter((s) => s.predicateType === predicateType);
  if (statements.length === 0) return { ok: false, what, detail: `${ref}: cosign verified an attestation but printed no ${predicateType} statement` };
  const hex = digest.replace(/^sha256:/, '');
  const problems: string[] = [];
  for (const s of statements) {
    if (!s.subject?.some((x) => x.digest?.sha256 === hex)) problems.push(`its subject is ${JSON.stringify(s.subject?.map((x) => x.digest?.sha256))}, not ${digest}`);
    if (type === 'spdxjson') {
      problems.push(...spdxProblems(s.predicate).map((p) => `SPDX: ${p}`));
      const doc = s.predicate as SpdxDocument;
      const described = doc?.packages?.find((p) => doc.documentDescribes?.includes(p.SPDXID));
      if (described && !described.checksums?.some((c) => c.checksumValue === hex)) problems.push(`the SBOM describes ${described.checksums?.[0]?.checksumValue ?? 'no digest'}, not ${digest}`);
    } else {
      problems.push(...provenanceProblems(s.predicate, expect).map((p) => `provenance: ${p}`));
    }
  }
  if (problems.length) return { ok: false, what, detail: `${ref}: ${[...new Set(problems)].join('; ')}` };
  const summary = type === 'spdxjson'
    ? `${((statements[0]!.predicate as SpdxDocument).packages?.length ?? 1) - 1} packages`
    : `commit ${((statements[0]!.predicate as { buildDefinition?: { resolvedDependencies?: { digest?: { gitCommit?: string } }[] } }).buildDefinition?.resolvedDependencies?.find((d) => d.digest?.gitCommit)?.digest?.gitCommit ?? '?').slice(0, 12)}`;
  return { ok: true, what, detail: `${ref}: ${predicateType}, ${summary}` };
}

/** Every check for REF; pure of printing, so tests can read the lines. */
export function verifyRef(ref: string, key: string, expect: { commit?: string } = {}): Check[] {
  const checks: Check[] = [];
  const { repo, tag, digest: given } = parseRef(ref.replace(/^oci:\/\//, ''));
  let digest = given;
  if (tag) {
    let resolved: string | undefined;
    try { resolved = rawManifest(`${repo}:${tag}`).digest; } catch (e) {
      checks.push({ ok: false, what: 'reference', detail: `${repo}:${tag} cannot be read: ${lastLines(String((e as { stderr?: unknown }).stderr ?? e), 1)}` });
    }
    if (resolved && given && resolved !== given) {
      checks.push({ ok: false, what: 'reference', detail: `the tag moved: ${repo}:${tag} points at ${resolved}, not at ${given}` });
    } else if (resolved && !given) {
      digest = resolved;
      checks.push({ ok: true, what: 'reference', detail: `${repo}:${tag} points at ${resolved} (pin this digest)` });
    } else if (resolved) checks.push({ ok: true, what: 'reference', detail: `${repo}:${tag} still points at ${given}` });
  }
  if (!digest) return checks.length ? checks : [{ ok: false, what: 'reference', detail: `${ref} names neither a tag nor a digest` }];
  let manifest: ReturnType<typeof rawManifest>['json'];
  try { manifest = rawManifest(`${repo}@${digest}`).json; } catch (e) {
    return [...checks, { ok: false, what: 'reference', detail: `${repo}@${digest} cannot be read: ${lastLines(String((e as { stderr?: unknown }).stderr ?? e), 1)}` }];
  }
  const kind = manifest.manifests ? 'image index' : manifest.config?.mediaType === HELM_CONFIG ? 'chart' : 'image';
  const subjects = [digest, ...(manifest.manifests ?? [])
    .filter((m) => { const d = m as { platform?: { os?: string }; annotations?: Record<string, string> }; return d.platform?.os !== 'unknown' && !d.annotations?.['vnd.docker.reference.type']; })
    .map((m) => (m as { digest: string }).digest)];
  for (const d of subjects) {
    const r = `${repo}@${d}`;
    checks.push(verifySignature(r, key));
    checks.push(verifyAttestation(r, d, key, 'spdxjson', expect));
    checks.push(verifyAttestation(r, d, key, 'slsaprovenance1', expect));
  }
  checks.unshift({ ok: true, what: 'kind', detail: `${repo}@${digest} is ${kind === 'image index' ? `an image index of ${subjects.length - 1} platform images` : `${kind === 'image' ? 'an image' : 'a chart'}`}` });
  return checks;
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      key: { type: 'string' },
      'expect-commit': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length !== 1 || !values.key) {
    console.error('usage: npm run verify -- REF --key cosign.pub [--expect-commit SHA]   (REF: REPO:TAG, REPO@sha256:..., REPO:TAG@sha256:...)');
    process.exit(values.help ? 0 : 2);
  }
  const t0 = Date.now();
  const checks = verifyRef(positionals[0]!, values.key, values['expect-commit'] ? { commit: values['expect-commit'] } : {});
  for (const c of checks) console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.what}: ${c.detail}`);
  const failed = checks.filter((c) => !c.ok).length;
  console.log(failed ? `verify: ${failed} of ${checks.length} checks failed (${((Date.now() - t0) / 1000).toFixed(1)} s)` : `verify: all ${checks.length} checks passed (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  process.exit(failed ? 1 : 0);
}

if (import.meta.main) main();
