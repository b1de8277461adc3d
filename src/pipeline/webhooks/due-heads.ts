/**
 * The reconciler's look at the table (BullMQ mode): lane heads due and held by no one, which the
 * queue should hold — a job lost with Redis's data, or never added while Redis was away. Read a page
 * at a time, so that heads a worker parks (unleased, due, oldest first) cannot hide the ones behind.
 * A lane's followers wait at 'infinity' until they become its head (migration 0024), past the bound
 * on next_attempt_at: the due index hands the look heads, not the backlog behind retrying ones.
 */
import type { Queryable } from '../../db/database.ts';
import { IS_LANE_HEAD, laneHeadOf, type LaneHead } from './delivery-store.ts';

/** Where a page of due heads ended: its last head's due time, exact (as Postgres wrote it), and id. */
export interface DueHeadsCursor {
  readonly at: string;
  readonly id: string;
}

/**
 * Lane heads that are due (by `graceMs` at least) and not leased, oldest due first: what the queue
 * should hold (the reconciler). A page at a time: `after` a page's `next`, the heads past it.
 */
export async function dueHeads(
  db: Queryable,
  graceMs: number,
  limit: number,
  after?: DueHeadsCursor,
): Promise<{ heads: (LaneHead & { nextAttemptAt: Date })[]; next: DueHeadsCursor | undefined }> {
  const { rows } = await db.query<{ id: string; endpoint_id: string; next_attempt_at: Date; at: string }>(
    `SELECT d.id::text AS id, d.endpoint_id, d.next_attempt_at, d.next_attempt_at::text AS at FROM webhook_deliveries d
      WHERE d.state = 'pending' AND d.next_attempt_at <= now() - $1::double precision * interval '1 millisecond'
        AND d.next_attempt_at >= $3::timestamptz AND (d.next_attempt_at, d.id) > ($3::timestamptz, $4::bigint)
        AND (d.leased_until IS NULL OR d.leased_until < now()) AND ${IS_LANE_HEAD}
      ORDER BY d.next_attempt_at, d.id LIMIT $2::int`,
    [graceMs, limit, after?.at ?? '-infinity', after?.id ?? '0'],
  );
  const last = rows.at(-1);
  return {
    heads: rows.map((row) => ({ ...laneHeadOf(row), nextAttemptAt: row.next_attempt_at })),
    next: rows.length === limit && last ? { at: last.at, id: last.id } : undefined,
  };
}
