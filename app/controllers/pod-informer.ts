// List + watch of the labelled pods of every namespace, keeping only the slim form of each pod
// (app/pods/classify.ts's slimPod). An informer of our own rather than @kubernetes/client-node's
// makeInformer: that one caches every pod whole (managedFields, status, volumes), which with
// 10,000 pods costs hundreds of MiB; this keeps the few fields the watchdog reads.
import { CoreV1Api, Watch, type KubeConfig } from '@kubernetes/client-node';
import { slimPod, type SlimPod } from '../pods/classify.ts';
import { statusOf } from '../kube-errors.ts';
import type { ControllerLog } from './loop.ts';

export interface PodEvents {
  /** The full set after a (re)list: replaces everything known. */
  replaced(pods: SlimPod[]): void;
  upserted(pod: SlimPod): void;
  deleted(uid: string): void;
}

export interface PodInformer {
  /** Resolves after the first list. */
  synced: Promise<void>;
  stop(): void;
}

const PAGE = 500;

export function startPodInformer(kc: KubeConfig, labelSelector: string, on: PodEvents, log: ControllerLog): PodInformer {
  const core = kc.makeApiClient(CoreV1Api);
  const watcher = new Watch(kc);
  let stopped = false;
  let abort: AbortController | undefined;
  let retry: NodeJS.Timeout | undefined;
  let markSynced!: () => void;
  const synced = new Promise<void>((resolve) => (markSynced = resolve));

  async function list(): Promise<string> {
    const pods: SlimPod[] = [];
    let token: string | undefined;
    let resourceVersion = '';
    do {
      const page = await core.listPodForAllNamespaces({ labelSelector, limit: PAGE, ...(token ? { _continue: token } : {}) });
      for (const pod of page.items) pods.push(slimPod(pod));
      token = page.metadata?._continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    } while (token && !stopped);
    on.replaced(pods);
    return resourceVersion;
  }

  function again(delayMs: number) {
    if (stopped) return;
    retry = setTimeout(() => void run(), delayMs);
    retry.unref();
  }

  async function watch(from: string): Promise<void> {
    let resourceVersion = from;
    let relist = false;
    abort = await watcher.watch(
      '/api/v1/pods',
      { labelSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
      (type, object) => {
        if (type === 'ERROR') {
          // 410 Gone: our resourceVersion is too old; everything else: start over as well.
          relist = true;
          abort?.abort();
          return;
        }
        const rv = object?.metadata?.resourceVersion;
        if (rv) resourceVersion = rv;
        if (type === 'ADDED' || type === 'MODIFIED') on.upserted(slimPod(object));
        else if (type === 'DELETED' && object?.metadata?.uid) on.deleted(object.metadata.uid);
      },
      (err) => {
        if (stopped) return;
        const failed = Boolean(err) && err.name !== 'AbortError';
        if (failed) log.warn({ reason: (err as Error).message ?? String(err), status: statusOf(err) }, 'watchdog: pod watch failed; listing again');
        // A watch the server closed (timeoutSeconds) goes on from where it was; anything else lists again.
        if (relist || failed) again(1000);
        else void watch(resourceVersion).catch(() => again(1000));
      },
    );
  }

  async function run(): Promise<void> {
    try {
      const rv = await list();
      markSynced();
      if (!stopped) await watch(rv);
    } catch (err) {
      log.warn({ reason: (err as Error).message }, 'watchdog: listing pods failed; retrying');
      again(2000);
    }
  }

  void run();
  return {
    synced,
    stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      abort?.abort();
    },
  };
}
