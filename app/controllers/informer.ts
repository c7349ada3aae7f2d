// List + watch of one kind of object with a label selector, handing on only a slim form of each
// (the watchdog's pods: app/pods/classify.ts's slimPod; namespace setup's namespaces). Ours rather
// than @kubernetes/client-node's makeInformer: that one caches every object whole (managedFields,
// status, volumes), which with 10,000 pods costs hundreds of MiB.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { slimPod, type SlimPod } from '../pods/classify.ts';
import { statusOf } from '../kube/errors.ts';
import { ListItemSplitter } from './json-items.ts';
import type { ControllerLog } from './loop.ts';

export interface InformerEvents<T> {
  /** The full set after a (re)list: replaces everything known. */
  replaced(objects: T[]): void;
  upserted(object: T): void;
  /** By uid; `raw` is the last state the watch sent. */
  deleted(uid: string, raw?: any): void;
}
export type PodEvents = InformerEvents<SlimPod>;

export interface Informer {
  /** Resolves after the first list. */
  synced: Promise<void>;
  stop(): void;
}

interface Page<T> {
  /** Already slim. */
  items: T[];
  metadata?: { _continue?: string; resourceVersion?: string };
}

export interface InformerSource<T> {
  /** Watch path, e.g. /api/v1/pods. */
  path: string;
  labelSelector: string;
  list(options: { labelSelector: string; limit: number; _continue?: string }): Promise<Page<T>>;
  slim(raw: any): T;
  /** Used in log lines. */
  what: string;
}

// Pages are split item by item as they arrive (rawList), so a page's garbage is one pod at a time
// and its size only sets the number of round trips.
const PAGE = 500;

/**
 * One page of a list, each item parsed alone as soon as it arrived and made slim at once
 * (ListItemSplitter): no whole page as text or objects, and none of the generated client's
 * deserialisation (class instances and Date objects of every pod). With 10,000 pods, whole pages
 * grew V8's heap by 137 MiB that it never gave back (bench/RESULTS.md, watchdog).
 */
export function rawList<T>(kc: KubeConfig, path: string, slim: (raw: any) => T): InformerSource<T>['list'] {
  return async (options) => {
    const url = new URL(kc.getCurrentCluster()!.server + path);
    url.searchParams.set('labelSelector', options.labelSelector);
    url.searchParams.set('limit', String(options.limit));
    if (options._continue) url.searchParams.set('continue', options._continue);
    const request: RequestOptions = { method: 'GET', headers: { accept: 'application/json' } };
    await kc.applyToHTTPSOptions(request);
    return new Promise<Page<T>>((resolve, reject) => {
      const req = httpsRequest(url, request, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(Object.assign(new Error(`GET ${path}: HTTP ${res.statusCode}`), { code: res.statusCode }));
        }
        const items: T[] = [];
        const splitter = new ListItemSplitter((item) => items.push(slim(item)));
        res.on('data', (c: Buffer) => {
          try {
            splitter.write(c);
          } catch (err) {
            req.destroy(err as Error);
          }
        });
        res.on('end', () => {
          try {
            const rest = splitter.end() as { metadata?: { continue?: string; resourceVersion?: string } };
            resolve({ items, metadata: { _continue: rest.metadata?.continue, resourceVersion: rest.metadata?.resourceVersion } });
          } catch (err) {
            reject(err as Error);
          }
        });
        res.on('error', reject);
      });
      req.setTimeout(60_000, () => req.destroy(new Error(`GET ${path}: no answer in 60 s`)));
      req.on('error', reject);
      req.end();
    });
  };
}

/** Labelled pods of every namespace, slim. */
export function startPodInformer(kc: KubeConfig, labelSelector: string, on: PodEvents, log: ControllerLog): Informer {
  return startInformer(kc, { path: '/api/v1/pods', labelSelector, list: rawList(kc, '/api/v1/pods', slimPod), slim: slimPod, what: 'pod' }, on, log);
}

/** A watch that ends sooner than this without an event counts as a failure (issue 23 item 9). */
const HEALTHY_WATCH_MS = 5_000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;

/**
 * How long to wait before reopening after `failures` watches in a row ended at once or failed:
 * 0.5 s doubling to 30 s, plus up to 50 % jitter so replicas and controllers do not reopen in step.
 */
export function watchBackoffMs(failures: number, random: () => number = Math.random): number {
  if (failures <= 0) return 0;
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(failures - 1, 16));
  return Math.round(base * (1 + 0.5 * random()));
}

export function startInformer<T>(kc: KubeConfig, source: InformerSource<T>, on: InformerEvents<T>, log: ControllerLog): Informer {
  const { labelSelector } = source;
  const watcher = new Watch(kc);
  let stopped = false;
  let abort: AbortController | undefined;
  let retry: NodeJS.Timeout | undefined;
  /** Watches in a row that ended at once or failed; a healthy watch resets it. */
  let failures = 0;
  let markSynced!: () => void;
  const synced = new Promise<void>((resolve) => (markSynced = resolve));

  async function list(): Promise<string> {
    const objects: T[] = [];
    let token: string | undefined;
    let resourceVersion = '';
    do {
      const page = await source.list({ labelSelector, limit: PAGE, ...(token ? { _continue: token } : {}) });
      for (const item of page.items) objects.push(item);
      token = page.metadata?._continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    } while (token && !stopped);
    // A list that was in flight when stop() ran (leadership lost) is dropped, never delivered.
    if (stopped) return resourceVersion;
    on.replaced(objects);
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
    let events = 0;
    const opened = Date.now();
    abort = await watcher.watch(
      source.path,
      { labelSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
      (type, object) => {
        if (stopped) return;
        events++;
        if (type === 'ERROR') {
          // 410 Gone: our resourceVersion is too old; everything else: start over as well.
          relist = true;
          abort?.abort();
          return;
        }
        const rv = object?.metadata?.resourceVersion;
        if (rv) resourceVersion = rv;
        if (type === 'ADDED' || type === 'MODIFIED') on.upserted(source.slim(object));
        else if (type === 'DELETED' && object?.metadata?.uid) on.deleted(object.metadata.uid, object);
      },
      (err) => {
        if (stopped) return;
        const failed = Boolean(err) && err.name !== 'AbortError';
        if (failed) log.warn({ reason: (err as Error).message ?? String(err), status: statusOf(err) }, `${source.what} watch failed; listing again`);
        // A watch that ran (events, or the server's timeoutSeconds) is reopened at once; one that
        // failed or ended at once waits longer each time, so a server that ends every watch is not
        // asked hundreds of times a second.
        const healthy = !failed && !relist && (events > 0 || Date.now() - opened >= HEALTHY_WATCH_MS);
        failures = healthy ? 0 : failures + 1;
        const delay = watchBackoffMs(failures);
        if (relist || failed) again(Math.max(delay, BACKOFF_FIRST_MS));
        else if (delay === 0) void watch(resourceVersion).catch(() => again(watchBackoffMs(++failures)));
        else {
          retry = setTimeout(() => void watch(resourceVersion).catch(() => again(watchBackoffMs(++failures))), delay);
          retry.unref();
        }
      },
    );
  }

  async function run(): Promise<void> {
    try {
      const rv = await list();
      markSynced();
      if (!stopped) await watch(rv);
    } catch (err) {
      log.warn({ reason: (err as Error).message }, `listing ${source.what}s failed; retrying`);
      again(Math.max(2000, watchBackoffMs(++failures)));
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
