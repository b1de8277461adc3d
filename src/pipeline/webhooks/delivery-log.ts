/**
 * The webhook delivery log (migration 0007) as admins read it — deliveries and their attempts,
 * filtered and paged newest first — its per-endpoint figures, and its pruning past the retention.
 * The delivery engine's own statements are in `delivery-store.ts`.
 */
import type { Queryable } from '../../db/database.ts';
import { DELIVERY_COLUMNS, deliveryOf, type AttemptOutcome, type Delivery, type DeliveryRow, type DeliveryState, type DeliveryTrigger } from './delivery-store.ts';

export interface AttemptRecord {
  readonly id: string;
  readonly deliveryId: string;
  readonly endpointId: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly attempt: number;
  readonly trigger: DeliveryTrigger;
  readonly outcome: AttemptOutcome | 'dead';
  readonly status: number | null;
  readonly durationMs: number;
  readonly error: string | null;
  readonly responseExcerpt: string | null;
  readonly nextAttemptAt: Date | null;
  readonly createdAt: Date;
}

/** What both logs (deliveries, attempts) are filtered and paged by, newest first. */
interface LogFilter {
  readonly endpointIds: readonly string[];
  readonly eventType?: string | undefined;
  readonly since?: Date | undefined;
  readonly until?: Date | undefined;
  /** Keyset pagination: entries with a smaller id. */
  readonly before?: string | undefined;
  readonly limit: number;
}

export interface DeliveryFilter extends LogFilter {
  readonly state?: DeliveryState | undefined;
}

/** Newest first. */
export async function listDeliveries(db: Queryable, filter: DeliveryFilter): Promise<Delivery[]> {
  const { rows } = await db.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d
      WHERE d.endpoint_id = ANY($1::text[]) AND ($2::text IS NULL OR d.state = $2) AND ($3::text IS NULL OR d.event_type = $3)
        AND ($4::timestamptz IS NULL OR d.event_time >= $4) AND ($5::timestamptz IS NULL OR d.event_time < $5)
        AND ($6::bigint IS NULL OR d.id < $6::bigint)
      ORDER BY d.id DESC LIMIT $7::int`,
    [filter.endpointIds, filter.state ?? null, filter.eventType ?? null, filter.since ?? null, filter.until ?? null, filter.before ?? null, filter.limit],
  );
  return rows.map(deliveryOf);
}

export interface AttemptFilter extends LogFilter {
  readonly deliveryId?: string | undefined;
  readonly outcome?: string | undefined;
}

type AttemptRow = {
  id: string;
  delivery_id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  attempt: number;
  trigger: DeliveryTrigger;
  outcome: AttemptRecord['outcome'];
  status: number | null;
  duration_ms: number;
  error: string | null;
  response_excerpt: string | null;
  next_attempt_at: Date | null;
  created_at: Date;
};

/** Newest first. */
export async function listAttempts(db: Queryable, filter: AttemptFilter): Promise<AttemptRecord[]> {
  const { rows } = await db.query<AttemptRow>(
    `SELECT a.id::text AS id, a.delivery_id::text AS delivery_id, a.endpoint_id, a.event_id, a.event_type, a.attempt, a.trigger, a.outcome,
            a.status, a.duration_ms, a.error, a.response_excerpt, a.next_attempt_at, a.created_at
       FROM webhook_attempts a
      WHERE a.endpoint_id = ANY($1::text[]) AND ($2::bigint IS NULL OR a.delivery_id = $2::bigint) AND ($3::text IS NULL OR a.outcome = $3)
        AND ($4::text IS NULL OR a.event_type = $4) AND ($5::timestamptz IS NULL OR a.created_at >= $5)
        AND ($6::timestamptz IS NULL OR a.created_at < $6) AND ($7::bigint IS NULL OR a.id < $7::bigint)
      ORDER BY a.id DESC LIMIT $8::int`,
    [filter.endpointIds, filter.deliveryId ?? null, filter.outcome ?? null, filter.eventType ?? null, filter.since ?? null, filter.until ?? null, filter.before ?? null, filter.limit],
  );
  return rows.map((row) => ({
    id: row.id,
    deliveryId: row.delivery_id,
    endpointId: row.endpoint_id,
    eventId: row.event_id,
    eventType: row.event_type,
    attempt: row.attempt,
    trigger: row.trigger,
    outcome: row.outcome,
    status: row.status,
    durationMs: row.duration_ms,
    error: row.error,
    responseExcerpt: row.response_excerpt,
    nextAttemptAt: row.next_attempt_at,
    createdAt: row.created_at,
  }));
}

/** Figures of one endpoint's queue: pending deliveries, the oldest one's age, dead letters. */
export async function endpointBacklog(db: Queryable): Promise<{ endpointId: string; pending: number; oldestPendingSeconds: number | null; dead: number }[]> {
  const { rows } = await db.query<{ endpoint_id: string; pending: number; oldest: number | null; dead: number }>(
    `SELECT endpoint_id, count(*) FILTER (WHERE state = 'pending')::int AS pending,
            extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending'))::float8 AS oldest,
            count(*) FILTER (WHERE state = 'dead')::int AS dead
       FROM webhook_deliveries GROUP BY endpoint_id`,
  );
  return rows.map((row) => ({ endpointId: row.endpoint_id, pending: row.pending, oldestPendingSeconds: row.oldest, dead: row.dead }));
}

/** Deletes finished deliveries and attempts older than the retention, a batch at a time; returns how many deliveries went. */
export async function pruneWebhookLog(db: Queryable, olderThanMs: number, batchSize: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM webhook_deliveries WHERE id IN (
       SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND finished_at < now() - $1::double precision * interval '1 millisecond' LIMIT $2::int)`,
    [olderThanMs, batchSize],
  );
  await db.query(
    `DELETE FROM webhook_attempts WHERE id IN (
       SELECT id FROM webhook_attempts WHERE created_at < now() - $1::double precision * interval '1 millisecond' LIMIT $2::int)`,
    [olderThanMs, batchSize],
  );
  return rowCount;
}
