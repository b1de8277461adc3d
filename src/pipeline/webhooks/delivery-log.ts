/**
 * The webhook delivery log (migration 0007) as admins read it — deliveries and their attempts,
 * filtered and paged newest first — its per-endpoint figures, and its pruning past the retention.
 * The delivery engine's own statements are in `delivery-store.ts`.
 */
import type { Database, Queryable } from '../../db/database.ts';
import type { LoggedOutcome } from './attempt-outcome.ts';
import { DELIVERY_COLUMNS, deliveryOf, type Delivery, type DeliveryRow, type DeliveryState, type DeliveryTrigger } from './delivery-store.ts';

export interface AttemptRecord {
  readonly id: string;
  readonly deliveryId: string;
  readonly endpointId: string;
  readonly eventId: string;
  readonly eventType: string;
  /**
   * Which of the delivery's attempts it was, from 1. A `cut` one is not counted: it carries the
   * number of the attempt it would have been, and the next attempt carries that number again.
   */
  readonly attempt: number;
  /** The delivery's trigger for its first attempt; `retry` for the ones after. */
  readonly trigger: DeliveryTrigger | 'retry';
  /** `dead`: a failure that dead-lettered the delivery. `cut` is no failure of the receiver's (see `LoggedOutcome`). */
  readonly outcome: LoggedOutcome;
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
  /** One event's entries ("did evt_X reach this endpoint?"): through the event id indexes (migration 0035). */
  readonly eventId?: string | undefined;
  readonly since?: Date | undefined;
  readonly until?: Date | undefined;
  /** Keyset pagination: entries with a smaller id. */
  readonly before?: string | undefined;
  readonly limit: number;
}

export interface DeliveryFilter extends LogFilter {
  readonly state?: DeliveryState | undefined;
}

/**
 * One event's deliveries, through indexes that cost the delivery path nothing: an initial
 * delivery by its endpoint and event (the unique index routing relies on), a replay's, a
 * redelivery's or a test's by the event (migration 0035: an index on those alone).
 */
const EVENT_DELIVERIES = `AND ((d.trigger = 'initial' AND d.endpoint_id = ANY($1::text[]) AND d.event_id = $8::text)
          OR (d.trigger <> 'initial' AND d.event_id = $8::text))`;

/** Newest first. */
export async function listDeliveries(db: Queryable, filter: DeliveryFilter): Promise<Delivery[]> {
  const { rows } = await db.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d
      WHERE d.endpoint_id = ANY($1::text[]) AND ($2::text IS NULL OR d.state = $2) AND ($3::text IS NULL OR d.event_type = $3)
        AND ($4::timestamptz IS NULL OR d.event_time >= $4) AND ($5::timestamptz IS NULL OR d.event_time < $5)
        AND ($6::bigint IS NULL OR d.id < $6::bigint) ${filter.eventId === undefined ? '' : EVENT_DELIVERIES}
      ORDER BY d.id DESC LIMIT $7::int`,
    [
      filter.endpointIds, filter.state ?? null, filter.eventType ?? null, filter.since ?? null, filter.until ?? null, filter.before ?? null, filter.limit,
      ...(filter.eventId === undefined ? [] : [filter.eventId]),
    ],
  );
  return rows.map(deliveryOf);
}

/**
 * Of `eventIds`, the events the endpoint has a delivery of that is not dead (pending or delivered)
 * with an id above `after`, each with the largest such id. A replay of failed deliveries skips an
 * event whose latest dead delivery is below that — redelivered since, or about to be — and still
 * replays one whose latest delivery is dead, whatever came before it (a delivered copy, then a dead one).
 *
 * One statement over the replay's candidates (at most a replay's worth of events), reading the
 * endpoint's deliveries from `after` (the oldest candidate's id) on through the endpoint index —
 * never the other endpoints' nor a scan of the table. The row comparison is what only that index
 * answers: with `d.id > $3` alone the planner went through the primary key instead, over every
 * endpoint's deliveries since. Measured at 1,000,000 deliveries (1.3 GB) to 10 endpoints, 10,000
 * dead candidates from mid-table: 55,000 of the endpoint's rows, 0.5 s (the primary key: 500,000
 * rows, 0.75 s); to 100 endpoints, 7,400 rows, 9 ms.
 */
export async function laterLiveDeliveries(db: Queryable, endpointId: string, eventIds: readonly string[], after: string): Promise<Map<string, string>> {
  if (eventIds.length === 0) return new Map();
  const { rows } = await db.query<{ event_id: string; id: string }>(
    `SELECT d.event_id, max(d.id)::text AS id FROM webhook_deliveries d
      WHERE d.endpoint_id = $1 AND (d.endpoint_id, d.id) > ($1, $3::bigint) AND d.event_id = ANY($2::text[]) AND d.state <> 'dead'
      GROUP BY d.event_id`,
    [endpointId, eventIds, after],
  );
  return new Map(rows.map((row) => [row.event_id, row.id]));
}

export interface AttemptFilter extends LogFilter {
  readonly deliveryId?: string | undefined;
  readonly outcome?: LoggedOutcome | undefined;
}

type AttemptRow = {
  id: string;
  delivery_id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  attempt: number;
  trigger: AttemptRecord['trigger'];
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
        AND ($6::timestamptz IS NULL OR a.created_at < $6) AND ($7::bigint IS NULL OR a.id < $7::bigint) AND ($9::text IS NULL OR a.event_id = $9)
      ORDER BY a.id DESC LIMIT $8::int`,
    [filter.endpointIds, filter.deliveryId ?? null, filter.outcome ?? null, filter.eventType ?? null, filter.since ?? null, filter.until ?? null, filter.before ?? null, filter.limit, filter.eventId ?? null],
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

/** One endpoint's queue: its pending deliveries and the oldest one's age (null when none is pending). */
export interface EndpointBacklog {
  readonly endpointId: string;
  /** The endpoint's environment: an operator reading the metrics can tell whose backlog it is. */
  readonly app: string;
  readonly env: string;
  readonly pending: number;
  readonly oldestPendingSeconds: number | null;
}

/**
 * Every endpoint's backlog, read from its pending deliveries only: the finished ones kept for the
 * retention (a million rows in a few days at a few deliveries a second) are never looked at.
 * Measured at 1,000,000 finished deliveries and 100 pending: a scan of the whole table (1.1 GB)
 * took 290–310 ms, every few seconds in every worker process; the 100 through the lane index,
 * 0.16 ms. Endpoints are few (rows an admin adds): each is listed, pending or not.
 */
export async function endpointBacklog(db: Pick<Database, 'transaction'>): Promise<EndpointBacklog[]> {
  return db.transaction(async (tx) => {
    // The lane index holds exactly the pending rows, and is the one way in that costs what is
    // pending. Statistics taken while most of the table was pending (a burst, a receiver down) are
    // kept after the backlog is worked off — the inserters analyze only as the table grows
    // (delivery-statistics.ts) — and with them the planner chose a scan of the whole table again
    // (290 ms at 1,000,000 rows, against 1–3 ms through the index; test/integration/delivery-log
    // .test.ts reads the plan).
    await tx.query('SET LOCAL enable_seqscan = off');
    // A plain index scan: it marks the entries of rows finished since the last vacuum as dead, and
    // the next run skips them; a bitmap scan visits their rows again each time.
    await tx.query('SET LOCAL enable_bitmapscan = off');
    // Every endpoint, so one whose backlog was worked off reads 0, not nothing.
    const { rows } = await tx.query<{ endpoint_id: string; app: string; env: string; pending: number; oldest: number | null }>(
      `SELECT e.id AS endpoint_id, e.app, e.env, coalesce(p.pending, 0)::int AS pending, extract(epoch FROM now() - p.oldest)::float8 AS oldest
         FROM webhook_endpoints e
         LEFT JOIN (SELECT d.endpoint_id, count(*) AS pending, min(d.created_at) AS oldest
                      FROM webhook_deliveries d WHERE d.state = 'pending' GROUP BY d.endpoint_id) p ON p.endpoint_id = e.id
        ORDER BY e.id`,
    );
    return rows.map((row) => ({ endpointId: row.endpoint_id, app: row.app, env: row.env, pending: row.pending, oldestPendingSeconds: row.oldest }));
  });
}

export interface PruneOptions {
  /** Rows of each table deleted by one statement. */
  readonly batchSize: number;
  /** No batch starts after the pass has run this long, in ms. */
  readonly budgetMs: number;
  /** Aborted: no batch starts after the one under way. */
  readonly signal?: AbortSignal | undefined;
  /** @default performance.now */
  readonly now?: () => number;
}

const PRUNE_DELIVERIES = `DELETE FROM webhook_deliveries WHERE id IN (
  SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND finished_at < now() - $1::double precision * interval '1 millisecond'
   ORDER BY finished_at LIMIT $2::int FOR UPDATE SKIP LOCKED)`;

const PRUNE_ATTEMPTS = `DELETE FROM webhook_attempts WHERE id IN (
  SELECT id FROM webhook_attempts WHERE created_at < now() - $1::double precision * interval '1 millisecond'
   ORDER BY created_at LIMIT $2::int FOR UPDATE SKIP LOCKED)`;

/**
 * Deletes finished deliveries and attempts older than the retention, a batch of each at a time,
 * until a batch comes back short (nothing older is left) or the budget is spent; returns how many
 * of each went. A single batch per pass keeps up with 200 deliveries/s per process (a batch of
 * 1,000 every 5 s): at any steady rate above that, the log would grow without end.
 *
 * Each batch is its own statement, so its locks are held briefly. The oldest rows go first,
 * through the indexes on finished_at (finished rows only) and created_at, never a scan of the
 * table. Rows another process's batch holds are skipped, not waited for: every worker prunes, and
 * at once they share the work instead of queueing on the same rows.
 */
export async function pruneWebhookLog(db: Queryable, olderThanMs: number, options: PruneOptions): Promise<{ deliveries: number; attempts: number }> {
  const now = options.now ?? (() => performance.now());
  const started = now();
  const pruned = { deliveries: 0, attempts: 0 };
  let deliveriesLeft = true;
  let attemptsLeft = true;
  do {
    if (deliveriesLeft) {
      const { rowCount } = await db.query(PRUNE_DELIVERIES, [olderThanMs, options.batchSize]);
      pruned.deliveries += rowCount;
      deliveriesLeft = rowCount === options.batchSize;
    }
    if (attemptsLeft) {
      const { rowCount } = await db.query(PRUNE_ATTEMPTS, [olderThanMs, options.batchSize]);
      pruned.attempts += rowCount;
      attemptsLeft = rowCount === options.batchSize;
    }
  } while ((deliveriesLeft || attemptsLeft) && now() - started < options.budgetMs && options.signal?.aborted !== true);
  return pruned;
}
