/**
 * New deliveries handed from the routing tap to the BullMQ worker of the same process, so that
 * none waits for a claim between being stored and being sent. The tap's insert leases them
 * (within places of the worker's endpoint room, reserved before the insert), and they are kept
 * here, in memory, while their job goes through the queue as any other; the worker that takes the
 * job here sends the copy it finds instead of claiming the row. The job carries each delivery's
 * lease: a worker of another process that takes it has no copy, and claims the row by id — that
 * lease counts as free for it (migrations/0020).
 *
 * Bounded: `maxKept` deliveries at most (the tap leases no more while that many are kept), each
 * for `maxAgeMs` at most — one not taken by then (its job went to another process, or waits
 * behind a backlog) is dropped and its place given back, and is claimed by id when its job comes,
 * under a lease of its own. A job that could not be queued (Redis away) leaves its deliveries
 * leased until the lease runs out; the reconciler then queues them.
 */
import type { DeliveryIntake } from './delivery-scheduler.ts';
import type { Delivery } from './delivery-store.ts';

export interface HandedDelivery {
  readonly delivery: Delivery;
  /** When it was handed over (`now()`): its lease began a moment before. */
  readonly handedAt: number;
}

export interface DeliveryHandoff {
  /** What the routing tap stores into (`DeliveryScheduler.intake`). */
  readonly intake: DeliveryIntake;
  /**
   * The delivery kept for this head, taken off with its room place (now the caller's): only for the
   * head of the job its insert queued, which names it with its lease — a head named by another job
   * (its lane's next, a reconciler's) is claimed, as the lease is used by whoever takes this one.
   * Undefined when none is kept for it, or it was kept longer than `maxAgeMs` (then dropped, its
   * place given back).
   */
  take(head: { readonly id: string; readonly lease?: string | undefined }): HandedDelivery | undefined;
  /** Keeps no more; those kept are dropped, their places given back. Their jobs claim them by id. */
  close(): void;
}

export interface DeliveryHandoffOptions {
  /** How long the insert leases a delivery for, in ms. */
  readonly leaseMs: number;
  /** Deliveries kept (or reserved for) at most. */
  readonly maxKept: number;
  /** How long a delivery is kept at most, in ms; it is then claimed by id when its job comes. */
  readonly maxAgeMs: number;
  /** Takes up to `wanted` places of the endpoint in the worker's room; returns how many it got. */
  readonly reserve: (endpointId: string, wanted: number) => number;
  /** Gives one place of the endpoint back to the worker's room. */
  readonly leave: (endpointId: string) => void;
  /** @default performance.now */
  readonly now?: () => number;
}

export function createDeliveryHandoff(options: DeliveryHandoffOptions): DeliveryHandoff {
  const now = options.now ?? (() => performance.now());
  /** Kept deliveries by id, oldest first (a Map keeps insertion order). */
  const kept = new Map<string, HandedDelivery>();
  /** Places reserved by inserts under way. */
  let reserved = 0;
  let closed = false;

  const drop = (entry: HandedDelivery) => {
    kept.delete(entry.delivery.id);
    options.leave(entry.delivery.endpointId);
  };
  /** Drops the deliveries kept past `maxAgeMs` (the oldest come first). */
  const prune = () => {
    const oldest = now() - options.maxAgeMs;
    for (const entry of kept.values()) {
      if (entry.handedAt >= oldest) break;
      drop(entry);
    }
  };

  const intake: DeliveryIntake = {
    leaseMs: options.leaseMs,
    reserve(endpointId, wanted) {
      if (closed) return 0;
      prune();
      const places = options.reserve(endpointId, Math.min(wanted, options.maxKept - kept.size - reserved));
      reserved += places;
      return places;
    },
    start(deliveries) {
      reserved -= deliveries.length;
      const handedAt = now();
      for (const delivery of deliveries) {
        // Closed since the places were reserved: not kept; the job claims it by id.
        if (closed) options.leave(delivery.endpointId);
        else kept.set(delivery.id, { delivery, handedAt });
      }
      return deliveries.map(({ id, endpointId, lease }) => ({ id, endpointId, lease: lease ?? undefined }));
    },
    release(endpointId, places) {
      reserved -= places;
      for (let place = 0; place < places; place += 1) options.leave(endpointId);
    },
  };

  return {
    intake,
    take({ id, lease }) {
      const entry = kept.get(id);
      if (!entry || lease === undefined || entry.delivery.lease !== lease) return undefined;
      if (entry.handedAt < now() - options.maxAgeMs) {
        drop(entry);
        return undefined;
      }
      kept.delete(id);
      return entry;
    },
    close() {
      closed = true;
      for (const entry of [...kept.values()]) drop(entry);
    },
  };
}
