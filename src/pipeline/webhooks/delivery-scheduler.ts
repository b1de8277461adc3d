/**
 * When deliveries are attempted. The deliveries themselves are in Postgres; a scheduler only
 * makes sure a due lane head gets attempted:
 * - with Redis, BullMQ jobs naming lane heads in the `webhook-delivery` queue (`bullmq-delivery.ts`),
 *   worked by any number of worker processes;
 * - embedded, an in-process wake-up of the delivery loop (`embedded-delivery.ts`).
 */
import type { LaneHead } from './delivery-store.ts';

export interface DeliveryScheduler {
  /** These lane heads are to be attempted when due. */
  schedule(heads: readonly LaneHead[]): Promise<void>;
  /** These lane heads are due now, even if they were waiting for a later attempt (an endpoint enabled again). */
  scheduleNow(heads: readonly LaneHead[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * The embedded scheduler: the lane heads this process stored or finished, for the in-process loop
 * to claim by id (a primary-key lookup each) instead of looking for them in the table. Bounded: ids
 * past the bound are dropped, and the loop's periodic look at the table finds them — as it finds
 * retries coming due and deliveries stored by other processes.
 */
export interface LocalWake extends DeliveryScheduler {
  /**
   * Up to `max` scheduled heads, oldest first, taken off the queue — at most `roomOf(endpoint)` of
   * each endpoint's; the others stay queued.
   */
  take(max: number, roomOf: (endpointId: string) => number): LaneHead[];
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
  /** Scheduled heads by id (a Map keeps insertion order: oldest first). */
  const queued = new Map<string, string>();
  let overflowed = false;
  let waiters: (() => void)[] = [];
  let woken = false;
  const wakeAll = () => {
    woken = true;
    const current = waiters;
    waiters = [];
    for (const resolve of current) resolve();
  };
  const add = (heads: readonly LaneHead[]) => {
    for (const { id, endpointId } of heads) {
      if (queued.size < MAX_QUEUED_IDS) queued.set(id, endpointId);
      else overflowed = true;
    }
    if (heads.length > 0) wakeAll();
    return Promise.resolve();
  };
  return {
    schedule: add,
    scheduleNow: add,
    take(max, roomOf) {
      const taken: LaneHead[] = [];
      const room = new Map<string, number>();
      for (const [id, endpointId] of queued) {
        if (taken.length >= max) break;
        const left = room.get(endpointId) ?? roomOf(endpointId);
        if (left <= 0) continue;
        room.set(endpointId, left - 1);
        taken.push({ id, endpointId });
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
