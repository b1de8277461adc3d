/**
 * When deliveries are attempted. The deliveries themselves are in Postgres; a scheduler only
 * makes sure a due lane head gets attempted:
 * - with Redis, a BullMQ job per lane head in the `webhook-delivery` queue (`bullmq-delivery.ts`),
 *   worked by any number of worker processes;
 * - embedded, an in-process wake-up of the delivery loop (`embedded-delivery.ts`).
 */
export interface DeliveryScheduler {
  /** These deliveries (lane heads) are to be attempted when due. */
  schedule(deliveryIds: readonly string[]): Promise<void>;
  /** These deliveries are due now, even if they were waiting for a later attempt (an endpoint enabled again). */
  scheduleNow(deliveryIds: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * The embedded scheduler: the lane heads this process stored or finished, for the in-process loop
 * to claim by id (a primary-key lookup each) instead of looking for them in the table. Bounded: ids
 * past the bound are dropped, and the loop's periodic look at the table finds them — as it finds
 * retries coming due and deliveries stored by other processes.
 */
export interface LocalWake extends DeliveryScheduler {
  /** Up to `max` scheduled ids, oldest first, taken off the queue. */
  take(max: number): string[];
  /** Ids were dropped over the bound since the last call (the table must be looked at). */
  takeOverflowed(): boolean;
  /** Wakes the loop without an id (an attempt finished: a slot is free). */
  poke(): void;
  /** Resolves at the next `schedule` or `poke`, or after `ms`. */
  wait(ms: number, signal: AbortSignal): Promise<void>;
}

/** Scheduled ids held at most. */
const MAX_QUEUED_IDS = 10_000;

export function createLocalWake(): LocalWake {
  const queued = new Set<string>();
  let overflowed = false;
  let waiters: (() => void)[] = [];
  let woken = false;
  const wakeAll = () => {
    woken = true;
    const current = waiters;
    waiters = [];
    for (const resolve of current) resolve();
  };
  const add = (ids: readonly string[]) => {
    for (const id of ids) {
      if (queued.size < MAX_QUEUED_IDS) queued.add(id);
      else overflowed = true;
    }
    if (ids.length > 0) wakeAll();
    return Promise.resolve();
  };
  return {
    schedule: add,
    scheduleNow: add,
    take(max) {
      const taken: string[] = [];
      for (const id of queued) {
        if (taken.length >= max) break;
        taken.push(id);
        queued.delete(id);
      }
      return taken;
    },
    takeOverflowed() {
      const was = overflowed;
      overflowed = false;
      return was;
    },
    poke: wakeAll,
    wait(ms, signal) {
      if (woken) {
        woken = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          woken = false;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener('abort', done, { once: true });
        waiters.push(done);
      });
    },
    close() {
      queued.clear();
      wakeAll();
      return Promise.resolve();
    },
  };
}
