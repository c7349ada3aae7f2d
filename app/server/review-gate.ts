// The byte budget of review bodies in memory. Under a burst (32 reviews of 3 MiB at once) reading
// and parsing every body together holds them all in the heap and makes every answer late; through
// the gate at most `capacity` bytes of bodies are held at once, and a request whose next chunk does
// not fit waits with its socket paused (its bytes stay in the kernel), first come first served.
//
// A request is charged for the bytes it has sent, never for the Content-Length it declares (issue 23
// item 1: two connections that declared 7 MiB and sent nothing held the whole budget, and every
// honest review waited past the API server's timeout). A body's bytes stay charged until its answer
// is sent. So that two large bodies, each half read, can never wait for each other, the oldest
// request that holds (or asks for) bytes is never made to wait: it may take the budget beyond
// `capacity` by at most its own body. A request that sent nothing holds nothing and delays no one. Pure bookkeeping: no I/O, no clock (deadlines are the server's, app/server/body-deadline.ts).

export interface Account {
  /** Charges `bytes` and calls `go` once they fit; at most one charge waits at a time. */
  charge(bytes: number, go: () => void): void;
  /** Frees every byte charged and drops a waiting charge; later calls do nothing. */
  leave(): void;
  /** True while a charge waits for room. */
  readonly waiting: boolean;
}

export interface ReviewGate {
  /** A new request's account; requests are served in the order their accounts were opened. */
  open(): Account;
  /** Requests with a charge waiting. */
  readonly waiting: number;
  readonly bytesInFlight: number;
}

interface Entry {
  readonly seq: number;
  charged: number;
  pending?: { bytes: number; go: () => void };
  left: boolean;
}

export function createReviewGate(capacity: number): ReviewGate {
  if (!(Number.isInteger(capacity) && capacity > 0)) throw new Error(`review gate capacity must be a positive integer (got ${capacity})`);
  // Open accounts in order of arrival (the first is the oldest), and the waiting ones in the same order.
  const open: Entry[] = [];
  const queue: Entry[] = [];
  let inFlight = 0;
  let nextSeq = 0;

  function grant(entry: Entry): void {
    const { bytes, go } = entry.pending!;
    entry.pending = undefined;
    entry.charged += bytes;
    inFlight += bytes;
    go();
  }

  /** The oldest request that holds bytes or waits for them (a waiting one is always first in the queue). */
  function oldestHolder(): Entry | undefined {
    return open.find((entry) => entry.charged > 0 || entry.pending);
  }

  function admitWaiting(): void {
    // Strictly in order: a small chunk never overtakes a larger one waiting before it; only the
    // oldest holder may go beyond the capacity, so holders never wait for each other in a circle.
    while (queue.length > 0) {
      const head = queue[0]!;
      if (inFlight + head.pending!.bytes > capacity && head !== oldestHolder()) break;
      queue.shift();
      grant(head);
    }
  }

  return {
    open() {
      const entry: Entry = { seq: nextSeq++, charged: 0, left: false };
      open.push(entry);
      return {
        charge(bytes, go) {
          if (entry.left) return;
          if (entry.pending) throw new Error('review gate: a charge is already waiting');
          entry.pending = { bytes: Math.max(0, Math.ceil(bytes)), go };
          // Kept in arrival order of the requests, not of the chunks.
          let at = queue.length;
          while (at > 0 && queue[at - 1]!.seq > entry.seq) at--;
          queue.splice(at, 0, entry);
          admitWaiting();
        },
        leave() {
          if (entry.left) return;
          entry.left = true;
          inFlight -= entry.charged;
          entry.charged = 0;
          if (entry.pending) {
            entry.pending = undefined;
            queue.splice(queue.indexOf(entry), 1);
          }
          open.splice(open.indexOf(entry), 1);
          admitWaiting();
        },
        get waiting() {
          return entry.pending !== undefined;
        },
      };
    },
    get waiting() {
      return queue.length;
    },
    get bytesInFlight() {
      return inFlight;
    },
  };
}
