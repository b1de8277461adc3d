/**
 * What a replay takes from an endpoint's own deliveries: the events older than what the event log
 * still holds, or — with `onlyFailed` — the dead letters. An event counts once (its first delivery
 * is the one copied), and an event whose latest dead delivery was followed by one pending or
 * delivered (redelivered since, and through) has not failed any more: it is neither replayed nor
 * counted against the replay's limit.
 */
import type { Queryable } from '../../db/database.ts';
import { laterLiveDeliveries, listDeliveries } from './delivery-log.ts';
import type { Delivery } from './delivery-store.ts';

/** Deliveries read per statement, newest first. */
const PAGE = 500;

/**
 * The endpoint's deliveries of events in the range but not in `skip` (dead ones only with
 * `onlyFailed`), each event's oldest, oldest first, test events left out; undefined when they are
 * of more than `room` events.
 */
export async function deliveriesToReplay(
  db: Queryable,
  endpointId: string,
  range: { readonly since: Date; readonly until: Date; readonly onlyFailed: boolean },
  skip: ReadonlySet<string>,
  room: number,
): Promise<Delivery[] | undefined> {
  /**
   * Each event's oldest delivery read so far (the one copied), but those of events left out as
   * mended: no more than `room` events' at the end of a page — never a whole range's deliveries.
   */
  const oldestOf = new Map<string, Delivery>();
  /** With onlyFailed: events not yet looked at for a live delivery since, by their latest dead one's id. */
  const unchecked = new Map<string, bigint>();
  /** Events whose latest dead delivery was followed by a live one: left out, and not counted. */
  const mended = new Set<string>();
  /**
   * Looks at the unchecked events for a live delivery after their latest dead one (each above
   * `after`, the oldest delivery read so far). One statement for all of them: made when the count
   * would refuse the replay, and once at the end — not per page, as each reads the endpoint's
   * deliveries from `after` on.
   */
  const leaveOutMended = async (after: string) => {
    const live = await laterLiveDeliveries(db, endpointId, [...unchecked.keys()], after);
    for (const [eventId, id] of live) {
      if (BigInt(id) <= unchecked.get(eventId)!) continue;
      mended.add(eventId);
      oldestOf.delete(eventId);
    }
    unchecked.clear();
  };
  /** The oldest delivery read so far: every unchecked event's latest is at or above it. */
  let oldest: string | undefined;
  for (;;) {
    const page = await listDeliveries(db, { endpointIds: [endpointId], state: range.onlyFailed ? 'dead' : undefined, since: range.since, until: range.until, before: oldest, limit: PAGE });
    for (const delivery of page) {
      if (delivery.trigger === 'test' || skip.has(delivery.eventId) || mended.has(delivery.eventId)) continue;
      // Listed newest first: an event's first listed is its latest (dead, with onlyFailed), its last its oldest.
      if (range.onlyFailed && !oldestOf.has(delivery.eventId)) unchecked.set(delivery.eventId, BigInt(delivery.id));
      oldestOf.set(delivery.eventId, delivery);
    }
    oldest = page.at(-1)?.id ?? oldest;
    if (oldestOf.size > room && unchecked.size > 0 && oldest !== undefined) await leaveOutMended(oldest);
    if (oldestOf.size > room) return undefined;
    if (page.length < PAGE) break;
  }
  if (unchecked.size > 0 && oldest !== undefined) await leaveOutMended(oldest);
  // Oldest first, each event by its oldest delivery.
  return [...oldestOf.values()].sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
}
