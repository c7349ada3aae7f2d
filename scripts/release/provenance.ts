// SLSA v1 provenance predicates (https://slsa.dev/spec/v1.0/provenance) for the image and the chart:
// what was built, from which commit, with which inputs (Node, the lock file, the Debian packages by
// version and file digest), by what and when. Pure: the caller gathers the facts.

export const SLSA_PREDICATE_TYPE = 'https://slsa.dev/provenance/v1';
export const BUILD_TYPE_IMAGE = 'https://pandocore.xyz/slsa/build-types/image/v1';
export const BUILD_TYPE_CHART = 'https://pandocore.xyz/slsa/build-types/chart/v1';

export interface ResourceDescriptor {
  uri?: string;
  name?: string;
  digest?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface SlsaProvenance {
  buildDefinition: {
    buildType: string;
    externalParameters: Record<string, unknown>;
    internalParameters?: Record<string, unknown>;
    resolvedDependencies: ResourceDescriptor[];
  };
  runDetails: {
    builder: { id: string; version?: Record<string, string> };
    metadata: { invocationId: string; startedOn: string; finishedOn: string };
    byproducts?: ResourceDescriptor[];
  };
}

export interface ProvenanceInput {
  kind: 'image' | 'chart';
  /** The source repository's URL (Chart.yaml's sources) and the commit built. */
  sourceUri: string;
  commit: string;
  /** Uncommitted changes in the inputs when it was built (the commit alone does not describe it);
   * 'unknown' when it was built earlier, from another commit than the one checked out now. */
  dirty: boolean | 'unknown';
  /** The command that built it (`npm run image`, `npm run chart`). */
  command: string;
  version: string;
  sourceDateEpoch?: string;
  /** Every input pinned by digest or version: the lock file, Node, Debian packages, helm, ... */
  dependencies: ResourceDescriptor[];
  builderId: string;
  builderVersions: Record<string, string>;
  invocationId: string;
  startedOn: string;
  finishedOn: string;
}

export function slsaProvenance(i: ProvenanceInput): SlsaProvenance {
  return {
    buildDefinition: {
      buildType: i.kind === 'image' ? BUILD_TYPE_IMAGE : BUILD_TYPE_CHART,
      externalParameters: { source: { uri: `git+${i.sourceUri}`, revision: i.commit }, command: i.command, version: i.version },
      internalParameters: { dirty: i.dirty, ...(i.sourceDateEpoch ? { SOURCE_DATE_EPOCH: i.sourceDateEpoch } : {}) },
      resolvedDependencies: [{ uri: `git+${i.sourceUri}`, digest: { gitCommit: i.commit } }, ...i.dependencies],
    },
    runDetails: {
      builder: { id: i.builderId, version: i.builderVersions },
      metadata: { invocationId: i.invocationId, startedOn: i.startedOn, finishedOn: i.finishedOn },
    },
  };
}

/** What a verifier needs from a provenance predicate and does not find; empty when fine. */
export function provenanceProblems(pred: unknown, expect: { commit?: string } = {}): string[] {
  const problems: string[] = [];
  const p = pred as Partial<SlsaProvenance> | undefined;
  const bd = p?.buildDefinition;
  if (!bd || typeof bd !== 'object') return ['buildDefinition is missing'];
  if (typeof bd.buildType !== 'string' || !/^https:\/\//.test(bd.buildType)) problems.push('buildDefinition.buildType is not a URI');
  if (!bd.externalParameters || typeof bd.externalParameters !== 'object') problems.push('buildDefinition.externalParameters is missing');
  const deps = Array.isArray(bd.resolvedDependencies) ? bd.resolvedDependencies : [];
  const commit = deps.find((d) => d?.digest?.gitCommit)?.digest?.gitCommit;
  if (!commit) problems.push('no resolved dependency names the source commit (digest.gitCommit)');
  else if (expect.commit && commit !== expect.commit) problems.push(`built from commit ${commit}, expected ${expect.commit}`);
  for (const [i, d] of deps.entries()) {
    if (!d || (!d.uri && !d.name)) problems.push(`resolvedDependencies[${i}] has neither uri nor name`);
  }
  const rd = p?.runDetails;
  if (!rd?.builder?.id) problems.push('runDetails.builder.id is missing');
  return problems;
}
