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
 * `onlyFailed`), the first of each event, oldest first, test events left out; undefined when they
 * are of more than `room` events.
 */
export async function deliveriesToReplay(
  db: Queryable,
  endpointId: string,
  range: { readonly since: Date; readonly until: Date; readonly onlyFailed: boolean },
  skip: ReadonlySet<string>,
  room: number,
): Promise<Delivery[] | undefined> {
  const found: Delivery[] = [];
  const events = new Set<string>();
  /** Events whose latest dead delivery was followed by a live one: left out, and not counted. */
  const superseded = new Set<string>();
  let before: string | undefined;
  for (;;) {
    const page = await listDeliveries(db, { endpointIds: [endpointId], state: range.onlyFailed ? 'dead' : undefined, since: range.since, until: range.until, before, limit: PAGE });
    const wanted = page.filter((delivery) => delivery.trigger !== 'test' && !skip.has(delivery.eventId) && !superseded.has(delivery.eventId));
    if (range.onlyFailed) {
      // Listed newest first: an event first seen on this page has its latest dead delivery here, and
      // a live one after it is above the page's oldest.
      const latest = new Map<string, bigint>();
      for (const delivery of wanted) if (!events.has(delivery.eventId) && !latest.has(delivery.eventId)) latest.set(delivery.eventId, BigInt(delivery.id));
      const oldest = page.at(-1);
      const live = oldest && latest.size > 0 ? await laterLiveDeliveries(db, endpointId, [...latest.keys()], oldest.id) : new Map<string, string>();
      for (const [eventId, id] of live) if (BigInt(id) > latest.get(eventId)!) superseded.add(eventId);
    }
    for (const delivery of wanted) {
      if (superseded.has(delivery.eventId)) continue;
      found.push(delivery);
      events.add(delivery.eventId);
    }
    if (events.size > room) return undefined;
    if (page.length < PAGE) break;
    before = page.at(-1)!.id;
  }
  // Each event's first delivery is the one copied.
  const seen = new Set<string>();
  return found.reverse().filter((delivery) => !seen.has(delivery.eventId) && seen.add(delivery.eventId));
}
