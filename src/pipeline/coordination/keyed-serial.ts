/**
 * Per-key serial execution, the one implementation behind every "this key's work runs in order"
 * rule: a document's events in revision order, an entity's events in commit order, one flush of a
 * cache entry at a time. Keys that share nothing run concurrently; the maps hold only keys with
 * work pending, so they never grow with the number of keys ever seen.
 */

/** A reserved place in one or more keys' queues. */
export interface Slot {
  /** Runs `work` once every earlier slot of its keys is done; the slot is done when `work` settles. */
  run<T>(work: () => Promise<T>): Promise<T>;
  /** Gives the place up without running anything (the work it was reserved for failed early). */
  cancel(): void;
}

export interface KeyedSerial {
  /**
   * Takes a place now, in the queues of all `keys`, for work that may start later. Reserving while
   * the caller still holds what orders it (a row lock, a Redis lock) is what keeps the order.
   */
  reserve(keys: readonly string[]): Slot;
  /** `reserve(keys).run(work)`. */
  run<T>(keys: readonly string[], work: () => Promise<T>): Promise<T>;
  /** Keys with work queued or running. */
  readonly pendingKeys: number;
}

export function createKeyedSerial(): KeyedSerial {
  const tails = new Map<string, Promise<void>>();
  const reserve = (keys: readonly string[]): Slot => {
    const previous = keys.map((key) => tails.get(key)).filter((tail) => tail !== undefined);
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const tail = Promise.all(previous).then(() => finished);
    for (const key of keys) {
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
    }
    let used = false;
    return {
      async run(work) {
        if (used) throw new Error('slot already used');
        used = true;
        try {
          await Promise.all(previous);
          return await work();
        } finally {
          finish();
        }
      },
      cancel() {
        if (used) return;
        used = true;
        finish();
      },
    };
  };
  return {
    reserve,
    run: (keys, work) => reserve(keys).run(work),
    get pendingKeys() {
      return tails.size;
    },
  };
}

/**
 * "Run this again after whatever is running": a request while a run is in progress queues exactly
 * one more run, which every later request shares until it starts. Used for work whose latest
 * result is all that matters (flushing a dirty entry, reloading configuration).
 */
export interface KeyedCoalescer {
  request(key: string, work: () => Promise<void>): Promise<void>;
}

export function createKeyedCoalescer(): KeyedCoalescer {
  const running = new Map<string, Promise<void>>();
  const queued = new Map<string, Promise<void>>();
  const start = (key: string, work: () => Promise<void>): Promise<void> => {
    const run = work().finally(() => {
      if (running.get(key) === run) running.delete(key);
    });
    running.set(key, run);
    return run;
  };
  return {
    request(key, work) {
      const waiting = queued.get(key);
      if (waiting) return waiting;
      const current = running.get(key);
      if (!current) return start(key, work);
      const next = current
        .catch(() => undefined)
        .then(() => {
          queued.delete(key);
          return start(key, work);
        });
      queued.set(key, next);
      return next;
    },
  };
}
