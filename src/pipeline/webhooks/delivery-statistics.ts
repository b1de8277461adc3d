/**
 * Keeps the planner's statistics of `webhook_deliveries` current while the table grows faster
 * than autovacuum looks (once a minute at best, and never in the embedded database).
 *
 * Why: the delivery statements are planned from statistics taken when the table looked different
 * — a young table, or one of delivered rows with few pending. When a backlog then builds up (a
 * burst of events, a receiver down), the plans cached for the pool's prepared statements go on
 * treating a table of tens of thousands of pending rows as a few hundred: a hash join over a
 * sequential scan of the whole table for each batch of attempts recorded. Measured on the
 * benchmark's overload step (10,000 deliveries/s asked): Postgres spent 280–450 µs per delivery
 * and ~3,000 deliveries/s got through; with fresh statistics, ~90 µs and ~7,000/s.
 *
 * So the inserters (the routing tap, the admin API) say how many deliveries they stored, and once
 * that is a fair part of what the table held at the last look (`fraction`, at least `minRows`), the
 * table is analyzed — which also makes every connection plan its cached statements again. Only
 * inserts count: a table that grew is what the plans went wrong on; a backlog worked off (rows
 * moved on, none added) leaves plans that still fit, and analyzing there would only cost. An
 * ANALYZE reads a sample of 3,000 rows and leaves the bodies out (migrations/0013: 15–20 ms of
 * Postgres at 40,000 rows, 220 ms with the default sample). One ANALYZE at a time, at most one per
 * `minIntervalMs`; a failed one is logged, and its inserts count toward the next.
 */
import type { Queryable } from '../../db/database.ts';
import { componentLogger, type Logger } from '../../logger.ts';

export interface DeliveryStatistics {
  /** `rows` deliveries were inserted into `webhook_deliveries`. */
  inserted(rows: number): void;
  /** Waits for an ANALYZE under way. Idempotent; later inserts start none. */
  close(): Promise<void>;
}

export interface DeliveryStatisticsOptions {
  readonly db: Queryable;
  readonly logger: Logger;
  /** Inserts that always call for a new look, however small the table. @default 1000 */
  readonly minRows?: number;
  /** Part of the table's rows (as last analyzed) that, once inserted, calls for a new look. @default 0.2 */
  readonly fraction?: number;
  /** Least time between two looks, in ms. @default 1000 */
  readonly minIntervalMs?: number;
  /** @default performance.now */
  readonly now?: () => number;
}

export function createDeliveryStatistics(options: DeliveryStatisticsOptions): DeliveryStatistics {
  const minRows = options.minRows ?? 1_000;
  const fraction = options.fraction ?? 0.2;
  const minIntervalMs = options.minIntervalMs ?? 1_000;
  const now = options.now ?? (() => performance.now());
  const logger = componentLogger(options.logger, 'webhooks');
  /** Rows inserted since the last look started. */
  let inserts = 0;
  /** The table's rows as of the last look (0 before the first). */
  let tableRows = 0;
  let lastLook = Number.NEGATIVE_INFINITY;
  let looking: Promise<void> | undefined;
  let closed = false;

  const look = async () => {
    const started = now();
    await options.db.query('ANALYZE webhook_deliveries');
    const { rows } = await options.db.query<{ rows: number }>(`SELECT greatest(reltuples, 0)::float8 AS rows FROM pg_class WHERE oid = 'webhook_deliveries'::regclass`);
    tableRows = rows[0]?.rows ?? 0;
    logger.debug({ rows: tableRows, ms: Math.round(now() - started) }, 'webhook delivery statistics refreshed');
  };

  return {
    inserted(rows) {
      inserts += rows;
      if (closed || looking !== undefined || inserts < Math.max(minRows, fraction * tableRows) || now() - lastLook < minIntervalMs) return;
      const counted = inserts;
      inserts = 0;
      lastLook = now();
      looking = look()
        .catch((error: unknown) => {
          inserts += counted;
          logger.warn({ err: error }, 'webhook delivery statistics not refreshed; tried again on later inserts');
        })
        .finally(() => (looking = undefined));
    },
    async close() {
      closed = true;
      await looking;
    },
  };
}
