/**
 * Deliveries an admin asks for — replays, redeliveries, tests — stored within a bound per endpoint,
 * so no loop of admin calls can pile up work without end (what routing stores is bounded by
 * backlog-bound.ts). Counting and storing happen under a lock of the endpoint's, so two replays at
 * once cannot pass the bound together.
 */
import type { Database } from '../../db/database.ts';
import { ErrorCode, TributaryError } from '../../errors.ts';
import { insertDeliveries, withLateHeads, type NewDelivery, type StoredDeliveries } from './delivery-store.ts';

/**
 * Stores the endpoint's `deliveries` (all of them for `endpointId`) as `storeDeliveries` would, unless
 * they would leave it more than `maxPending` pending deliveries made by an admin.
 * @throws TributaryError RATE_LIMITED (details `pending`, `limit`) when they would: nothing is stored.
 */
export async function storeAdminDeliveries(db: Database, endpointId: string, deliveries: readonly NewDelivery[], maxPending: number): Promise<StoredDeliveries> {
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
    if (pending + deliveries.length > maxPending) throw tooManyPending(pending, deliveries.length, maxPending);
    return insertDeliveries(tx, deliveries);
  });
  // Committed: the heads the insert could not tell are looked for now, as storeDeliveries does.
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
