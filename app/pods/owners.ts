// Who owns a labelled pod, and the command that replaces it with an injected one: the fix that
// `pando doctor` prints and the watchdog's Events carry.

export interface PodOwner {
  /** kubectl resource: deployment, statefulset, daemonset, replicaset, job, cronjob, pod. */
  kind: string;
  name: string;
  namespace: string;
}

/**
 * The fix for a pod of `owner` without the sidecar: restartCommand, unless the sidecar cannot start
 * in other pods of the same owner (`failingReasons`, the kubelet's): a restart would give the new
 * pods that sidecar too, so that comes first.
 */
export function restartFix(owner: PodOwner, podName: string, failingReasons: readonly string[] = []): string {
  const restart = restartCommand(owner, podName);
  if (failingReasons.length === 0) return restart;
  return `first make the sidecar start (it cannot in other pods of ${owner.kind}/${owner.name}: ${[...failingReasons].sort().join(', ')}; see its SidecarFailing Event), then ${restart}`;
}

/** The command that makes the owner create the pod again (with the sidecar, once the webhook answers). */
export function restartCommand(owner: PodOwner, podName: string): string {
  switch (owner.kind) {
    case 'deployment':
    case 'statefulset':
    case 'daemonset':
      return `kubectl rollout restart ${owner.kind}/${owner.name} -n ${owner.namespace}`;
    case 'cronjob':
      return `kubectl delete job ${podName.replace(/-[a-z0-9]{5}$/, '')} -n ${owner.namespace}   (cronjob/${owner.name}'s next job gets the sidecar)`;
    case 'job':
      return `kubectl delete job ${owner.name} -n ${owner.namespace} and create it again`;
    default:
      return `kubectl delete pod ${podName} -n ${owner.namespace}${owner.kind === 'pod' ? ' and create it again (it has no controller)' : `   (${owner.kind}/${owner.name} makes a new one)`}`;
  }
}
