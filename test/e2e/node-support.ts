// What the e2e files that run pods on the node (test/cluster/node.ts) share: the pod-spec part that
// puts a pod there, a Deployment of such pods, and kubectl against the e2e cluster as a user would run it.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BIN_DIR, type Cluster } from '../cluster/harness.ts';
import type { V1Deployment } from '@kubernetes/client-node';
import { LABEL_PROTECT } from '../../app/contract.ts';
import { NODE_IMAGES, NODE_NAME, NODE_SCHEDULER, NODE_TAINT } from '../cluster/node.ts';

/** The pod template's spec part that puts a pod on the node (and nothing else does). */
export const onTheNode = {
  schedulerName: NODE_SCHEDULER,
  tolerations: [{ key: NODE_TAINT.key, operator: 'Equal', value: NODE_TAINT.value, effect: NODE_TAINT.effect }],
};

/** `kubectl ARGS` against the e2e cluster; asserts exit 0 and returns stdout. */
export function kubectlOn(cluster: Cluster, ...args: string[]): string {
  const r = spawnSync(join(BIN_DIR, 'kubectl'), args, { encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, timeout: 60_000 });
  assert.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Why the e2e cluster has no Ready node (undefined: it has one). A node e2e file calls it in before()
 * and skips each test with this reason; it logs the reason once.
 */
export async function nodeMissing(cluster: Cluster): Promise<string | undefined> {
  const node = await cluster.request('GET', `/api/v1/nodes/${NODE_NAME}`);
  const ready = node.status === 200 && (node.body?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
  if (ready) return undefined;
  const why = node.status === 404 ? 'the cluster has none (run as root with containerd; PANDO_NODE=0 turns it off)' : `node ${NODE_NAME} is not Ready`;
  console.log(`# skipped: no node: ${why}`);
  return why;
}

/** Skips the test, with the reason, when the cluster has no node (`why` from nodeMissing). */
export function skipWithoutNode(t: TestContext, why: string | undefined): boolean {
  if (why) t.skip(`no node: ${why}`);
  return why !== undefined;
}

/** A pod as `kubectl get pods` shows it. */
export interface PodRow {
  name: string;
  ready: string;
  status: string;
  restarts: string;
}

export const rowText = (r: PodRow): string => `${r.name} ${r.ready} ${r.status} ${r.restarts}`;

/** `kubectl get pods -n NAMESPACE SELECT...` (pod names or `-l SELECTOR`), as the table shows them. */
export function podRows(cluster: Cluster, namespace: string, ...select: string[]): PodRow[] {
  return kubectlOn(cluster, 'get', 'pods', '-n', namespace, ...select, '--no-headers')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [name, ready, status, restarts] = l.trim().split(/\s+/) as [string, string, string, string];
      return { name, ready, status, restarts };
    });
}

export interface NodeDeploymentOptions {
  /** With the protect label on the pod template. */
  labelled: boolean;
  replicas?: number;
  namespace?: string;
  /** Pod template annotations (e.g. the mode). */
  annotations?: Record<string, string>;
  minReadySeconds?: number;
}

/** A Deployment whose pods (one `pause` app container, label app=NAME) run on the node. */
export function nodeDeployment(name: string, o: NodeDeploymentOptions): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, ...(o.namespace ? { namespace: o.namespace } : {}) },
    spec: {
      replicas: o.replicas ?? 1,
      ...(o.minReadySeconds !== undefined ? { minReadySeconds: o.minReadySeconds } : {}),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name, ...(o.labelled ? { [LABEL_PROTECT]: 'true' } : {}) }, ...(o.annotations ? { annotations: o.annotations } : {}) },
        spec: { ...onTheNode, terminationGracePeriodSeconds: 5, containers: [{ name: 'app', image: NODE_IMAGES.pause }] },
      },
    },
  };
}
