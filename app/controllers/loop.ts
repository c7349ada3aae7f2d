// The loop every in-cluster controller runs (namespace setup, watchdog): each interval, one round of
// leader election on its Lease, then the controller's own round with whether this replica leads.
// One copy, so both controllers stand by, take over and stop the same way.
import type { KubeConfig, V1OwnerReference } from '@kubernetes/client-node';
import { acquireOrRenew, kubeLeaseStore, release, type LeaseStore } from './leader.ts';

export interface ControllerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface LeaderLoopOptions {
  /** Name in log lines ("namespace setup", "watchdog"). */
  name: string;
  /** The Lease (in `namespace`, created with `ownerReferences`), or a store for tests. */
  lease: { kubeConfig: KubeConfig; namespace: string; name: string; ownerReferences?: V1OwnerReference[] } | LeaseStore;
  /** This replica's identity (the pod name). */
  identity: string;
  log: ControllerLog;
  /** @default 15 */
  leaseDurationSeconds?: number;
  /** Time between rounds; keep it well under the Lease duration. */
  intervalMs: number;
  /** The controller's work for one round, run only while this replica holds the Lease. */
  round(): Promise<void>;
  /** Called when the Lease is lost and on stop(): let go of what the leader runs (watches, state). */
  letGo?(): Promise<void> | void;
}

export interface LeaderLoop {
  isLeader(): boolean;
  stop(): Promise<void>;
}

/** Starts the loop at once; stop() ends it (the Lease then expires and another replica takes over). */
export function startLeaderLoop(options: LeaderLoopOptions): LeaderLoop {
  const duration = options.leaseDurationSeconds ?? 15;
  const store = 'read' in options.lease ? options.lease : kubeLeaseStore(options.lease.kubeConfig, options.lease.namespace, options.lease.name, options.lease.ownerReferences);
  let leader = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const round = async () => {
    const wasLeader = leader;
    leader = await acquireOrRenew(store, options.identity, new Date(), duration).catch((err: unknown) => {
      options.log.warn({ reason: (err as Error).message }, `${options.name}: lease round failed`);
      return false;
    });
    if (stopped) return;
    if (leader !== wasLeader) options.log.info({ identity: options.identity, leader }, leader ? `${options.name}: leading` : `${options.name}: standing by`);
    if (leader) await options.round();
    else if (wasLeader) await options.letGo?.();
  };
  const next = () =>
    round()
      .catch((err: unknown) => options.log.warn({ reason: (err as Error).message }, `${options.name}: round failed`))
      .finally(schedule);
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = next();
    }, options.intervalMs);
    timer.unref();
  };
  running = next();
  return {
    isLeader: () => leader,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
      const wasLeader = leader;
      leader = false;
      await options.letGo?.();
      if (wasLeader) await release(store, options.identity).catch(() => false);
    },
  };
}
