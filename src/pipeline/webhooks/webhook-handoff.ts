/**
 * New deliveries handed from the routing tap to the BullMQ worker of the same process, so that
 * none waits for a claim between being stored and being sent. The tap's insert leases them, and
 * they are kept here, in memory, while their job goes through the queue as any other; the worker
 * that takes the job here sends the copy it finds instead of claiming the row (within its
 * endpoint's room, as any head). The job carries each delivery's lease: a worker of another
 * process that takes it has no copy, and claims the row by id — that lease counts as free for it
 * (migrations/0020).
 *
 * Bounded: `maxKept` deliveries at most, and no more of an endpoint than it has room for in the
 * worker (the tap leases no more while that many are kept), each for `maxAgeMs` at most — one not
 * taken by then (its job went to another process, or waits behind a backlog) is dropped, and is
 * claimed by id when its job comes, under a lease of its own. Nothing is held for it meanwhile but
 * the lease on its row. A job that could not be queued (Redis away) takes its deliveries off
 * (`unscheduled`), and the tap gives their leases back: the reconciler queues them.
 *
 * So it works where a process both routes events and runs a worker, for the jobs its own worker
 * takes soon: with N worker processes, about one job in N comes back to the process that queued it.
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
   * The delivery kept for this head, taken off: only for the head of the job its insert queued,
   * which names it with its lease — a head named by another job (its lane's next, a reconciler's)
   * is claimed, as the lease is used by whoever takes this one. Undefined when none is kept for it,
   * or it was kept longer than `maxAgeMs` (then dropped).
   */
  take(head: { readonly id: string; readonly lease?: string | undefined }): HandedDelivery | undefined;
  /** Keeps no more; returns those kept, dropped (their leases are to be given back). */
  close(): Delivery[];
}

export interface DeliveryHandoffOptions {
  /** How long the insert leases a delivery for, in ms. */
  readonly leaseMs: number;
  /** Deliveries kept (or reserved for) at most. */
  readonly maxKept: number;
  /** How long a delivery is kept at most, in ms; it is then claimed by id when its job comes. */
  readonly maxAgeMs: number;
  /** The places the endpoint has left in the worker (`EndpointRoom.roomOf`): no more of its deliveries are kept. */
  readonly roomOf: (endpointId: string) => number;
  /** @default performance.now */
  readonly now?: () => number;
}

export function createDeliveryHandoff(options: DeliveryHandoffOptions): DeliveryHandoff {
  const now = options.now ?? (() => performance.now());
  /** Kept deliveries by id, oldest first (a Map keeps insertion order). */
  const kept = new Map<string, HandedDelivery>();
  /** Places reserved by inserts under way. */
  let reserved = 0;
  /** Per endpoint: deliveries kept and places reserved. */
  const held = new Map<string, number>();
  const hold = (endpointId: string, count: number) => {
    const left = (held.get(endpointId) ?? 0) + count;
    if (left > 0) held.set(endpointId, left);
    else held.delete(endpointId);
  };
  let closed = false;
  const forget = (entry: HandedDelivery) => {
    kept.delete(entry.delivery.id);
    hold(entry.delivery.endpointId, -1);
  };

  /** Drops the deliveries kept past `maxAgeMs` (the oldest come first). */
  const prune = () => {
    const oldest = now() - options.maxAgeMs;
    for (const entry of kept.values()) {
      if (entry.handedAt >= oldest) break;
      forget(entry);
    }
  };

  const intake: DeliveryIntake = {
    leaseMs: options.leaseMs,
    reserve(endpointId, wanted) {
      if (closed) return 0;
      prune();
      const places = Math.max(0, Math.min(wanted, options.maxKept - kept.size - reserved, options.roomOf(endpointId) - (held.get(endpointId) ?? 0)));
      reserved += places;
      hold(endpointId, places);
      return places;
    },
    start(deliveries) {
      reserved -= deliveries.length;
      const handedAt = now();
      for (const delivery of deliveries) {
        // Closed since the places were reserved: not kept; the job claims it by id.
        if (closed) hold(delivery.endpointId, -1);
        else kept.set(delivery.id, { delivery, handedAt });
      }
      return deliveries.map(({ id, endpointId, lease }) => ({ id, endpointId, lease: lease ?? undefined }));
    },
    release(endpointId, places) {
      reserved -= places;
      hold(endpointId, -places);
    },
    unscheduled(heads) {
      const withdrawn = [];
      for (const { id, lease } of heads) {
        const entry = kept.get(id);
        if (!entry || lease === undefined || entry.delivery.lease !== lease) continue;
        forget(entry);
        withdrawn.push(entry.delivery);
      }
      return withdrawn;
    },
  };

  return {
    intake,
    take({ id, lease }) {
      const entry = kept.get(id);
      if (!entry || lease === undefined || entry.delivery.lease !== lease) return undefined;
      forget(entry);
      return entry.handedAt < now() - options.maxAgeMs ? undefined : entry;
    },
    close() {
      closed = true;
      const dropped = [...kept.values()].map((entry) => entry.delivery);
      kept.clear();
      held.clear();
      return dropped;
    },
  };
}
