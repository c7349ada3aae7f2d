// The pure parts of `npm run verify` and `npm run release`: how cosign's failures become one line,
// how references are split, what a provenance predicate must say. The cosign messages are the ones
// cosign v3.1.3 printed here (test/release/release.e2e.ts runs the real thing).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackRegistry, parseRef, registryFlags, signerFlags } from '../../scripts/release/cosign.ts';
import { provenanceProblems, slsaProvenance, BUILD_TYPE_IMAGE } from '../../scripts/release/provenance.ts';
import { classifyCosignFailure, statementsOf } from '../../scripts/release/verify.ts';

describe('cosign failures as one line', () => {
  it('nothing attached', () => {
    assert.equal(classifyCosignFailure('WARNING: Skipping tlog verification ...\nError: no matching attestations: \nerror during command execution: no matching attestations: \n', 'signature'), 'no signature found');
    assert.equal(classifyCosignFailure('Error: no matching attestations: \n', 'attestation'), 'no attestation found');
  });

  it('made with another key', () => {
    const stderr = 'Error: no matching attestations: failed to verify signature: could not verify envelope: accepted signatures do not match threshold, Found: 0, Expected 1\n';
    assert.match(classifyCosignFailure(stderr, 'signature'), /^a signature exists but does not verify with this key/);
    assert.match(classifyCosignFailure(stderr, 'attestation'), /^no attestation verifies with this key/);
  });

  it('attestations of another type only', () => {
    assert.equal(classifyCosignFailure('Error: none of the attestations matched the predicate type: slsaprovenance1, found: https://spdx.dev/Document\n', 'attestation'),
      'no attestation of this type found (https://spdx.dev/Document only)');
  });

  it('anything else in cosign\'s own words', () => {
    assert.match(classifyCosignFailure('Error: GET http://127.0.0.1:1/v2/: connection refused\n', 'signature'), /^cosign failed: .*connection refused/);
  });
});

describe('attestation output', () => {
  it('decodes the in-toto statements of DSSE envelopes, one per line', () => {
    const statement = { _type: 'https://in-toto.io/Statement/v1', predicateType: 'https://spdx.dev/Document', subject: [{ digest: { sha256: 'ab' } }], predicate: {} };
    const line = JSON.stringify({ payloadType: 'application/vnd.in-toto+json', payload: Buffer.from(JSON.stringify(statement)).toString('base64'), signatures: [] });
    assert.deepEqual(statementsOf(`${line}\nnot json\n`), [statement]);
  });
});

describe('references and flags', () => {
  it('splits REPO:TAG@DIGEST with a registry port', () => {
    assert.deepEqual(parseRef('127.0.0.1:5000/charts/pando-webhook:0.1.0@sha256:ab'), { repo: '127.0.0.1:5000/charts/pando-webhook', tag: '0.1.0', digest: 'sha256:ab' });
    assert.deepEqual(parseRef('127.0.0.1:5000/pando-webhook'), { repo: '127.0.0.1:5000/pando-webhook' });
    assert.deepEqual(parseRef('registry.example/p/x@sha256:cd'), { repo: 'registry.example/p/x', digest: 'sha256:cd' });
  });

  it('plain HTTP only for a registry on this machine', () => {
    assert.ok(isLoopbackRegistry('127.0.0.1:5000/x'));
    assert.ok(isLoopbackRegistry('oci://localhost:5000/x'));
    assert.ok(!isLoopbackRegistry('registry.example/x'));
    assert.deepEqual(registryFlags('registry.example/x'), []);
  });

  it('a key signs without transparency log and without Sigstore\'s signing config (cosign v3 refuses one with the other); keyless uses cosign\'s defaults', () => {
    assert.deepEqual(signerFlags({ kind: 'key', key: 'k' }), ['--key', 'k', '--tlog-upload=false', '--use-signing-config=false']);
    assert.deepEqual(signerFlags({ kind: 'keyless' }), []);
  });
});

describe('SLSA v1 provenance', () => {
  const input = {
    kind: 'image' as const, sourceUri: 'https://github.com/pandocore/pando-webhook', commit: 'c0ffee', dirty: false, command: 'npm run image', version: '0.1.0',
    dependencies: [{ name: 'package-lock.json', digest: { sha256: 'aa' } }, { uri: 'pkg:deb/debian/libc6@2.36?arch=amd64', digest: { sha256: 'bb' } }],
    builderId: 'https://pandocore.xyz/slsa/builders/ci', builderVersions: { node: 'v24' }, invocationId: 'i', startedOn: '2026-12-06T08:00:00Z', finishedOn: '2026-12-06T08:01:00Z',
  };
  const pred = slsaProvenance(input);

  it('names the build type, the commit first among the resolved dependencies, the builder', () => {
    assert.equal(pred.buildDefinition.buildType, BUILD_TYPE_IMAGE);
    assert.deepEqual(pred.buildDefinition.resolvedDependencies[0], { uri: 'git+https://github.com/pandocore/pando-webhook', digest: { gitCommit: 'c0ffee' } });
    assert.equal(pred.buildDefinition.resolvedDependencies.length, 3);
    assert.deepEqual(provenanceProblems(pred, { commit: 'c0ffee' }), []);
  });

  it('names what is wrong', () => {
    assert.deepEqual(provenanceProblems(pred, { commit: 'beef' }), ['built from commit c0ffee, expected beef']);
    assert.deepEqual(provenanceProblems({}), ['buildDefinition is missing']);
    const noCommit = slsaProvenance(input);
    noCommit.buildDefinition.resolvedDependencies.shift();
    assert.match(provenanceProblems(noCommit).join(), /source commit/);
    const noBuilder = JSON.parse(JSON.stringify(pred));
    delete noBuilder.runDetails.builder.id;
    assert.match(provenanceProblems(noBuilder).join(), /builder\.id/);
  });
});
