// What `npm run demo` shows while it works: one line per step with its elapsed time, and for the
// long Go builds a line every PROGRESS_EVERY_MS with an estimate from the previous run (kept in
// .tools/demo-timings.json, which `npm run demo -- down` keeps: it is cache, not state).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export const PROGRESS_EVERY_MS = 15_000;

/** 42s, 3m05s. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/**
 * The still-working line of a long step: elapsed time, and what the previous run took (or, on the
 * first run, `firstRunHint`).
 */
export function progressLine(label: string, elapsedMs: number, previousMs: number | undefined, firstRunHint: string | undefined): string {
  let estimate = '';
  if (previousMs !== undefined) {
    const left = previousMs - elapsedMs;
    estimate = left > 0
      ? `, last run took ${formatDuration(previousMs)}: about ${formatDuration(left)} left`
      : `, last run took ${formatDuration(previousMs)}: longer this time`;
  } else if (firstRunHint) {
    estimate = `, ${firstRunHint}`;
  }
  return `  ... ${label}: ${formatDuration(elapsedMs)}${estimate}`;
}

/** Durations of the previous run's steps, by step key; a missing or unreadable file is no history. */
export class Timings {
  private readonly values: Record<string, number>;
  private readonly file: string;
  constructor(file: string) {
    this.file = file;
    let read: Record<string, number> = {};
    try {
      if (existsSync(file)) read = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
    } catch {
      read = {};
    }
    this.values = read;
  }

  previous(key: string): number | undefined {
    const v = this.values[key];
    return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
  }

  record(key: string, ms: number): void {
    this.values[key] = ms;
    writeFileSync(this.file, `${JSON.stringify(this.values, null, 2)}\n`);
  }
}
