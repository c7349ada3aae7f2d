// The SBOM's shape (SPDX 2.3 JSON's mandatory fields) and its comparison with the image's package
// list: each check is shown to catch the defect it is there for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareWithPackageList, purl, spdxDocument, spdxProblems, type FoundPackage, type SpdxDocument } from '../../scripts/release/spdx.ts';
import { nodeVersionOf, parseControl, parsePackageList } from '../../scripts/release/image-contents.ts';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const found: FoundPackage[] = [
  { kind: 'deb', name: 'libc6', version: '2.36-9+deb12u14', arch: 'amd64', supplier: 'GNU Libc Maintainers <debian-glibc@lists.debian.org>', path: '/var/lib/dpkg/status.d/libc6' },
  { kind: 'binary', name: 'node', version: '24.21.0', license: 'MIT', path: '/usr/local/bin/node' },
  { kind: 'app', name: 'pando-webhook', version: '0.1.0', license: 'Apache-2.0', path: '/app/package.json' },
  { kind: 'npm', name: 'fastify', version: '5.12.8', license: 'MIT', path: '/app/node_modules/fastify/package.json' },
  { kind: 'npm', name: '@peculiar/x509', version: '2.2.0', license: 'MIT', path: '/app/node_modules/@peculiar/x509/package.json' },
  // The same package at a second path is one SPDX package.
  { kind: 'npm', name: 'fastify', version: '5.12.8', license: 'MIT', path: '/app/node_modules/x/node_modules/fastify/package.json' },
];
const subject = { name: 'pando-webhook', type: 'image' as const, digest: DIGEST, version: '0.1.0', platform: 'linux/amd64', created: '2026-12-06T08:00:00Z', distro: 'debian-12' };
const clone = (d: SpdxDocument) => JSON.parse(JSON.stringify(d)) as Record<string, any>;

describe('SPDX 2.3 document', () => {
  const doc = spdxDocument(subject, found);

  it('has every mandatory field, one package per name@version, the image described and containing them', () => {
    assert.deepEqual(spdxProblems(doc), []);
    assert.equal(doc.spdxVersion, 'SPDX-2.3');
    assert.equal(doc.packages.length, 1 + 5);
    assert.deepEqual(doc.documentDescribes, ['SPDXRef-Image-pando-webhook']);
    assert.equal(doc.relationships.filter((r) => r.relationshipType === 'CONTAINS').length, 5);
    assert.equal(doc.packages[0]!.checksums![0]!.checksumValue, 'ab'.repeat(32));
  });

  it('is the same document for the same image (no clock, stable order)', () => {
    assert.deepEqual(spdxDocument(subject, [...found].reverse()), doc);
  });

  it('writes purls as the package-url spec spells them', () => {
    assert.equal(purl(found[0]!, 'debian-12'), 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=debian-12');
    assert.equal(purl(found[4]!), 'pkg:npm/%40peculiar/x509@2.2.0');
    assert.equal(purl(found[1]!), 'pkg:generic/node@24.21.0');
  });

  const broken: [string, (d: Record<string, any>) => void, RegExp][] = [
    ['wrong version', (d) => { d.spdxVersion = 'SPDX-2.2'; }, /spdxVersion/],
    ['no data license', (d) => { delete d.dataLicense; }, /dataLicense/],
    ['no namespace', (d) => { delete d.documentNamespace; }, /documentNamespace/],
    ['namespace with #', (d) => { d.documentNamespace = 'https://x/y#z'; }, /documentNamespace/],
    ['no creators', (d) => { d.creationInfo.creators = []; }, /creators/],
    ['created with milliseconds', (d) => { d.creationInfo.created = '2026-12-06T08:00:00.000Z'; }, /created/],
    ['package without downloadLocation', (d) => { delete d.packages[1].downloadLocation; }, /downloadLocation/],
    ['duplicate SPDXID', (d) => { d.packages[2].SPDXID = d.packages[1].SPDXID; }, /used twice/],
    ['bad SPDXID', (d) => { d.packages[1].SPDXID = 'SPDXRef-a b'; }, /SPDXID/],
    ['relationship to nothing', (d) => { d.relationships[1].relatedSpdxElement = 'SPDXRef-gone'; }, /no element/],
    ['nothing described', (d) => { d.documentDescribes = []; d.relationships = []; }, /nothing is described/],
    ['bad purl', (d) => { d.packages[1].externalRefs[0].referenceLocator = 'npm:fastify'; }, /purl/],
  ];
  for (const [name, breakIt, message] of broken) {
    it(`names the problem: ${name}`, () => {
      const d = clone(doc);
      breakIt(d);
      const problems = spdxProblems(d);
      assert.ok(problems.some((p) => message.test(p)), `expected ${message} in ${JSON.stringify(problems)}`);
    });
  }
});

describe('SBOM against the image\'s package list', () => {
  const doc = spdxDocument(subject, found);
  const list = ['deb:libc6', 'binary:node@24.21.0', 'app:pando-webhook@0.1.0', 'npm:fastify@5.12.8', 'npm:@peculiar/x509@2.2.0'];

  it('agrees when the SBOM lists exactly the package list', () => {
    assert.deepEqual(compareWithPackageList(doc, list), []);
  });

  it('fails on a package the list does not have', () => {
    const extra = spdxDocument(subject, [...found, { kind: 'npm', name: 'left-pad', version: '1.3.0' }]);
    assert.deepEqual(compareWithPackageList(extra, list), ['the SBOM lists npm:left-pad@1.3.0, which is not in the image\'s package list']);
  });

  it('fails on another version than the lock file\'s', () => {
    const other = spdxDocument(subject, found.map((p) => p.name === 'fastify' ? { ...p, version: '5.0.0' } : p));
    assert.deepEqual(compareWithPackageList(other, list), [
      'the SBOM lists npm:fastify@5.0.0, which is not in the image\'s package list',
      'the image\'s package list has npm:fastify@5.12.8, which the SBOM does not list',
    ]);
  });

  it('fails on a listed Debian package the SBOM misses', () => {
    assert.deepEqual(compareWithPackageList(doc, [...list, 'deb:ca-certificates']), ['the image\'s package list has deb:ca-certificates, which the SBOM does not list']);
  });
});

describe('the image\'s package list (packages-ARCH.txt, what build.sh says one platform image is made of)', () => {
  const list = [
    'deb\tlibc6\t2.36-9+deb12u14\tarm64', 'deb\tca-certificates\t20250419~deb12u2\tall',
    'npm\tnode-linux-arm64\t24.21.0', 'app\tpando-webhook\t0.1.0', 'npm\tfastify\t5.6.0', '',
  ].join('\n');

  it('reads Debian packages with version and architecture, the Node package as the binary it holds, the app and its npm packages', () => {
    assert.deepEqual(parsePackageList(list), [
      'app:pando-webhook@0.1.0', 'binary:node@24.21.0', 'deb:ca-certificates@20250419~deb12u2:all', 'deb:libc6@2.36-9+deb12u14:arm64', 'npm:fastify@5.6.0',
    ]);
  });

  it('an SBOM of another architecture\'s libc6 does not match it (the check is per platform)', () => {
    const found: FoundPackage[] = [
      { kind: 'deb', name: 'libc6', version: '2.36-9+deb12u14', arch: 'amd64' }, { kind: 'deb', name: 'ca-certificates', version: '20250419~deb12u2', arch: 'all' },
      { kind: 'binary', name: 'node', version: '24.21.0' }, { kind: 'app', name: 'pando-webhook', version: '0.1.0' }, { kind: 'npm', name: 'fastify', version: '5.6.0' },
    ];
    const doc = spdxDocument({ name: 'pando-webhook', type: 'image', digest: `sha256:${'c'.repeat(64)}`, version: '0.1.0', created: '2026-01-01T00:00:00Z' }, found);
    assert.deepEqual(compareWithPackageList(doc, parsePackageList(list)), [
      'the SBOM lists deb:libc6@2.36-9+deb12u14:amd64, which is not in the image\'s package list',
      'the image\'s package list has deb:libc6@2.36-9+deb12u14:arm64, which the SBOM does not list',
    ]);
  });

  it('refuses a line it cannot read, naming it', () => {
    assert.throws(() => parsePackageList('deb\tlibc6\t2.36\n', 'packages-amd64.txt'), /packages-amd64\.txt line 1 is not KIND<TAB>NAME<TAB>VERSION/);
    assert.throws(() => parsePackageList('rpm\tglibc\t2.36\n'), /line 1/);
  });
});

describe('evidence readers', () => {
  it('reads a Node binary\'s version as syft\'s classifier does', () => {
    assert.equal(nodeVersionOf(Buffer.from('\0junk node.js/vX \0node.js/v24.21.0\0Protocol')), '24.21.0');
    assert.equal(nodeVersionOf(Buffer.from('no version here')), undefined);
  });

  it('parses a Debian control record with continuation lines', () => {
    const c = parseControl('Package: libc6\nVersion: 2.36-9+deb12u14\nArchitecture: amd64\nDescription: GNU C Library\n Contains the standard libraries\n');
    assert.equal(c.Package, 'libc6');
    assert.equal(c.Version, '2.36-9+deb12u14');
    assert.equal(c.Description, 'GNU C Library\nContains the standard libraries');
  });
});
