/**
 * WAL mode's statements on an outbox table (`cdc/wal-outboxes.ts`): the reader routes inserts from
 * the WAL; these catch up from the table and clean it up. The rest of the table's contract, and the
 * column expressions shared with the poller's claim, are in `outbox-sql.ts`.
 */
import { CREATED_MS, PAYLOAD_COLUMNS, PAYLOAD_SIZE, readSetAside, unreadPayloadBytes, type OutboxTable, type Queryable } from './outbox-sql.ts';
import type { OutboxRow } from './outbox-row.ts';

/**
 * Opens the catch-up transaction: REPEATABLE READ, so every read sees the one snapshot returned
 * here, with the WAL insert position read after it was taken (every transaction the snapshot sees
 * committed before that position).
 */
export async function beginCatchUp(db: Queryable, limits: WaitLimits): Promise<{ snapshot: string; lsn: string }> {
  await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await limitWaits(db, limits);
  const result = await db.query<{ snapshot: string; lsn: string }>(
    'SELECT pg_current_snapshot()::text AS snapshot, pg_current_wal_insert_lsn()::text AS lsn',
  );
  return result.rows[0]!;
}

/** Server-side limits of a transaction's waits, in ms (`outbox-pool.ts`). */
export interface WaitLimits {
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number;
}

/**
 * Bounds the waits of the transaction under way on the server (SET LOCAL): for connections that are
 * not the outbox pool's, which sets them for the session (the WAL reader's, `cdc/wal-outboxes.ts`).
 */
export async function limitWaits(db: Queryable, limits: WaitLimits): Promise<void> {
  await db.query("SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)", [
    `${limits.lockTimeoutMs}ms`,
    `${limits.statementTimeoutMs}ms`,
  ]);
}

/**
 * Pending rows after `afterId`, in id order (keyset pages), locked: a row another session holds
 * fails the page (on `lock_timeout`) before any of it is routed, not the DELETE after.
 */
export async function pendingAfter(db: Queryable, table: OutboxTable, afterId: string, limit: number, maxPayloadBytes: number): Promise<OutboxRow[]> {
  const result = await db.query<OutboxRow>(
    `SELECT o.id::text AS id, ${CREATED_MS}, o.topic, o.event_type, ${PAYLOAD_COLUMNS}, o.tenant, o.entity, o.table_name, o.operation
       FROM ${table.sql} AS o ${PAYLOAD_SIZE('$3')}
      WHERE o.processed_at IS NULL AND o.id > $1::bigint
      ORDER BY o.id
      LIMIT $2::int
      FOR UPDATE OF o`,
    [afterId, limit, unreadPayloadBytes(maxPayloadBytes)],
  );
  // A payload over the page's margin is read on its own, in this snapshot, and judged by its JSON.
  return readSetAside(db, table, result.rows, maxPayloadBytes);
}

/** Deletes rows by id (WAL mode: a routed row's insert stays in the WAL; the table need not keep it). */
export async function deleteRows(db: Queryable, table: OutboxTable, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query(`DELETE FROM ${table.sql} WHERE id = ANY($1::bigint[])`, [ids]);
}
