/**
 * Each endpoint's share of one worker process: the deliveries it has admitted for an endpoint
 * (leased and waiting for a slot, or being sent) stay within the endpoint's `maxConcurrency`. A
 * delivery leased beyond it is not attempted — the endpoint's gate would only refuse it, and a
 * refusal is a postponement written to the database and a retry a moment later, over and over
 * while a busy endpoint's backlog lasts. Its lease is given back instead and its id parked here
 * until an admitted delivery of the endpoint ends; a slow endpoint then holds at most its own
 * share of the process's slots and never fills them with deliveries it cannot take.
 *
 * The endpoint's gate still decides across processes (BullMQ workers share it through Redis).
 */

export interface EndpointRoom {
  /** Places the endpoint has left in this process. */
  roomOf(endpointId: string): number;
  /** Admits a delivery of `endpointId` (one place taken) when the endpoint has room in this process; otherwise parks its id and answers false. */
  admit(endpointId: string, deliveryId: string): boolean;
  /** Admits up to `wanted` deliveries of the endpoint not stored yet (nothing parked); returns how many. */
  reserve(endpointId: string, wanted: number): number;
  /** An admitted delivery ended (its HTTP part is over, or it was not attempted after all): parked ids of the endpoint to claim again, as many as it has room for. */
  leave(endpointId: string): string[];
  /** Endpoints with no room in this process, or parked ids waiting (a look at the table skips them). */
  full(): string[];
  /** The endpoint has parked ids. */
  parking(endpointId: string): boolean;
  /** The delivery is parked here (it will be claimed again once its endpoint has room). */
  holds(deliveryId: string): boolean;
  /** Ids were dropped over the bound since the last call (due and unleased: a look at the table finds them). */
  takeDropped(): boolean;
}

/** Parked ids held at most over every endpoint; one past it is dropped — it is unleased and due, so a look at the table finds it. */
const MAX_PARKED = 50_000;

/**
 * One endpoint's parked ids, oldest first: taken from `head` on, so taking a few off a long queue
 * costs only those few (a `splice` from the front moved every id left, at each delivery's end —
 * measured at a tenth of a BullMQ worker's CPU with a 20,000-delivery backlog parked).
 */
interface ParkedIds {
  ids: string[];
  head: number;
}

/** Taken ids are cut off the front once they are this many and over half the array. */
const COMPACT_AFTER = 1024;

/** `maxOf`: an endpoint's `maxConcurrency`, undefined when unknown (not loaded yet: admitted, its gate decides). */
export function createEndpointRoom(maxOf: (endpointId: string) => number | undefined): EndpointRoom {
  const admitted = new Map<string, number>();
  const parked = new Map<string, ParkedIds>();
  /** Every parked id, once: an id parked already is not queued twice (a job naming it again). */
  const parkedIds = new Set<string>();
  let dropped = false;
  const roomOf = (endpointId: string) => (maxOf(endpointId) ?? Number.POSITIVE_INFINITY) - (admitted.get(endpointId) ?? 0);
  const hasRoom = (endpointId: string) => roomOf(endpointId) > 0;

  return {
    roomOf,
    admit(endpointId, deliveryId) {
      if (hasRoom(endpointId)) {
        admitted.set(endpointId, (admitted.get(endpointId) ?? 0) + 1);
        return true;
      }
      if (parkedIds.has(deliveryId)) return false;
      if (parkedIds.size < MAX_PARKED) {
        let queue = parked.get(endpointId);
        if (!queue) parked.set(endpointId, (queue = { ids: [], head: 0 }));
        queue.ids.push(deliveryId);
        parkedIds.add(deliveryId);
      } else dropped = true;
      return false;
    },
    reserve(endpointId, wanted) {
      const places = Math.max(0, Math.min(wanted, roomOf(endpointId)));
      if (places > 0) admitted.set(endpointId, (admitted.get(endpointId) ?? 0) + places);
      return places;
    },
    leave(endpointId) {
      const left = (admitted.get(endpointId) ?? 1) - 1;
      if (left > 0) admitted.set(endpointId, left);
      else admitted.delete(endpointId);
      const queue = parked.get(endpointId);
      if (!queue) return [];
      const waiting = queue.ids.length - queue.head;
      const room = Math.max(0, (maxOf(endpointId) ?? waiting) - left);
      const again = queue.ids.slice(queue.head, queue.head + room);
      queue.head += again.length;
      for (const id of again) parkedIds.delete(id);
      if (queue.head === queue.ids.length) parked.delete(endpointId);
      else if (queue.head >= COMPACT_AFTER && queue.head * 2 >= queue.ids.length) {
        queue.ids = queue.ids.slice(queue.head);
        queue.head = 0;
      }
      return again;
    },
    parking: (endpointId) => parked.has(endpointId),
    holds: (deliveryId) => parkedIds.has(deliveryId),
    takeDropped() {
      const was = dropped;
      dropped = false;
      return was;
    },
    full() {
      const ids = new Set(parked.keys());
      for (const endpointId of admitted.keys()) if (!hasRoom(endpointId)) ids.add(endpointId);
      return [...ids];
    },
  };
}
