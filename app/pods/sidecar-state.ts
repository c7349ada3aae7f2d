// What the kubelet says of one pod's sidecar container: read once here for every caller (the
// rollout's health of a new pod, the watchdog's and doctor's `sidecar-failing`). Pure: no I/O, no
// clock, no logger.

/**
 * The kubelet's reasons for a container that cannot start or keeps stopping (kubelet v1.37.2:
 * pkg/kubelet/images/types.go, pkg/kubelet/container/sync_result.go,
 * pkg/kubelet/kuberuntime/kuberuntime_container.go), plus OOMKilled, which the kubelet writes as a
 * terminated reason. A fixed set: these are the values of the `reason` label of
 * pandocore_sidecar_failing_pods. ContainerCreating and PodInitializing (still starting) are not in it.
 */
export const SIDECAR_FAILURE_REASONS = [
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
  'ImageInspectError',
  'CreateContainerConfigError',
  'CreateContainerError',
  'PreCreateHookError',
  'RunContainerError',
  'PreStartHookError',
  'PostStartHookError',
  'CrashLoopBackOff',
  'OOMKilled',
] as const;
export type SidecarFailureReason = (typeof SIDECAR_FAILURE_REASONS)[number];

const FAILURES: ReadonlySet<string> = new Set(SIDECAR_FAILURE_REASONS);

export function isFailureReason(reason: string | undefined): reason is SidecarFailureReason {
  return reason !== undefined && FAILURES.has(reason);
}

/** The part of a v1 ContainerStatus read here (a whole one or the watchdog's slim copy). */
export interface ContainerStatusLike {
  name?: string;
  ready?: boolean;
  restartCount?: number;
  state?: {
    waiting?: { reason?: string; message?: string };
    running?: { startedAt?: string | Date };
    terminated?: { reason?: string; exitCode?: number; message?: string };
  };
  lastState?: { terminated?: { reason?: string; exitCode?: number } };
}

export interface PodStatusLike {
  initContainerStatuses?: ContainerStatusLike[];
  containerStatuses?: ContainerStatusLike[];
}

/** One pod's sidecar as the kubelet reports it. */
export interface SidecarStatus {
  /** The kubelet reports a status for it (not yet, before the pod is scheduled). */
  found: boolean;
  ready: boolean;
  restartCount: number;
  /** It is running now. */
  running: boolean;
  /**
   * The kubelet's reason: waiting reason, else terminated reason, else the last terminated reason
   * (OOMKilled of a sidecar that runs again); CrashLoopBackOff for a sidecar that is down and was
   * restarted before (see sidecarStatus).
   */
  problem?: string;
  /** The kubelet's message with that reason (the pull error, the missing Secret), when it wrote one. */
  message?: string;
  /** When the current run started (ms). */
  runningSince?: number;
  /** How it last exited, when it is down now and was restarted before (a crash loop). */
  exited?: { code?: number; reason?: string };
}

/** The sidecar's entry among the pod's container statuses (a native sidecar reports under initContainerStatuses). */
export function sidecarContainerStatus(status: PodStatusLike | undefined, name: string): ContainerStatusLike | undefined {
  return [...(status?.initContainerStatuses ?? []), ...(status?.containerStatuses ?? [])].find((c) => c.name === name);
}

export function sidecarStatus(status: PodStatusLike | undefined, name: string): SidecarStatus {
  const c = sidecarContainerStatus(status, name);
  const waiting = c?.state?.waiting;
  const terminated = c?.state?.terminated;
  const restartCount = c?.restartCount ?? 0;
  let problem = waiting?.reason ?? terminated?.reason ?? c?.lastState?.terminated?.reason;
  // A sidecar that is down and was restarted before keeps exiting: a crash loop. The kubelet says
  // CrashLoopBackOff (waiting) for a regular container, but leaves a native sidecar (restartable
  // init container) `terminated` (reason Error, `kubectl get pods`: Init:Error) through its back-off
  // (kubelet v1.37.2, test/e2e/rollout-node.e2e.ts). A named failure (OOMKilled, ...) keeps its name.
  const downAfterRestart = restartCount > 0 && (terminated !== undefined || waiting !== undefined);
  const last = terminated ?? c?.lastState?.terminated;
  const exited = downAfterRestart && last ? { ...(last.exitCode !== undefined ? { code: last.exitCode } : {}), ...(last.reason ? { reason: last.reason } : {}) } : undefined;
  if (downAfterRestart && !isFailureReason(problem)) problem = 'CrashLoopBackOff';
  const started = c?.state?.running?.startedAt;
  const runningSince = started === undefined ? undefined : new Date(started).getTime();
  const message = waiting?.message ?? terminated?.message;
  return {
    found: c !== undefined,
    ready: c?.ready === true,
    restartCount,
    running: c?.state?.running !== undefined,
    ...(problem ? { problem } : {}),
    ...(message ? { message } : {}),
    ...(runningSince !== undefined && !Number.isNaN(runningSince) ? { runningSince } : {}),
    ...(exited ? { exited } : {}),
  };
}

/** Why an injected sidecar cannot start: the kubelet's reason and a sentence for logs, Events and doctor. */
export interface SidecarFailure {
  reason: SidecarFailureReason;
  /** What is wrong, with the kubelet's message: "the PandoCore sidecar cannot start: REASON ... (kubelet: ...)". */
  cause: string;
  /** What fixes it (one sentence, the pod's names filled in). */
  fix: string;
  /** `${cause}; fix: ${fix}` */
  message: string;
}

/** A pull error names the image at its start and the cause at its end: a long one keeps both ends. */
const MESSAGE_HEAD = 150;
const MESSAGE_TAIL = 300;

function shortened(raw: string): string {
  // One line (a termination message often ends in a newline), both ends kept when long.
  const message = raw.replace(/\s+/g, ' ').trim();
  return message.length <= MESSAGE_HEAD + MESSAGE_TAIL + 3 ? message : `${message.slice(0, MESSAGE_HEAD)}...${message.slice(-MESSAGE_TAIL)}`;
}

/** What fixes each kind of failure (README, "Alerts and runbooks", PandoCoreSidecarFailing). */
export function failureFix(reason: SidecarFailureReason): string {
  switch (reason) {
    case 'ErrImagePull':
    case 'ImagePullBackOff':
    case 'InvalidImageName':
    case 'ErrImageNeverPull':
    case 'ImageInspectError':
      return 'the sidecar image cannot be pulled: check sidecar.image (repository, tag) and sidecar.imagePullSecrets (the pull Secret in this namespace; the kubelet retries the pull once it exists); a corrected image reaches new pods only: delete this one';
    case 'CreateContainerConfigError':
      return 'the sidecar\'s configuration cannot be built (usually the license Secret or its key is missing in this namespace): pando setup-namespace NAMESPACE (the kubelet retries: the pod then starts)';
    case 'OOMKilled':
      return 'the sidecar runs out of memory: raise sidecar.resources.limits.memory';
    case 'CrashLoopBackOff':
      return 'the sidecar keeps exiting: kubectl logs POD -c SIDECAR --previous says why (license key, mode, version)';
    default:
      return 'the container runtime cannot create or start the sidecar: kubectl describe pod POD shows the kubelet\'s message';
  }
}

/**
 * How a crash-looping sidecar failed, for a message (the watchdog's and the rollout's):
 * ": it exited with code 1 (Error), restarted 2 time(s)"; empty for any other state.
 */
export function crashLoopDetail(s: { problem?: string; exited?: { code?: number; reason?: string }; restartCount: number }): string {
  if (s.problem !== 'CrashLoopBackOff' || !s.exited) return '';
  return `: it exited with code ${s.exited.code ?? '?'} (${s.exited.reason ?? 'no reason'}), restarted ${s.restartCount} time(s)`;
}

/**
 * The sidecar cannot start or keeps stopping: it is down now (waiting or terminated, not running)
 * for one of SIDECAR_FAILURE_REASONS. A sidecar still starting (ContainerCreating,
 * PodInitializing), one that exited once and was not restarted yet, and one that runs again after
 * an OOM kill are not failing. No grace period: the kubelet writes ErrImagePull only after a pull
 * failed (a slow pull is ContainerCreating), and alerts wait (`for:`) before they fire.
 */
export function sidecarFailure(s: SidecarStatus, pod: { name: string; namespace: string }, sidecarName: string): SidecarFailure | undefined {
  if (!s.found || s.running || !isFailureReason(s.problem)) return undefined;
  const reason = s.problem;
  const how = crashLoopDetail(s);
  const kubelet = s.message ? ` (kubelet: ${shortened(s.message)})` : '';
  const fix = failureFix(reason).replaceAll('NAMESPACE', pod.namespace).replaceAll('POD', `${pod.name} -n ${pod.namespace}`).replaceAll('SIDECAR', sidecarName);
  const cause = `the PandoCore sidecar cannot start: ${reason}${how}${kubelet}`;
  return { reason, cause, fix, message: `${cause}; fix: ${fix}` };
}
