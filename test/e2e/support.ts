// Helpers shared by the e2e tests: namespaces that clean up after themselves, bounded waiting.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_STATUS, LABEL_PROTECT, SIDECAR_NAME, STATUS_INJECTED } from '../../app/contract.ts';
import { REPO_ROOT, type Cluster } from '../cluster/harness.ts';

/** Polls `check` every `everyMs` until it returns a value other than undefined/false. Bounded in time and count. */
export async function waitUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined | false>, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

/** Creates a namespace and waits until pods can be created in it (its "default" ServiceAccount exists). */
export async function createNamespace(cluster: Cluster, prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  const name = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name, labels } } });
  await waitUntil(`ServiceAccount default in ${name}`, 30_000, async () => {
    await core.readNamespacedServiceAccount({ name: 'default', namespace: name });
    return true;
  });
  return name;
}

export async function deleteNamespace(cluster: Cluster, name: string): Promise<void> {
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  await core.deleteNamespace({ name }).catch(() => undefined);
}

/** A minimal pod labelled for injection. */
export function labelledPod(name: string): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { [LABEL_PROTECT]: 'true' } },
    spec: { containers: [{ name: 'app', image: 'registry.example.invalid/app:1' }] },
  };
}

/** Exactly one sidecar (in initContainers or containers) and the injected status annotation. */
export function isInjected(pod: V1Pod): boolean {
  const sidecars = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].filter((c) => c.name === SIDECAR_NAME);
  return sidecars.length === 1 && pod.metadata?.annotations?.[ANNOTATION_STATUS] === STATUS_INJECTED;
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** `pando ARGS` as a process, plain output (piped), with the given kubeconfig. */
export async function runPando(kubeconfigPath: string, args: string[]): Promise<Ran> {
  try {
    const r = await promisify(execFile)(process.execPath, [join(REPO_ROOT, 'app/cli/main.ts'), ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', KUBECONFIG: kubeconfigPath, HOME: process.env.HOME ?? tmpdir() },
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
