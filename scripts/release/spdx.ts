// SPDX 2.3 JSON documents for the image and the chart, and the checks on them. Pure: no file, no
// clock (the creation time is given), so the same image gives the same document.
//
// Why not syft: built from its Go module it took 2179 s cold on two cores (CI's whole cold budget is
// 45 minutes), and our image is small and made by one script that knows what it puts in: the Debian
// packages' control records (/var/lib/dpkg/status.d/, written by scripts/image/build.sh), the Node
// binary (its version string, as syft's binary classifier reads it) and the app's node_modules
// (every package.json at a node_modules/<name>/ path). scripts/release/image-contents.ts reads those
// from the image's layers, not from the build's inputs.

/** One package found in the image (or the chart). */
export interface FoundPackage {
  /** oci: an image a chart deploys (version: its digest, or its tag when not pinned). */
  kind: 'deb' | 'npm' | 'binary' | 'app' | 'oci';
  name: string;
  version: string;
  /** Debian architecture (deb only). */
  arch?: string;
  /** SPDX license expression as the package declares it, or undefined (NOASSERTION). */
  license?: string;
  /** Where in the image it was found (status.d file, package.json path, binary path). */
  path?: string;
  /** Debian source package, supplier (Maintainer) and the like: kept as SPDX fields. */
  supplier?: string;
}

export interface SubjectInfo {
  /** Name of what is described: pando-webhook (image) or pando-webhook (chart). */
  name: string;
  /** `image` (an OCI image manifest) or `chart` (a Helm chart artifact). */
  type: 'image' | 'chart';
  /** sha256:... of the manifest. */
  digest: string;
  version: string;
  /** e.g. linux/amd64 for an image. */
  platform?: string;
  /** ISO 8601 UTC, seconds precision (SOURCE_DATE_EPOCH for a reproducible document). */
  created: string;
  /** Debian release of the image's packages, for the purls (`debian-12`). */
  distro?: string;
}

export interface SpdxPackage {
  name: string;
  SPDXID: string;
  versionInfo?: string;
  downloadLocation: string;
  filesAnalyzed: boolean;
  licenseConcluded?: string;
  licenseDeclared?: string;
  supplier?: string;
  primaryPackagePurpose?: string;
  sourceInfo?: string;
  checksums?: { algorithm: string; checksumValue: string }[];
  externalRefs?: { referenceCategory: string; referenceType: string; referenceLocator: string }[];
}

export interface SpdxDocument {
  spdxVersion: 'SPDX-2.3';
  dataLicense: 'CC0-1.0';
  SPDXID: 'SPDXRef-DOCUMENT';
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  documentDescribes: string[];
  packages: SpdxPackage[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
}

export const TOOL_NAME = 'pando-webhook-sbom';

/** A purl per the package-url spec (the types deb, npm, generic, oci). */
export function purl(p: FoundPackage, distro?: string): string {
  const v = encodeURIComponent(p.version);
  switch (p.kind) {
    case 'deb': {
      const q = [p.arch ? `arch=${p.arch}` : '', distro ? `distro=${distro}` : ''].filter(Boolean).join('&');
      return `pkg:deb/debian/${encodeURIComponent(p.name)}@${v}${q ? `?${q}` : ''}`;
    }
    case 'npm': {
      const [scope, bare] = p.name.startsWith('@') ? p.name.split('/') : [undefined, p.name];
      return `pkg:npm/${scope ? `${encodeURIComponent(scope)}/` : ''}${encodeURIComponent(bare!)}@${v}`;
    }
    case 'oci':
      return `pkg:oci/${encodeURIComponent(p.name.split('/').pop()!)}@${v}${p.name.includes('/') ? `?repository_url=${encodeURIComponent(p.name)}` : ''}`;
    case 'binary':
    case 'app':
      return `pkg:generic/${encodeURIComponent(p.name)}@${v}`;
  }
}

/** SPDX ids allow letters, digits, `.` and `-` only. */
export function spdxId(prefix: string, ...parts: string[]): string {
  return `SPDXRef-${prefix}-${parts.join('-').replace(/[^A-Za-z0-9.-]+/g, '-')}`;
}

/** A license string as SPDX wants it: a plain id or expression, else NOASSERTION. */
function licenseOf(license: string | undefined): string {
  if (!license) return 'NOASSERTION';
  return /^[A-Za-z0-9.+\-() ]+$/.test(license) && !/\s{2,}/.test(license) ? license : 'NOASSERTION';
}

/** A Debian Maintainer field as an SPDX supplier: a team or list is an organization, else a person. */
function supplierOf(maintainer: string): string {
  const name = maintainer.replace(/\s*<[^>]*>\s*$/, '');
  return `${/maintainers|team|list|project/i.test(maintainer) ? 'Organization' : 'Person'}: ${name}`;
}

/** The key that says two found packages are the same SPDX package. */
export function packageKey(p: Pick<FoundPackage, 'kind' | 'name' | 'version' | 'arch'>): string {
  return `${p.kind}:${p.name}@${p.version}${p.arch ? `:${p.arch}` : ''}`;
}

/** The SPDX 2.3 document for one image (or chart) and what was found in it. */
export function spdxDocument(subject: SubjectInfo, found: FoundPackage[]): SpdxDocument {
  const hex = subject.digest.replace(/^sha256:/, '');
  const rootId = spdxId(subject.type === 'image' ? 'Image' : 'Chart', subject.name);
  const root: SpdxPackage = {
    name: subject.name,
    SPDXID: rootId,
    versionInfo: subject.version,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    primaryPackagePurpose: subject.type === 'image' ? 'CONTAINER' : 'APPLICATION',
    checksums: [{ algorithm: 'SHA256', checksumValue: hex }],
    externalRefs: [{
      referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl',
      referenceLocator: `pkg:oci/${encodeURIComponent(subject.name)}@${encodeURIComponent(subject.digest)}${subject.platform ? `?platform=${encodeURIComponent(subject.platform)}` : ''}`,
    }],
  };
  const seen = new Set<string>();
  const packages: SpdxPackage[] = [];
  // Sorted by key, then by path: the first path found names where a package is, whatever the order.
  const order = (p: FoundPackage) => `${packageKey(p)}\0${p.path ?? ''}`;
  for (const p of [...found].sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))) {
    const key = packageKey(p);
    if (seen.has(key)) continue;
    seen.add(key);
    packages.push({
      name: p.name,
      SPDXID: spdxId(p.kind === 'deb' ? 'DEB' : p.kind === 'npm' ? 'NPM' : p.kind === 'app' ? 'App' : p.kind === 'oci' ? 'OCI' : 'Binary', p.name, p.version, ...(p.arch ? [p.arch] : [])),
      versionInfo: p.version,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: licenseOf(p.license),
      ...(p.supplier ? { supplier: supplierOf(p.supplier) } : {}),
      primaryPackagePurpose: p.kind === 'oci' ? 'CONTAINER' : p.kind === 'deb' || p.kind === 'npm' ? 'LIBRARY' : 'APPLICATION',
      ...(p.path ? { sourceInfo: `found at ${p.path}` } : {}),
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl(p, subject.distro) }],
    });
  }
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${subject.name}-${subject.version}${subject.platform ? `-${subject.platform.replace('/', '-')}` : ''}`,
    // Unique per subject and stable for the same digest (SPDX 2.3 section 6.5).
    documentNamespace: `https://pandocore.xyz/spdx/${subject.type}/${subject.name}/${hex}`,
    creationInfo: { created: subject.created, creators: [`Tool: ${TOOL_NAME}`, 'Organization: PandoCore'] },
    documentDescribes: [rootId],
    packages: [root, ...packages],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: rootId },
      ...packages.map((p) => ({ spdxElementId: rootId, relationshipType: 'CONTAINS', relatedSpdxElement: p.SPDXID })),
    ],
  };
}

const SPDX_ID = /^SPDXRef-[A-Za-z0-9.-]+$/;
const RELATIONSHIPS = new Set(['DESCRIBES', 'CONTAINS', 'DEPENDS_ON', 'DESCRIBED_BY', 'GENERATED_FROM', 'OTHER']);

/**
 * What an SPDX 2.3 JSON consumer needs and does not find (the spec's mandatory fields, sections 6
 * and 7, and the JSON schema's required properties): one sentence per problem, empty when fine.
 */
export function spdxProblems(doc: unknown): string[] {
  const problems: string[] = [];
  if (!doc || typeof doc !== 'object') return ['not a JSON object'];
  const d = doc as Record<string, unknown>;
  if (d.spdxVersion !== 'SPDX-2.3') problems.push(`spdxVersion is ${JSON.stringify(d.spdxVersion)}, not "SPDX-2.3"`);
  if (d.dataLicense !== 'CC0-1.0') problems.push(`dataLicense is ${JSON.stringify(d.dataLicense)}, not "CC0-1.0"`);
  if (d.SPDXID !== 'SPDXRef-DOCUMENT') problems.push(`SPDXID is ${JSON.stringify(d.SPDXID)}, not "SPDXRef-DOCUMENT"`);
  if (typeof d.name !== 'string' || !d.name) problems.push('name is missing');
  if (typeof d.documentNamespace !== 'string' || !/^[a-z][a-z0-9+.-]*:\/\/[^#\s]+$/i.test(d.documentNamespace)) {
    problems.push('documentNamespace is not an absolute URI without #');
  }
  const ci = d.creationInfo as Record<string, unknown> | undefined;
  if (!ci || typeof ci !== 'object') problems.push('creationInfo is missing');
  else {
    if (typeof ci.created !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(ci.created)) problems.push('creationInfo.created is not YYYY-MM-DDThh:mm:ssZ');
    if (!Array.isArray(ci.creators) || ci.creators.length === 0 || !ci.creators.every((c) => typeof c === 'string' && /^(Tool|Organization|Person): \S/.test(c))) {
      problems.push('creationInfo.creators must list "Tool: ...", "Organization: ..." or "Person: ..."');
    }
  }
  const ids = new Set<string>(['SPDXRef-DOCUMENT']);
  if (!Array.isArray(d.packages) || d.packages.length === 0) problems.push('packages is empty');
  else {
    d.packages.forEach((raw, i) => {
      const p = raw as Record<string, unknown>;
      const at = `packages[${i}]${typeof p?.name === 'string' ? ` (${p.name})` : ''}`;
      if (typeof p?.name !== 'string' || !p.name) problems.push(`${at}: name is missing`);
      if (typeof p?.SPDXID !== 'string' || !SPDX_ID.test(p.SPDXID)) problems.push(`${at}: SPDXID ${JSON.stringify(p?.SPDXID)} is not SPDXRef-[A-Za-z0-9.-]+`);
      else if (ids.has(p.SPDXID)) problems.push(`${at}: SPDXID ${p.SPDXID} is used twice`);
      else ids.add(p.SPDXID);
      if (typeof p?.downloadLocation !== 'string' || !p.downloadLocation) problems.push(`${at}: downloadLocation is missing (NOASSERTION if unknown)`);
      if (p?.filesAnalyzed === true && !p.packageVerificationCode) problems.push(`${at}: filesAnalyzed without packageVerificationCode`);
      for (const ref of (p?.externalRefs as Record<string, unknown>[] | undefined) ?? []) {
        if (ref.referenceType === 'purl' && (typeof ref.referenceLocator !== 'string' || !/^pkg:[a-z]+\/\S+@\S+$/.test(ref.referenceLocator))) {
          problems.push(`${at}: purl ${JSON.stringify(ref.referenceLocator)} is not pkg:TYPE/NAME@VERSION`);
        }
      }
    });
  }
  const described = Array.isArray(d.documentDescribes) ? d.documentDescribes : [];
  const rels = Array.isArray(d.relationships) ? d.relationships as Record<string, unknown>[] : [];
  if (described.length === 0 && !rels.some((r) => r.relationshipType === 'DESCRIBES')) problems.push('nothing is described (documentDescribes or a DESCRIBES relationship)');
  for (const id of described) if (!ids.has(id as string)) problems.push(`documentDescribes names ${id}, which no package has`);
  rels.forEach((r, i) => {
    if (!RELATIONSHIPS.has(r.relationshipType as string)) problems.push(`relationships[${i}]: type ${JSON.stringify(r.relationshipType)} is not one we write`);
    for (const end of [r.spdxElementId, r.relatedSpdxElement]) if (!ids.has(end as string)) problems.push(`relationships[${i}]: ${end} is no element of the document`);
  });
  return problems;
}

/** Packages of a document, as the keys packageKey gives (the described root left out). */
export function documentPackageKeys(doc: SpdxDocument): Set<string> {
  const described = new Set(doc.documentDescribes);
  const keys = new Set<string>();
  for (const p of doc.packages) {
    if (described.has(p.SPDXID)) continue;
    const locator = p.externalRefs?.find((r) => r.referenceType === 'purl')?.referenceLocator ?? '';
    const kind = locator.startsWith('pkg:deb/') ? 'deb' : locator.startsWith('pkg:npm/') ? 'npm' : locator.startsWith('pkg:oci/') ? 'oci' : p.SPDXID.startsWith('SPDXRef-App-') ? 'app' : 'binary';
    const arch = kind === 'deb' ? /[?&]arch=([^&]+)/.exec(locator)?.[1] : undefined;
    keys.add(packageKey({ kind, name: p.name, version: p.versionInfo ?? '', ...(arch ? { arch } : {}) }));
  }
  return keys;
}

/**
 * The SBOM against what scripts/image says it installs: every package in the document must be
 * expected, and (the cheap converse) every expected one must be in the document. Expected entries
 * are packageKey strings; a deb entry without `@` (a name from the build's package list, whose
 * version is the Debian archive's of the day) matches any version and architecture of that name.
 */
export function compareWithPackageList(doc: SpdxDocument, expected: string[]): string[] {
  const inDoc = [...documentPackageKeys(doc)];
  const exact = new Set(expected.filter((e) => e.includes('@')));
  const byName = new Set(expected.filter((e) => !e.includes('@')));
  const nameOf = (key: string) => key.replace(/@.*$/, '');
  const problems: string[] = [];
  for (const key of inDoc) {
    if (!exact.has(key) && !byName.has(nameOf(key))) problems.push(`the SBOM lists ${key}, which is not in the image's package list`);
  }
  for (const e of exact) if (!inDoc.includes(e)) problems.push(`the image's package list has ${e}, which the SBOM does not list`);
  for (const n of byName) if (!inDoc.some((k) => nameOf(k) === n)) problems.push(`the image's package list has ${n}, which the SBOM does not list`);
  return problems;
}
