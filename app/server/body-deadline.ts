// How a review body is read: each chunk is charged to the review gate as it arrives (its socket
// paused while the chunk waits for room), and the body has two deadlines (issue 23 item 1). Node's
// and fastify's own request timeouts are off (fastify sets 0), so without these a body that never
// arrives would hold its connection, and whatever budget it had, for ever.
// - The whole body must arrive within `timeoutMs` of the request's headers (a trickle of one byte
//   every 100 ms is refused there).
// - A request that sends nothing for `stallMs` (not counting time it waited for the gate) is refused
//   at once, with what it holds.
// A refused body ends the payload stream with a BodyRefusedError (408); fastify answers it with
// `connection: close`, and the connection is closed.
import { Transform, type Readable } from 'node:stream';
import { ERRORS, type ErrorSpec } from '../errors.ts';
import type { Account } from './review-gate.ts';

export interface BodyDeadlines {
  /** The whole body must arrive within this long of the headers. */
  readonly timeoutMs: number;
  /** A request that sends nothing for this long is refused. */
  readonly stallMs: number;
}

export type BodyRefusal = 'timeout' | 'stalled';

export class BodyRefusedError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly reason: BodyRefusal;
  constructor(reason: BodyRefusal, spec: ErrorSpec, afterMs: number) {
    super(`${spec.message} (after ${afterMs} ms)`);
    this.name = 'BodyRefusedError';
    this.reason = reason;
    this.code = spec.code;
    this.statusCode = spec.statusCode;
  }
}

export interface MeteredBody {
  /** What the body parser reads: the source's bytes, each chunk once the gate let it in. */
  readonly stream: Transform;
  /** Stops the timers and frees the gate's bytes (the answer is sent or the client went away). */
  stop(): void;
}

export function meteredBody(source: Readable, account: Account, limits: BodyDeadlines, onRefused: (reason: BodyRefusal) => void): MeteredBody {
  let stall: NodeJS.Timeout | undefined;
  let done = false;
  const started = Date.now();

  const stop = () => {
    done = true;
    clearTimeout(deadline);
    clearTimeout(stall);
    account.leave();
  };
  const refuse = (reason: BodyRefusal) => {
    if (done) return;
    stop();
    source.unpipe(stream);
    onRefused(reason);
    const spec = reason === 'timeout' ? ERRORS.BODY_TIMEOUT : ERRORS.BODY_STALLED;
    stream.destroy(new BodyRefusedError(reason, spec, Date.now() - started));
  };
  const armStall = () => {
    clearTimeout(stall);
    if (!done) stall = setTimeout(() => refuse('stalled'), limits.stallMs);
  };

  const stream = new Transform({
    transform(chunk: Buffer, _encoding, next) {
      if (done) return next();
      // Waiting for room is not stalling: the socket is paused by us, not by the client.
      clearTimeout(stall);
      account.charge(chunk.length, () => {
        armStall();
        next(null, chunk);
      });
    },
    flush(next) {
      // The body is complete: its bytes stay charged until the answer is sent (stop()).
      clearTimeout(deadline);
      clearTimeout(stall);
      next();
    },
  });
  const deadline = setTimeout(() => refuse('timeout'), limits.timeoutMs);
  armStall();
  // pipe() does not forward errors: a client that goes away mid-body ends the parse with its error.
  source.once('error', (err) => {
    if (!done) stream.destroy(err);
  });
  source.pipe(stream);
  return { stream, stop };
}
