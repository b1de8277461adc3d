/**
 * Deliveries an admin asks for — replays, redeliveries, tests — stored within a bound per endpoint,
 * so no loop of admin calls can pile up work without end (what routing stores is bounded by
 * backlog-bound.ts). Counting and storing happen under a lock of the endpoint's, so two replays at
 * once cannot pass the bound together; they are stored a page at a time (a replay's up to 10,000
 * bodies are never all in memory, nor in one statement), all in that one transaction: stored whole,
 * or not at all.
 */
import type { Database, Queryable } from '../../db/database.ts';
import { ErrorCode, TributaryError } from '../../errors.ts';
import { insertDeliveries, withLateHeads, type Delivery, type LaneHead, type NewDelivery, type StoredDeliveries } from './delivery-store.ts';

/** Deliveries an admin asked for: how many at most, and themselves a page at a time. */
export interface AdminDeliveries {
  /** What the bound is checked with: the most `pages` yields (it may yield fewer). */
  readonly count: number;
  /**
   * The deliveries in the order they are stored (a lane's order), each page one insert statement;
   * read with `tx`, the transaction that stores them, while the earlier pages are stored.
   */
  pages(tx: Queryable): AsyncIterable<readonly NewDelivery[]> | Iterable<readonly NewDelivery[]>;
}

/** A new delivery of a delivery's event: the same event id (the receiver's `webhook-id`), body and lane. */
export function copyOf(delivery: Delivery, trigger: 'replay' | 'manual'): NewDelivery {
  return {
    endpointId: delivery.endpointId,
    eventId: delivery.eventId,
    eventType: delivery.eventType,
    topic: delivery.topic,
    lane: delivery.lane,
    body: delivery.body,
    trigger,
    eventTime: delivery.eventTime,
  };
}

/**
 * Stores the endpoint's `deliveries` (all of them for `endpointId`; a few as one page) as
 * `storeDeliveries` would, unless they would leave it more than `maxPending` pending deliveries made
 * by an admin.
 * @throws TributaryError RATE_LIMITED (details `pending`, `limit`) when they would, NOT_FOUND (details
 *   `field: endpointId`) when the endpoint was deleted meanwhile: nothing is stored.
 */
export async function storeAdminDeliveries(db: Database, endpointId: string, asked: AdminDeliveries | readonly NewDelivery[], maxPending: number): Promise<StoredDeliveries> {
  const deliveries: AdminDeliveries = 'pages' in asked ? asked : { count: asked.length, pages: () => [asked] };
  const stored = await db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(hashtext('tributary.webhook.admin-deliveries'), hashtext($1))`, [endpointId]);
    // Through the partial index of pending admin-made deliveries (migration 0016): a backlog of
    // routed ones (a receiver down for hours) costs this nothing.
    const { rows } = await tx.query<{ pending: number }>(
      `SELECT count(*)::int AS pending FROM (
         SELECT 1 FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'pending' AND trigger <> 'initial' LIMIT $2) p`,
      [endpointId, maxPending],
    );
    const pending = rows[0]?.pending ?? 0;
    if (pending + deliveries.count > maxPending) throw tooManyPending(pending, deliveries.count, maxPending);
    const inserted: string[] = [];
    const heads: LaneHead[] = [];
    for await (const page of deliveries.pages(tx)) {
      if (page.length === 0) continue;
      // Each page's insert sees the pages before it (one transaction): a lane's head is told once.
      const done = await insertDeliveries(tx, page);
      // An admin's deliveries are never duplicates: one left out went with its endpoint (migrations/0019).
      if (done.inserted.length < page.length) throw endpointDeleted();
      inserted.push(...done.inserted);
      heads.push(...done.heads);
    }
    return { inserted, heads, leased: [] };
  });
  // Committed: the heads the inserts could not tell are looked for now, as storeDeliveries does.
  return withLateHeads(db, stored);
}

/** Refused whole: the admin asks again once what is pending has gone out (or been dead-lettered). */
function tooManyPending(pending: number, asked: number, limit: number): TributaryError {
  return new TributaryError(
    ErrorCode.RATE_LIMITED,
    `The endpoint has ${pending >= limit ? `${limit} or more` : pending} deliveries from replays, redeliveries and tests still pending; with ${asked} more it would have over ${limit}, the most it may: ask again once they have gone out`,
    { details: { pending, limit } },
  );
}

function endpointDeleted(): TributaryError {
  return new TributaryError(ErrorCode.NOT_FOUND, 'The webhook endpoint was deleted meanwhile', { details: { field: 'endpointId' } });
}
