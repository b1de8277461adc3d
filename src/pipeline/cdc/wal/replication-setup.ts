/**
 * What a database needs before the WAL reader can stream from it, checked and created over a
 * normal (non-replication) connection: `wal_level = logical`, a role allowed to replicate, the
 * publication and the `pgoutput` slot. One function per statement; the reader composes them.
 */
import pg from 'pg';
import { ErrorCode, InternalError, SqlState, TributaryError, sqlStateOf } from '../../../errors.ts';
import { normalizeLsn } from './lsn.ts';

/** The publication's statements, in a file of their own. */
export {
  ensurePublication,
  ensurePublicationIncludes,
  publicationCoverage,
  tryPublishViaPartitionRoot,
  type PublicationCoverage,
} from './publication.ts';

/** Postgres' own rule for slot names. */
const SLOT_NAME = /^[a-z0-9_]{1,63}$/;
/**
 * Lower-case plain identifiers only: pgoutput's `publication_names` option is parsed like SQL
 * identifiers (unquoted names are folded to lower case), and the library passes it unquoted.
 */
const PUBLICATION_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function isValidSlotName(name: string): boolean {
  return SLOT_NAME.test(name);
}

export function isValidPublicationName(name: string): boolean {
  return PUBLICATION_NAME.test(name);
}

/** A name the operator configured: a wrong one is MISCONFIGURED (an admin's input is checked before it gets here). */
export function assertSlotName(name: string): void {
  if (!SLOT_NAME.test(name)) {
    throw new TributaryError(
      ErrorCode.MISCONFIGURED,
      `replication slot name "${name}" is invalid: use 1–63 lower-case letters, digits and underscores`,
    );
  }
}

export function assertPublicationName(name: string): void {
  if (!PUBLICATION_NAME.test(name)) {
    throw new TributaryError(
      ErrorCode.MISCONFIGURED,
      `publication name "${name}" is invalid: use a lower-case identifier (letters, digits, underscores; not starting with a digit)`,
    );
  }
}

/** An option the operator set: a wrong value is a misconfiguration, said at start. */
export function assertPositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new TributaryError(ErrorCode.MISCONFIGURED, `${name} must be a positive integer, got ${value}`);
  }
}

/** Fails with what to change when the server or the role cannot do logical replication. */
export async function assertLogicalReplicationAllowed(client: pg.ClientBase): Promise<void> {
  const { rows } = await client.query<{ wal_level: string; db: string; role: string; can_replicate: boolean }>(
    `SELECT current_setting('wal_level') AS wal_level, current_database() AS db, current_user AS role,
            (rolreplication OR rolsuper) AS can_replicate
       FROM pg_roles WHERE rolname = current_user`,
  );
  const row = rows[0];
  if (!row) throw new InternalError('CDC_SETUP', 'could not read the current role from pg_roles');
  if (row.wal_level !== 'logical') {
    throw new TributaryError(
      ErrorCode.MISCONFIGURED,
      `CDC needs wal_level = logical, but the server of database "${row.db}" has wal_level = ${row.wal_level}: ` +
        `run ALTER SYSTEM SET wal_level = logical; as a superuser and restart Postgres`,
      { details: { reason: 'WAL_LEVEL_NOT_LOGICAL', walLevel: row.wal_level } },
    );
  }
  if (!row.can_replicate) {
    throw new TributaryError(
      ErrorCode.MISCONFIGURED,
      `CDC needs a role with the REPLICATION attribute, but role "${row.role}" lacks it: ` +
        `run ALTER ROLE ${pg.escapeIdentifier(row.role)} REPLICATION; as a superuser`,
      { details: { reason: 'ROLE_CANNOT_REPLICATE', role: row.role } },
    );
  }
}

export interface SlotInfo {
  /** Where streaming may start: the slot's confirmed_flush_lsn (or consistent point when new). */
  readonly startLsn: string;
  readonly created: boolean;
  /** Created although the caller expected the slot to exist: changes in between are lost. */
  readonly recreated: boolean;
}

interface SlotRow {
  plugin: string | null;
  slot_type: string;
  database: string | null;
  confirmed_flush_lsn: string | null;
  wal_status: string | null;
  current_db: string;
}

/**
 * Creates the `pgoutput` slot when it is missing or lost (its WAL was removed, e.g. by
 * `max_slot_wal_keep_size`). A slot of the same name for another plugin or database is an error.
 */
export async function ensureSlot(client: pg.ClientBase, name: string, expectExisting: boolean): Promise<SlotInfo> {
  const { rows } = await client.query<SlotRow>(
    // wal_status through to_jsonb: null from a server without it (Postgres 12), as in readSlotUsage.
    `SELECT plugin, slot_type, database, confirmed_flush_lsn::text, to_jsonb(s) ->> 'wal_status' AS wal_status, current_database() AS current_db
       FROM pg_replication_slots s WHERE slot_name = $1`,
    [name],
  );
  const slot = rows[0];
  if (slot) {
    if (slot.slot_type !== 'logical' || slot.plugin !== 'pgoutput' || slot.database !== slot.current_db) {
      throw new TributaryError(
        ErrorCode.MISCONFIGURED,
        `replication slot "${name}" exists but is not a pgoutput slot of database "${slot.current_db}" ` +
          `(type ${slot.slot_type}, plugin ${slot.plugin ?? 'none'}, database ${slot.database ?? 'none'}): choose another slot name`,
      );
    }
    if (slot.wal_status !== 'lost' && slot.confirmed_flush_lsn !== null) {
      return { startLsn: normalizeLsn(slot.confirmed_flush_lsn), created: false, recreated: false };
    }
    await dropSlot(client, name);
    return { startLsn: await createSlot(client, name), created: true, recreated: true };
  }
  return { startLsn: await createSlot(client, name), created: true, recreated: expectExisting };
}

async function createSlot(client: pg.ClientBase, name: string): Promise<string> {
  try {
    const { rows } = await client.query<{ lsn: string }>(
      `SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`,
      [name],
    );
    return normalizeLsn(rows[0]!.lsn);
  } catch (error) {
    if (sqlStateOf(error) === SqlState.DUPLICATE_OBJECT) {
      throw new TributaryError(ErrorCode.UNAVAILABLE, `replication slot "${name}" was created by someone else meanwhile`, {
        cause: error,
      });
    }
    throw error;
  }
}

/** The server process of the client's connection (to cancel its statement from another). */
export async function backendPid(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return rows[0]!.pid;
}

/**
 * The backends whose transactions the statement of backend `pid` waits for: creating a slot waits
 * for every transaction that holds a transaction id when it starts, however long it stays open.
 */
export async function blockingBackends(client: pg.ClientBase, pid: number): Promise<number[]> {
  const { rows } = await client.query<{ pids: number[] }>('SELECT pg_blocking_pids($1) AS pids', [pid]);
  return rows[0]?.pids ?? [];
}

/** Cancels backend `pid`'s statement; a slot it was creating is not created (Postgres drops it on the error). */
export async function cancelBackend(client: pg.ClientBase, pid: number): Promise<void> {
  await client.query('SELECT pg_cancel_backend($1)', [pid]);
}

export async function dropSlot(client: pg.ClientBase, name: string): Promise<void> {
  await client.query('SELECT pg_drop_replication_slot($1)', [name]);
}

export interface SlotUsage {
  /** WAL written since the last acknowledged position (`pg_current_wal_lsn() - confirmed_flush_lsn`), in bytes. */
  readonly lagBytes: number;
  /** WAL the slot keeps from being removed (`pg_current_wal_lsn() - restart_lsn`), in bytes; null once Postgres invalidated the slot (it keeps none). */
  readonly retainedWalBytes: number | null;
  readonly confirmedFlushLsn: string;
  /** null once Postgres invalidated the slot. */
  readonly restartLsn: string | null;
  /**
   * `wal_status`: `reserved` (within `max_wal_size`), `extended` (beyond it, within the WAL kept for
   * slots), `unreserved` (beyond that too: the next checkpoint removes its WAL and the slot is lost)
   * or `lost`; null for a slot that reserves no WAL (not for a logical one), or from a server
   * without the column (Postgres 12).
   */
  readonly walStatus: string | null;
  /**
   * `safe_wal_size`: WAL that can still be written before the slot retains more than
   * `maxSlotWalKeepBytes`, in bytes (negative once `unreserved`); null without that limit (`-1`),
   * once lost, or from a server without the column (Postgres 12).
   */
  readonly safeWalBytes: number | null;
  /**
   * The WAL the server keeps for the slot at most, in bytes — what `safe_wal_size` counts down
   * from: `max_slot_wal_keep_size`, or `wal_keep_size` when larger (Postgres keeps that much
   * whatever the slots); null when `max_slot_wal_keep_size` is `-1` (no limit), or on a server
   * without it (Postgres 12).
   */
  readonly maxSlotWalKeepBytes: number | null;
}

type SlotUsageRow = {
  lag: string;
  retained: string | null;
  confirmed: string;
  restart: string | null;
  wal_status: string | null;
  safe: string | null;
  keep: string | null;
  wal_keep: string | null;
};

/**
 * The slot's lag, retained WAL and how far it is from being invalidated, in one statement;
 * undefined when it does not exist. `wal_status`, `safe_wal_size`, `max_slot_wal_keep_size` and
 * `wal_keep_size` are new in Postgres 13: read through `to_jsonb` and `current_setting(…, true)`, a
 * server without them gives null for those alone, and the lag and retained WAL are still read.
 */
export async function readSlotUsage(client: pg.ClientBase, name: string): Promise<SlotUsage | undefined> {
  const { rows } = await client.query<SlotUsageRow>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::text AS lag,
            pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::text AS retained,
            s.confirmed_flush_lsn::text AS confirmed, s.restart_lsn::text AS restart,
            to_jsonb(s) ->> 'wal_status' AS wal_status, to_jsonb(s) ->> 'safe_wal_size' AS safe,
            pg_size_bytes(current_setting('max_slot_wal_keep_size', true))::text AS keep,
            pg_size_bytes(current_setting('wal_keep_size', true))::text AS wal_keep
       FROM pg_replication_slots s WHERE s.slot_name = $1 AND s.confirmed_flush_lsn IS NOT NULL`,
    [name],
  );
  const row = rows[0];
  if (!row) return undefined;
  const keep = row.keep === null ? -1 : Number(row.keep);
  const walKeep = row.wal_keep === null ? 0 : Number(row.wal_keep);
  return {
    lagBytes: Number(row.lag),
    retainedWalBytes: row.retained === null ? null : Number(row.retained),
    confirmedFlushLsn: normalizeLsn(row.confirmed),
    restartLsn: row.restart === null ? null : normalizeLsn(row.restart),
    walStatus: row.wal_status,
    safeWalBytes: row.safe === null ? null : Number(row.safe),
    // As Postgres computes safe_wal_size (slotfuncs.c): from the larger of the two.
    maxSlotWalKeepBytes: keep < 0 ? null : Math.max(keep, walKeep),
  };
}
