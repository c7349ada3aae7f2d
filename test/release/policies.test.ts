// The README's "Verify what you install" snippets, checked against the CRDs of the projects that
// enforce them (Kyverno's ClusterPolicy, Flux's OCIRepository; scripts/tools/policy-crds.sh takes them
// from their Go modules): by JSON schema, each CRD version's openAPIV3Schema with unknown fields
// refused (as the API server's strict field validation does; a CRD's schema alone would prune them
// silently). Also that they name what the release writes: the predicate types, the build type,
// cosign as Flux's provider, and the README's cosign commands use the flags verify uses.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { BUILD_TYPE_IMAGE, SLSA_PREDICATE_TYPE } from '../../scripts/release/provenance.ts';
import { SPDX_PREDICATE_TYPE } from '../../scripts/release/verify.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const crds = spawnSync('bash', [join(ROOT, 'scripts/tools/policy-crds.sh')], { encoding: 'utf8' });
const skip = crds.status === 0 ? false : `the CRDs could not be fetched from their Go modules (needs Go and the Go module proxy): ${crds.stderr.trim().split('\n').pop()}`;
const CRD_DIR = crds.stdout.trim();

type Schema = Record<string, any>;

/** A copy of a structural schema in which every object with properties refuses other properties. */
export function strict(schema: Schema): Schema {
  if (Array.isArray(schema)) return schema.map(strict) as unknown as Schema;
  if (!schema || typeof schema !== 'object') return schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as Schema).map(([p, s]) => [p, strict(s as Schema)])) : strict(v as Schema);
  if (out.properties && out.additionalProperties === undefined && !out['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false;
  return out;
}

function validatorFor(file: string, version: string) {
  const crd = parseAllDocuments(readFileSync(join(CRD_DIR, file), 'utf8'))[0]!.toJS();
  const v = crd.spec.versions.find((x: Schema) => x.name === version);
  assert.ok(v?.served, `${crd.metadata.name} serves ${version}`);
  const schema = strict(v.schema.openAPIV3Schema);
  // apiVersion, kind and metadata as the API server checks them for any object.
  schema.properties.metadata = { type: 'object', required: ['name'], properties: { name: { type: 'string' }, namespace: { type: 'string' }, labels: { type: 'object' }, annotations: { type: 'object' } }, additionalProperties: false };
  return { group: crd.spec.group as string, kind: crd.spec.names.kind as string, version, validate: new Ajv({ allErrors: true, strict: false, validateFormats: false }).compile(schema) };
}

function readmeSnippets(): Schema[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Verify what you install\n');
  assert.ok(start >= 0, 'the README has a "Verify what you install" section');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 5));
  return [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].flatMap((m) => parseAllDocuments(m[1]!).map((d) => d.toJS() as Schema));
}

function sectionShell(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Verify what you install\n');
  return [...readme.slice(start, readme.indexOf('\n## ', start + 5)).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).join('\n');
}

describe('the README\'s admission snippets against the Kyverno and Flux CRDs', { skip }, () => {
  const validators = skip ? [] : [validatorFor('kyverno.io_clusterpolicies.yaml', 'v1'), validatorFor('source.toolkit.fluxcd.io_ocirepositories.yaml', 'v1')];
  const snippets = skip ? [] : readmeSnippets();
  const check = (obj: Schema) => {
    const v = validators.find((x) => obj.apiVersion === `${x.group}/${x.version}` && obj.kind === x.kind);
    assert.ok(v, `no CRD for ${obj.apiVersion} ${obj.kind}`);
    return v.validate(obj) ? [] : (v.validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${e.params.additionalProperty})` : ''}${e.params && 'allowedValues' in e.params ? ` (${e.params.allowedValues})` : ''}`);
  };
  const policy = () => snippets.find((s) => s.kind === 'ClusterPolicy')!;
  const oci = () => snippets.find((s) => s.kind === 'OCIRepository')!;

  it('has a Kyverno ClusterPolicy and a Flux OCIRepository, each valid', () => {
    assert.deepEqual(snippets.map((s) => `${s.apiVersion} ${s.kind}`).sort(), ['kyverno.io/v1 ClusterPolicy', 'source.toolkit.fluxcd.io/v1 OCIRepository']);
    for (const s of snippets) assert.deepEqual(check(s), [], `${s.kind}`);
  });

  it('the check refuses an unknown field, a wrong enum value and a missing required field', () => {
    const typo = structuredClone(policy());
    typo.spec.rules[0].verifyImages[0].attestor = [];
    assert.match(check(typo).join(), /must NOT have additional properties \(attestor\)/);
    const badType = structuredClone(policy());
    badType.spec.rules[0].verifyImages[0].type = 'Sigstore';
    assert.match(check(badType).join(), /must be equal to one of the allowed values/);
    const noUrl = structuredClone(oci());
    delete noUrl.spec.url;
    assert.match(check(noUrl).join(), /must have required property 'url'/);
    const badProvider = structuredClone(oci());
    badProvider.spec.verify.provider = 'gpg';
    assert.match(check(badProvider).join(), /allowed values/);
  });

  it('admits what the release writes: cosign v3 bundles, the SBOM and provenance predicate types, the image build type', () => {
    const vi = policy().spec.rules[0].verifyImages[0];
    assert.equal(vi.type, 'SigstoreBundle');
    assert.deepEqual(vi.attestations.map((a: Schema) => a.type), [SPDX_PREDICATE_TYPE, SLSA_PREDICATE_TYPE]);
    assert.equal(vi.attestations[1].conditions[0].all[0].value, BUILD_TYPE_IMAGE);
    assert.equal(oci().spec.verify.provider, 'cosign');
    assert.ok(oci().spec.ref.digest, 'the OCIRepository pins the chart by digest');
  });

  it('the README\'s cosign commands use the flags npm run verify uses', () => {
    const lines = sectionShell().split('\n').filter((l) => l.startsWith('cosign verify'));
    assert.equal(lines.length, 6);
    for (const l of lines) assert.match(l, /--key cosign\.pub --insecure-ignore-tlog=true/);
    assert.equal(lines.filter((l) => l.includes('--type spdxjson')).length, 2);
    assert.equal(lines.filter((l) => l.includes('--type slsaprovenance1')).length, 2);
  });
});
