/**
 * The other Tributary slots of a database: every logical slot whose name is one of Tributary's for
 * it (`replication-names.ts`: the database's base name `tributary_<20 hex>`, alone — a deployment
 * from before 0036 — or with a deployment's `_<12 hex>`), but the reader's own.
 *
 * Each deployment reads on a slot of its own, so a deployment stopped for good (a staging copy
 * pointed at production once, the old cluster after a migration) leaves its slot behind. An
 * inactive slot pins its `restart_lsn`: the source server keeps all WAL from there on, without
 * bound, and that deployment's own `cdc.retained_wal` alert went with it. The reader still running
 * measures them (`WalReader.inspect`) so that its deployment's alert names them.
 *
 * Postgres 15 does not say since when a slot is inactive (`inactive_since` is 17's): not reported.
 */
import type pg from 'pg';

/** A slot of the database named as Tributary names them, not the reader's own. */
export interface OtherSlot {
  readonly slotName: string;
  /** Someone streams it now (another deployment's reader, or whoever took it). */
  readonly active: boolean;
  /** `pg_current_wal_lsn() - restart_lsn`, in bytes; null for a slot Postgres invalidated (it keeps no WAL). */
  readonly retainedWalBytes: number | null;
}

export interface OtherSlots {
  /** Most retaining first, `MAX_OTHER_SLOTS` at most (a bound on the metric's labels and on the status). */
  readonly slots: readonly OtherSlot[];
  /** How many more there are, retaining less than those listed. */
  readonly leftOut: number;
}

/** Other slots listed per database at most. */
const MAX_OTHER_SLOTS = 20;

const DEPLOYMENT_PART = /^_[0-9a-f]{12}$/;

/** `name` is one of Tributary's slot names of the database whose base name is `base` (with or without a deployment's part). */
export function isTributarySlotOf(base: string, name: string): boolean {
  return name === base || (name.startsWith(base) && DEPLOYMENT_PART.test(name.slice(base.length)));
}

/**
 * The database's other Tributary slots (`base`: its base name), one statement on `client`.
 * `base` is `tributary_` and hex digits (`defaultReplicationNames`): nothing in it is special in a pattern.
 */
export async function readOtherSlots(client: pg.ClientBase, base: string, ownSlot: string): Promise<OtherSlots> {
  const { rows } = await client.query<{ slot_name: string; active: boolean; retained: string | null; total: number }>(
    `SELECT slot_name, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS retained, (count(*) OVER ())::int AS total
       FROM pg_replication_slots
      WHERE database = current_database() AND slot_type = 'logical' AND slot_name <> $2
        AND slot_name ~ ('^' || $1 || '(_[0-9a-f]{12})?$')
      ORDER BY restart_lsn ASC NULLS LAST, slot_name
      LIMIT $3`,
    [base, ownSlot, MAX_OTHER_SLOTS],
  );
  return {
    slots: rows.map((row) => ({ slotName: row.slot_name, active: row.active, retainedWalBytes: row.retained === null ? null : Number(row.retained) })),
    leftOut: Math.max(0, (rows[0]?.total ?? 0) - rows.length),
  };
}
