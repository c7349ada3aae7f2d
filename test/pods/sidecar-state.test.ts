// app/pods/sidecar-state.ts: the sidecar's status as the kubelet writes it, one table of real
// shapes (kubelet v1.37.2: the waiting reasons of pkg/kubelet/images/types.go,
// pkg/kubelet/container/sync_result.go and pkg/kubelet/kuberuntime/kuberuntime_container.go; the
// ErrImagePull, ImagePullBackOff and native-sidecar crash-loop shapes as seen on the e2e node,
// test/e2e/sidecar-failing.e2e.ts), and what the watchdog and doctor make of an injected pod with it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../app/config.ts';
import { mutate } from '../../app/inject/mutate.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { classifyPod, slimPod } from '../../app/pods/classify.ts';
import { SIDECAR_FAILURE_REASONS, sidecarFailure, sidecarStatus, type ContainerStatusLike } from '../../app/pods/sidecar-state.ts';

const SIDECAR = 'pando-sidecar';
const POD = { name: 'web-7d9c-x2x', namespace: 'team' };
const IMAGE = '127.0.0.1:1/pando.test/sidecar-standin:does-not-exist';

function sidecar(fields: Partial<ContainerStatusLike>): ContainerStatusLike {
  return { name: SIDECAR, ready: false, restartCount: 0, ...fields };
}
const exited1 = { terminated: { reason: 'Error', exitCode: 1, startedAt: '2026-12-06T07:47:53Z', finishedAt: '2026-12-06T07:47:53Z' } };

/** [case, the sidecar's status, where the kubelet reports it, the failure reason or undefined]. */
const TABLE: Array<[string, ContainerStatusLike, 'init' | 'regular', string | undefined]> = [
  ['pull failed (native sidecar)', sidecar({ state: { waiting: { reason: 'ErrImagePull', message: `failed to pull and unpack image "${IMAGE}": failed to resolve reference "${IMAGE}": failed to do request: Head "https://127.0.0.1:1/v2/pando.test/sidecar-standin/manifests/does-not-exist": dial tcp 127.0.0.1:1: connect: connection refused` } } }), 'init', 'ErrImagePull'],
  ['pull backing off (native sidecar)', sidecar({ state: { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${IMAGE}"` } } }), 'init', 'ImagePullBackOff'],
  ['pull backing off (classic sidecar)', sidecar({ state: { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${IMAGE}"` } } }), 'regular', 'ImagePullBackOff'],
  ['image name not parseable', sidecar({ state: { waiting: { reason: 'InvalidImageName', message: 'Failed to apply default image tag "Pando/Sidecar:1": couldn\'t parse image name "Pando/Sidecar:1": invalid reference format: repository name must be lowercase' } } }), 'init', 'InvalidImageName'],
  ['image absent with imagePullPolicy Never', sidecar({ state: { waiting: { reason: 'ErrImageNeverPull', message: 'Container image "x:1" is not present with pull policy of Never' } } }), 'init', 'ErrImageNeverPull'],
  ['license Secret gone', sidecar({ state: { waiting: { reason: 'CreateContainerConfigError', message: 'secret "pando-license" not found' } } }), 'init', 'CreateContainerConfigError'],
  ['license key gone from the Secret', sidecar({ state: { waiting: { reason: 'CreateContainerConfigError', message: 'couldn\'t find key license-key in Secret team/pando-license' } } }), 'regular', 'CreateContainerConfigError'],
  ['runtime cannot create it', sidecar({ state: { waiting: { reason: 'CreateContainerError', message: 'failed to create containerd container: error unpacking image' } } }), 'init', 'CreateContainerError'],
  ['runtime cannot start it (after a restart)', sidecar({ restartCount: 1, state: { waiting: { reason: 'RunContainerError', message: 'failed to create containerd task: failed to create shim task: OCI runtime create failed' } }, lastState: { terminated: { reason: 'StartError', exitCode: 128 } } }), 'init', 'RunContainerError'],
  ['crash loop, classic sidecar (waiting)', sidecar({ restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off 40s restarting failed container=${SIDECAR} pod=${POD.name}_team(uid)` } }, lastState: exited1 }), 'regular', 'CrashLoopBackOff'],
  ['crash loop, native sidecar (left terminated, Init:Error)', sidecar({ restartCount: 2, state: exited1, lastState: exited1 }), 'init', 'CrashLoopBackOff'],
  ['OOM kill loop, native sidecar', sidecar({ restartCount: 1, state: { terminated: { reason: 'OOMKilled', exitCode: 137 } }, lastState: { terminated: { reason: 'OOMKilled', exitCode: 137 } } }), 'init', 'OOMKilled'],
  // Not failing:
  ['still starting (ContainerCreating)', sidecar({ state: { waiting: { reason: 'ContainerCreating' } } }), 'regular', undefined],
  ['still starting (PodInitializing)', sidecar({ state: { waiting: { reason: 'PodInitializing' } } }), 'regular', undefined],
  ['pulling (no reason yet)', sidecar({ state: { waiting: {} } }), 'init', undefined],
  ['running', sidecar({ ready: true, state: { running: { startedAt: '2026-12-06T07:47:50Z' } } }), 'init', undefined],
  ['running again after an OOM kill', sidecar({ ready: true, restartCount: 1, state: { running: { startedAt: '2026-12-06T07:48:50Z' } }, lastState: { terminated: { reason: 'OOMKilled', exitCode: 137 } } }), 'init', undefined],
  ['running again after a crash', sidecar({ ready: true, restartCount: 2, state: { running: { startedAt: '2026-12-06T07:48:50Z' } }, lastState: exited1 }), 'init', undefined],
  ['exited once, not restarted yet', sidecar({ state: exited1 }), 'init', undefined],
];

const statusOf = (c: ContainerStatusLike, where: 'init' | 'regular') => (where === 'init' ? { initContainerStatuses: [c], containerStatuses: [{ name: 'app', ready: false, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }] } : { containerStatuses: [{ name: 'app', ready: true, restartCount: 0, state: { running: {} } }, c] });

describe('sidecar state', () => {
  for (const [name, status, where, reason] of TABLE) {
    it(`${name}: ${reason ?? 'not failing'}`, () => {
      const failure = sidecarFailure(sidecarStatus(statusOf(status, where), SIDECAR), POD, SIDECAR);
      assert.equal(failure?.reason, reason);
      if (reason) assert.match(failure!.message, new RegExp(`^the PandoCore sidecar cannot start: ${reason}.*; fix: `));
    });
  }

  it('every reason of the fixed set has a row in the table', () => {
    const covered = new Set(TABLE.map((r) => r[3]));
    const missing = SIDECAR_FAILURE_REASONS.filter((r) => !covered.has(r) && !['ImageInspectError', 'PreCreateHookError', 'PreStartHookError', 'PostStartHookError'].includes(r));
    assert.deepEqual(missing, []);
  });

  it('names the fix for each kind: image, Secret, crash (with the exit code and restarts), OOM', () => {
    const msg = (c: ContainerStatusLike, where: 'init' | 'regular' = 'init') => sidecarFailure(sidecarStatus(statusOf(c, where), SIDECAR), POD, SIDECAR)!.message;
    assert.match(msg(TABLE[0]![1]), /kubelet: failed to pull and unpack image .*connection refused\); fix: the sidecar image cannot be pulled: check sidecar\.image/);
    assert.match(msg(TABLE[5]![1]), /secret "pando-license" not found.*pando setup-namespace team/);
    assert.match(msg(TABLE[10]![1]), /CrashLoopBackOff: it exited with code 1 \(Error\), restarted 2 time\(s\); fix: .*kubectl logs web-7d9c-x2x -n team -c pando-sidecar --previous/);
    assert.match(msg(TABLE[11]![1]), /OOMKilled.*sidecar\.resources\.limits\.memory/);
  });

  it('a long kubelet message is cut', () => {
    const long = sidecar({ state: { waiting: { reason: 'ErrImagePull', message: 'x'.repeat(5000) } } });
    assert.match(sidecarFailure(sidecarStatus(statusOf(long, 'init'), SIDECAR), POD, SIDECAR)!.cause, /\(kubelet: x{150}\.\.\.x{300}\)$/, 'both ends kept: the image at the start, the cause at the end');
  });

  it('no status for the sidecar (pod not scheduled yet): not failing', () => {
    assert.equal(sidecarFailure(sidecarStatus({}, SIDECAR), POD, SIDECAR), undefined);
    assert.equal(sidecarFailure(sidecarStatus({ containerStatuses: [{ name: 'app', state: { waiting: { reason: 'ErrImagePull' } } }] }, SIDECAR), POD, SIDECAR), undefined, "the app's own image is not ours to report");
  });
});

describe('classification of an injected pod by its sidecar', () => {
  const plan = planInjection(loadConfig({ PANDO_NAMESPACE: 'pando-system' }));
  const newer = planInjection(loadConfig({ PANDO_NAMESPACE: 'pando-system', PANDO_SIDECAR_IMAGE: 'registry.pandocore.xyz/pandocore/sidecar:9.0.0' }));
  const base = { apiVersion: 'v1', kind: 'Pod', metadata: { ...POD, uid: 'u1', labels: { 'pandocore.xyz/protect': 'true' } }, spec: { containers: [{ name: 'app', image: 'app:1' }] } };
  const injectedPod = (status: object) => ({ ...mutate(structuredClone(base) as never, 'monitor', plan).pod, status: { phase: 'Pending', ...status } });

  for (const [name, status, where, reason] of TABLE) {
    it(`${name}: whole and slim, ${reason ? 'sidecar-failing' : 'protected'}`, () => {
      const pod = injectedPod(statusOf(status, where));
      const whole = classifyPod(pod as never, plan);
      const slim = classifyPod(slimPod(pod), plan);
      assert.deepEqual(slim, whole, 'the watchdog (slim) and doctor (whole) agree');
      assert.equal(whole.state, reason ? 'sidecar-failing' : 'protected');
      assert.equal(whole.sidecar?.reason, reason);
    });
  }

  it('a stale pod whose sidecar cannot start is sidecar-failing, not stale (never healed)', () => {
    const pod = injectedPod(statusOf(TABLE[1]![1], 'init'));
    assert.equal(classifyPod(pod as never, newer).state, 'sidecar-failing');
  });

  it('a pod without the sidecar is unprotected whatever its containers do', () => {
    const pod = { ...base, status: { containerStatuses: [{ name: 'app', state: { waiting: { reason: 'ImagePullBackOff' } } }] } };
    assert.equal(classifyPod(pod as never, plan).state, 'unprotected');
  });

  it('a running sidecar leaves nothing of its status in the slim pod', () => {
    const pod = injectedPod(statusOf(TABLE[15]![1], 'init'));
    assert.deepEqual(slimPod(pod).status, { phase: 'Pending' });
    const failing = slimPod(injectedPod(statusOf(TABLE[10]![1], 'init')));
    assert.deepEqual(failing.status, { phase: 'Pending', initContainerStatuses: [{ name: SIDECAR, ready: false, restartCount: 2, state: { terminated: { reason: 'Error', exitCode: 1 } }, lastState: { terminated: { reason: 'Error', exitCode: 1 } } }] });
  });
});
