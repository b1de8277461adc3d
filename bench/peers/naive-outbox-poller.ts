/**
 * The outbox poller exactly as the seed describes it — the baseline of the `outbox` workload's
 * drain, a peer of `createOutboxPoller` (src/pipeline/outbox/outbox-poller.ts), not a server. One
 * worker, in a loop:
 *
 *   BEGIN
 *   SELECT … FROM outbox WHERE processed_at IS NULL ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED
 *   for each row: route it (one `router.route`), then UPDATE outbox SET processed_at = now() WHERE id = $1
 *   COMMIT
 *
 * at once again after a full batch, otherwise after the interval. It routes into the same router
 * and builds the same events (`outboxEvent`) as the partitioned poller, so the drain compares the
 * two algorithms and nothing else. It does not validate rows (the seed does not): the workload
 * only writes valid ones.
 */
import type pg from 'pg';
import { pause } from '../../src/pipeline/coordination/backoff.ts';
import type { EventOperation } from '../../src/pipeline/events/envelope.ts';
import { isJsonObject } from '../../src/pipeline/events/json.ts';
import { outboxEvent } from '../../src/pipeline/events/outbox-event.ts';
import { outboxTable } from '../../src/pipeline/outbox/outbox-sql.ts';
import type { EventRouter } from '../../src/pipeline/router/event-router.ts';

export interface NaiveOutboxPollerOptions {
  /** The outbox's database; owned by the caller. */
  readonly pool: pg.Pool;
  /** `name` or `schema.name`. */
  readonly table: string;
  /** The outbox's identity: event ids derive from it and the row id, as the real poller's. */
  readonly outboxId: string;
  readonly scope: { readonly app: string; readonly env: string };
  readonly router: EventRouter;
  /** Rows per batch. @default 100 */
  readonly batchSize?: number;
  /** Wait after a batch that was not full, in ms. @default 1000 */
  readonly intervalMs?: number;
  /** Called once per row routed (before its transaction commits, as the real poller counts). */
  readonly onRouted?: (count: number) => void;
  /** Called when the loop stops on an error (the real poller retries; this one gives up). */
  readonly onFailure?: (error: Error) => void;
}

export interface NaiveOutboxPoller {
  start(): void;
  /** Stops after the batch in flight; rejects with what stopped the loop, if anything did. Idempotent. */
  stop(): Promise<void>;
}

interface Row {
  /** bigint, as pg parses it: a string. */
  readonly id: string;
  readonly topic: string;
  readonly event_type: string;
  readonly payload: unknown;
  readonly tenant: string | null;
  readonly entity: string | null;
  readonly table_name: string | null;
  readonly operation: EventOperation | null;
}

export function createNaiveOutboxPoller(options: NaiveOutboxPollerOptions): NaiveOutboxPoller {
  const table = outboxTable(options.table).sql;
  const batchSize = options.batchSize ?? 100;
  const abort = new AbortController();
  let loop: Promise<void> | undefined;
  let failure: Error | undefined;

  /** One batch in one transaction; returns the rows handled. */
  const batch = async (): Promise<number> => {
    const client = await options.pool.connect();
    try {
      await client.query('BEGIN');
      try {
        const { rows } = await client.query<Row>(
          // id stays bigint (pg hands it over as a string): ORDER BY a text alias would sort '10' before '9'.
          `SELECT id, topic, event_type, payload, tenant, entity, table_name, operation
             FROM ${table} WHERE processed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [batchSize],
        );
        for (const row of rows) {
          if (!isJsonObject(row.payload)) throw new Error(`row ${row.id}: payload is not a JSON object`);
          await options.router.route(
            outboxEvent({
              outbox: options.outboxId,
              rowId: row.id,
              topic: row.topic,
              type: row.event_type,
              payload: row.payload,
              scope: { ...options.scope, tenant: row.tenant ?? undefined },
              entity: row.entity ?? undefined,
              table: row.table_name ?? undefined,
              operation: row.operation ?? undefined,
            }),
          );
          await client.query(`UPDATE ${table} SET processed_at = now() WHERE id = $1`, [row.id]);
          options.onRouted?.(1);
        }
        await client.query('COMMIT');
        return rows.length;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    } finally {
      client.release();
    }
  };

  const run = async (): Promise<void> => {
    while (!abort.signal.aborted) {
      const handled = await batch();
      if (handled < batchSize) await pause(options.intervalMs ?? 1000, abort.signal);
    }
  };

  return {
    start() {
      loop ??= run().catch((error: unknown) => {
        failure = error instanceof Error ? error : new Error(String(error));
        options.onFailure?.(failure);
      });
    },
    async stop() {
      abort.abort();
      await loop;
      if (failure) throw failure;
    },
  };
}
