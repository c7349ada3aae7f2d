// A hosts-file entry for the cluster benchmark: a name that resolves to 127.0.0.1 but is not
// `localhost` nor an IP, so the API server offers webhooks registered under it only HTTP/1.1 in ALPN,
// as it does for every Service webhook (k8s.io/apiserver v0.37.2 pkg/util/webhook/client.go:
// `if !isLocalHost(u) { cfg.NextProtos = []string{"http/1.1"} }`, where isLocalHost accepts
// "localhost" in any case and loopback IP literals only). The entry is added for the run and removed
// at its end, on failure and on SIGINT/SIGTERM too; one left by a run that was killed outright
// (its process gone) is removed by the next run.

import { readFileSync, writeFileSync } from 'node:fs';

export const HOSTS_FILE = '/etc/hosts';
const MARKER = '# pando-bench pid ';

export interface HostsEntry {
  name: string;
  /** Removes the entry (only this run's line); safe to call more than once. */
  remove(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function rewrite(file: string, keep: (line: string) => boolean): void {
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const kept = lines.filter(keep);
  // Written in place (a container's /etc/hosts is a bind mount: it cannot be replaced by a rename).
  if (kept.length !== lines.length) writeFileSync(file, kept.join('\n'));
}

function ownerOf(line: string): number | undefined {
  const at = line.indexOf(MARKER);
  return at < 0 ? undefined : Number(line.slice(at + MARKER.length));
}

/** Adds `127.0.0.1 name` to the hosts file until remove() (or this process ends). */
export function addHostsEntry(name: string, file: string = HOSTS_FILE): HostsEntry {
  if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(name) || name.toLowerCase() === 'localhost') throw new Error(`bench: ${JSON.stringify(name)} is not a host name for the hosts file`);
  try {
    rewrite(file, (line) => {
      const owner = ownerOf(line);
      return owner === undefined || alive(owner);
    });
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}127.0.0.1 ${name} ${MARKER}${process.pid}\n`);
  } catch (err) {
    throw new Error(`bench: cannot add ${name} to ${file} (${(err as Error).message}); the cluster benchmark needs root to register webhooks under a host name`);
  }
  let removed = false;
  const onSignal = (signal: NodeJS.Signals) => {
    remove();
    process.kill(process.pid, signal);
  };
  function remove() {
    if (removed) return;
    removed = true;
    process.off('exit', remove);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rewrite(file, (line) => ownerOf(line) !== process.pid);
  }
  process.once('exit', remove);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return { name, remove };
}
