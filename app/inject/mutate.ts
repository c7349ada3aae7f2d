// Clone, mutate the clone, diff against the original: the patch is whatever diff() says, so it
// cannot disagree with the object. The clone shares every subtree it does not change with the
// original (copy on write), which keeps both the copy and the diff proportional to what changed:
// diff() returns at once on identical references and pairs array elements by identity, so the
// sidecar put first does not rewrite the init containers behind it.

import type { Operation } from 'fast-json-patch';
import type { Container, Pod, Volume, VolumeMount } from '../admission/types.ts';
import {
  ANNOTATION_CONFIG_HASH,
  ANNOTATION_STATUS,
  ANNOTATION_VERSION,
  SIDECAR_NAME,
  SIDECAR_SERVICE_ACCOUNT,
  STATUS_INJECTED,
  type Mode,
} from '../contract.ts';
import { diff } from './diff.ts';
import { quote, warning } from './reasons.ts';
import type { Adjustments } from './decide.ts';
import { TOKEN_MOUNT_PATH, type InjectionPlan } from './sidecar.ts';

export interface Mutation {
  pod: Pod;
  patch: Operation[];
  warnings: string[];
}

/** The projected ServiceAccount token volume that the API server added to the pod, if any. */
function tokenVolume(volumes: Volume[] | undefined): Volume | undefined {
  return volumes?.find(
    (v) => v.name.startsWith('kube-api-access-') && v.projected?.sources?.some((s) => 'serviceAccountToken' in s),
  );
}

function tokenMount(pod: Pod): VolumeMount | undefined {
  const volume = tokenVolume(pod.spec.volumes);
  return volume ? { name: volume.name, readOnly: true, mountPath: TOKEN_MOUNT_PATH } : undefined;
}

function withoutSidecar(containers: Container[] | undefined): Container[] | undefined {
  if (containers === undefined || !containers.some((c) => c.name === SIDECAR_NAME)) return containers;
  return containers.filter((c) => c.name !== SIDECAR_NAME);
}

/** The pod's imagePullSecrets with the sidecar's added: none twice, none of the pod's removed. */
function withPullSecrets(current: unknown, names: readonly string[]): unknown {
  const list = Array.isArray(current) ? (current as Array<{ name?: unknown }>) : [];
  const missing = names.filter((name) => !list.some((s) => s?.name === name));
  return missing.length === 0 ? current : [...list, ...missing.map((name) => ({ name }))];
}

export function mutate(pod: Pod, mode: Mode, plan: InjectionPlan, adjustments?: Adjustments): Mutation {
  const warnings: string[] = [];
  const sidecar = plan.sidecar(mode, tokenMount(pod));
  if (adjustments) sidecar.resources = { requests: { ...adjustments.resources.requests }, limits: { ...adjustments.resources.limits } };
  const spec = { ...pod.spec };
  if (adjustments?.podResources) spec.resources = adjustments.podResources;
  if (plan.imagePullSecrets.length > 0) {
    const pullSecrets = withPullSecrets(spec.imagePullSecrets, plan.imagePullSecrets);
    if (pullSecrets !== spec.imagePullSecrets) spec.imagePullSecrets = pullSecrets;
  }
  const containers = withoutSidecar(spec.containers) ?? [];
  const initContainers = withoutSidecar(spec.initContainers) ?? [];
  if (plan.native) {
    // First, so that the pod's own init containers already run beside the sidecar.
    spec.initContainers = [sidecar, ...initContainers];
    spec.containers = containers;
  } else {
    spec.containers = [...containers, sidecar];
    if (initContainers.length > 0) spec.initContainers = initContainers;
    else delete spec.initContainers;
  }

  const account = spec.serviceAccountName || spec.serviceAccount || 'default';
  if (account === 'default') {
    spec.serviceAccountName = SIDECAR_SERVICE_ACCOUNT;
    // The deprecated alias must not contradict the real field.
    if (spec.serviceAccount !== undefined) spec.serviceAccount = SIDECAR_SERVICE_ACCOUNT;
  } else if (account !== SIDECAR_SERVICE_ACCOUNT) {
    warnings.push(warning(`service account ${quote(account, 40)} must be bound to ClusterRole pando-sidecar`));
  }

  const metadata = pod.metadata ?? {};
  const mutated: Pod = {
    ...pod,
    metadata: {
      ...metadata,
      annotations: {
        ...metadata.annotations,
        [ANNOTATION_STATUS]: STATUS_INJECTED,
        [ANNOTATION_VERSION]: plan.version,
        [ANNOTATION_CONFIG_HASH]: plan.configHash,
      },
    },
    spec,
  };
  return { pod: mutated, patch: diff(pod, mutated), warnings };
}
