// Which operating system a pod's nodes run, as far as the pod itself says: spec.os.name, the
// kubernetes.io/os (or beta.kubernetes.io/os) node selector, or required node affinity that admits
// no Linux node.
//
// Kubernetes v1.37.2, pkg/apis/core/validation/validation.go (validateWindows): a pod with
// spec.os.name "windows" may not carry runAsUser, seccompProfile, capabilities,
// readOnlyRootFilesystem, privileged or allowPrivilegeEscalation in any container ("cannot be set
// for a windows pod"), so our restricted Linux sidecar makes the API server refuse it. Without
// spec.os, a Windows-only node selector or affinity keeps the pod valid but its Linux sidecar can
// never start on the nodes it lands on.

import type { Pod } from '../admission/types.ts';

/** The well-known node label the kubelet sets from its GOOS (k8s.io/api/core/v1 LabelOSStable). */
export const NODE_OS_LABEL = 'kubernetes.io/os';
/**
 * Both labels the kubelet sets from its GOOS: the deprecated beta one is still set on every node
 * (Kubernetes v1.37.2, pkg/kubelet/kubelet_node_status.go, initialNode: v1.LabelOSStable and
 * kubeletapis.LabelOS), so a pod that selects `beta.kubernetes.io/os: windows` lands on Windows.
 */
export const NODE_OS_LABELS: readonly string[] = [NODE_OS_LABEL, 'beta.kubernetes.io/os'];
export const LINUX = 'linux';

interface NodeSelectorRequirement {
  key?: unknown;
  operator?: unknown;
  values?: unknown;
}

/** Whether one node selector term can match a Linux node (both OS labels say linux there). */
function termAdmitsLinux(term: unknown): boolean {
  const expressions = (term as { matchExpressions?: unknown } | null)?.matchExpressions;
  if (!Array.isArray(expressions)) return true;
  return expressions.every((raw: NodeSelectorRequirement) => {
    if (!NODE_OS_LABELS.includes(raw?.key as string)) return true;
    const values = Array.isArray(raw.values) ? raw.values : [];
    switch (raw.operator) {
      case 'In':
        return values.includes(LINUX);
      case 'NotIn':
        return !values.includes(LINUX);
      case 'Exists':
        return true;
      // DoesNotExist cannot match (every kubelet sets the label); Gt and Lt need integers.
      default:
        return false;
    }
  });
}

/**
 * The non-Linux OS a pod asks for, with where it says so; undefined when it can run on Linux.
 * Only required scheduling counts: preferred affinity still lets the pod land on Linux.
 */
export function nonLinuxTarget(pod: Pod): { os: string; source: string } | undefined {
  const spec = pod.spec;
  const osName = (spec.os as { name?: unknown } | undefined)?.name;
  if (typeof osName === 'string' && osName !== LINUX) return { os: osName, source: 'spec.os.name' };
  for (const label of NODE_OS_LABELS) {
    const selected = (spec.nodeSelector as Record<string, unknown> | undefined)?.[label];
    if (typeof selected === 'string' && selected !== LINUX) return { os: selected, source: `nodeSelector ${label}` };
  }
  const required = (spec.affinity as { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms?: unknown } } } | undefined)
    ?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  // Terms are ORed: the pod can run on Linux when any one of them admits a Linux node.
  if (Array.isArray(required) && required.length > 0 && !required.some(termAdmitsLinux)) {
    return { os: osNamedBy(required) ?? 'non-linux', source: 'required node affinity' };
  }
  return undefined;
}

/** The OS an affinity names (for the warning), e.g. "windows" from `In [windows]`. */
function osNamedBy(terms: unknown[]): string | undefined {
  for (const term of terms) {
    const expressions = (term as { matchExpressions?: NodeSelectorRequirement[] } | null)?.matchExpressions ?? [];
    for (const e of Array.isArray(expressions) ? expressions : []) {
      if (NODE_OS_LABELS.includes(e?.key as string) && e.operator === 'In' && Array.isArray(e.values) && typeof e.values[0] === 'string') return e.values[0];
    }
  }
  return undefined;
}
