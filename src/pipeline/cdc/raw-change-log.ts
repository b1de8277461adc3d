/**
 * The raw changes CDC keeps in the platform database (`cdc_events`, migration 0003): the rows a
 * reader received, appended in batches (`raw-change-writer.ts`) and deleted after the retention
 * period (`pruneExpiredRawChanges`, by the CDC service's housekeeping).
 */
import type { Database } from '../../db/database.ts';
import type { RowChange } from './row-change.ts';

export interface RawChangeRow {
  readonly source: string;
  readonly commitLsn: string;
  readonly xid: number;
  readonly change: RowChange;
}

export interface RawChangeLog {
  appendRawChanges(rows: readonly RawChangeRow[]): Promise<void>;
  /** Deletes raw changes received before `before`, at most `limit`; returns how many. */
  pruneRawChanges(before: Date, limit: number): Promise<number>;
}

export function createRawChangeLog(db: Database): RawChangeLog {
  return {
    async appendRawChanges(rows) {
      if (rows.length === 0) return;
      // One statement per batch: arrays unnested into rows.
      await db.query(
        `INSERT INTO cdc_events (source, lsn, commit_lsn, xid, table_name, operation, new_row, old_row)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::jsonb[], $8::jsonb[])`,
        [
          rows.map((row) => row.source),
          rows.map((row) => row.change.lsn),
          rows.map((row) => row.commitLsn),
          rows.map((row) => row.xid),
          rows.map((row) => `${row.change.table.schema}.${row.change.table.name}`),
          rows.map((row) => row.change.operation),
          rows.map((row) => (row.change.new === undefined ? null : JSON.stringify(row.change.new, jsonSafe))),
          rows.map((row) => (row.change.old === undefined ? null : JSON.stringify(row.change.old, jsonSafe))),
        ],
      );
    },

    async pruneRawChanges(before, limit) {
      const { rowCount } = await db.query('DELETE FROM cdc_events WHERE id IN (SELECT id FROM cdc_events WHERE received_at < $1 LIMIT $2)', [before, limit]);
      return rowCount;
    },
  };
}

/**
 * Deletes the raw changes received before `before`, `batch` rows per statement, until a statement
 * deletes fewer (none left) or after `batches` statements (a bounded pass: what is left waits for
 * the next). Resolves with how many were deleted.
 */
export async function pruneExpiredRawChanges(store: Pick<RawChangeLog, 'pruneRawChanges'>, before: Date, limits: { batch: number; batches: number }): Promise<number> {
  let total = 0;
  for (let statement = 0; statement < limits.batches; statement += 1) {
    const deleted = await store.pruneRawChanges(before, limits.batch);
    total += deleted;
    if (deleted < limits.batch) break;
  }
  return total;
}

/** Column values as JSON: bigints as text, byte arrays as hex. */
export function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString('hex')}`;
  return value;
}
