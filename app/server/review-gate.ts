// First come, first served admission of request bodies, bounded by their size. Under a burst (32
// reviews of 3 MiB at once) reading and parsing every body together holds them all in the heap and
// makes every answer late; through the gate only `capacity` bytes of bodies are read and parsed at
// once, the others wait with their bytes in the kernel (an unread request pauses its socket), and
// they start in arrival order. Pure bookkeeping: no I/O, no clock.

export interface Ticket {
  /** Frees the place (or leaves the queue, if still waiting); later calls do nothing. */
  leave(): void;
}

export interface ReviewGate {
  /** Calls `start` once `weight` bytes fit and everyone who came earlier has started. */
  enter(weight: number, start: () => void): Ticket;
  readonly waiting: number;
  readonly bytesInFlight: number;
}

interface Entry {
  weight: number;
  start: () => void;
  state: 'waiting' | 'running' | 'left';
}

export function createReviewGate(capacity: number): ReviewGate {
  if (!(Number.isInteger(capacity) && capacity > 0)) throw new Error(`review gate capacity must be a positive integer (got ${capacity})`);
  const queue: Entry[] = [];
  let inFlight = 0;

  function admitWaiting(): void {
    // Strictly in order: a small body never overtakes a large one waiting before it.
    while (queue.length > 0 && inFlight + queue[0]!.weight <= capacity) {
      const entry = queue.shift()!;
      entry.state = 'running';
      inFlight += entry.weight;
      entry.start();
    }
  }

  return {
    enter(weight, start) {
      // A body larger than the whole capacity still gets in, alone.
      const entry: Entry = { weight: Math.min(Math.max(Math.ceil(weight), 1), capacity), start, state: 'waiting' };
      queue.push(entry);
      admitWaiting();
      return {
        leave() {
          if (entry.state === 'running') {
            inFlight -= entry.weight;
          } else if (entry.state === 'waiting') {
            queue.splice(queue.indexOf(entry), 1);
          }
          entry.state = 'left';
          admitWaiting();
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
