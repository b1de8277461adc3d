/**
 * When deliveries are attempted. The deliveries themselves are in Postgres; a scheduler only
 * makes sure a due lane head gets attempted:
 * - with Redis, BullMQ jobs naming lane heads in the `webhook-delivery` queue (`bullmq-delivery.ts`),
 *   worked by any number of worker processes;
 * - embedded, an in-process wake-up of the delivery loop (`embedded-delivery.ts`).
 */
import type { Delivery, HeldDelivery, LaneHead } from './delivery-store.ts';

export interface DeliveryScheduler {
  /** These lane heads are to be attempted when due. */
  schedule(heads: readonly LaneHead[]): Promise<void>;
  /** These lane heads are due now, even if they were waiting for a later attempt (an endpoint enabled again). */
  scheduleNow(heads: readonly LaneHead[]): Promise<void>;
  /**
   * Where new deliveries can start as they are stored — leased by the insert itself, so no claim
   * comes between storing and sending: the delivery loop of this process (embedded), or the BullMQ
   * worker of this process (its jobs name them with their lease: a worker of another process that
   * takes one claims them by id). Undefined while no delivery worker runs in this process.
   */
  intake(): DeliveryIntake | undefined;
  /**
   * Stops scheduling. `budgetMs`: how long it may wait for its store (Redis) before cutting its
   * connections — what is left of the shutdown's time; a default of its own when not given.
   */
  close(budgetMs?: number): Promise<void>;
}

/**
 * A delivery loop taking new deliveries straight from the routing tap: places are reserved before
 * the insert (within the loop's slots and each endpoint's share), the deliveries the insert leased
 * are handed over, and every reserved place not used is given back.
 */
export interface DeliveryIntake {
  /** How long the insert leases a delivery for, in ms (the loop's lease). */
  readonly leaseMs: number;
  /** Reserves up to `wanted` places for new deliveries of the endpoint; returns how many it got. */
  reserve(endpointId: string, wanted: number): number;
  /**
   * Stored and leased, each on a place reserved before: attempt them, oldest first. Returns the lane
   * heads the scheduler must still be told of (`schedule`), each with its lease.
   */
  start(deliveries: readonly Delivery[]): readonly LaneHead[];
  /** Reserved places the endpoint's deliveries did not take (not stored, not leased, or the insert failed). */
  release(endpointId: string, places: number): void;
  /**
   * The scheduler could not be told of these heads (`start` returned them; adding their job failed:
   * Redis away), so no job of theirs may come: those still kept for one are kept no longer, and
   * returned — their leases are to be given back, so that they are due at once (the reconciler
   * queues them) rather than when the insert's lease runs out. One already taken is left alone.
   */
  unscheduled(heads: readonly LaneHead[]): HeldDelivery[];
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
  /** The delivery loop takes new deliveries through `intake` until the returned function is called. */
  attach(intake: DeliveryIntake): () => void;
}

/** Scheduled ids held at most. */
const MAX_QUEUED_IDS = 10_000;

export function createLocalWake(): LocalWake {
  /** Scheduled heads by id (a Map keeps insertion order: oldest first). */
  const queued = new Map<string, string>();
  let overflowed = false;
  let attached: DeliveryIntake | undefined;
  /** The loop waiting (`wait`), each removed once it resolves — by a wake, its timeout or its signal. */
  const waiters = new Set<() => void>();
  /** A wake came while no one waited: the next `wait` returns at once. */
  let woken = false;
  const wakeAll = () => {
    if (waiters.size === 0) {
      woken = true;
      return;
    }
    for (const resolve of [...waiters]) resolve();
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
    intake: () => attached,
    attach(intake) {
      attached = intake;
      return () => {
        if (attached === intake) attached = undefined;
      };
    },
    wait(ms, signal) {
      if (woken || signal.aborted) {
        woken = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener('abort', done, { once: true });
        waiters.add(done);
      });
    },
    close() {
      queued.clear();
      wakeAll();
      return Promise.resolve();
    },
  };
}
