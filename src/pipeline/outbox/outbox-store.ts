import { randomBytes } from 'node:crypto';
import type { Database } from '../../db/database.ts';
import { addMinuteCounts, OUTBOX_DEAD_COUNTS } from '../../db/minute-counts.ts';
import { badUserInput } from '../../errors.ts';

/**
 * What the platform database keeps of the outboxes (migrations 0005, 0006, 0026): each environment's
 * outbox (its database, table and mode), the figures its reader last reported, and the routing
 * rate of every process reading it. One function per statement.
 */
export type OutboxRequestedMode = 'AUTO' | 'POLL' | 'WAL';

/** How an outbox is read: chosen when it is set (AUTO resolves to one of these). */
export type OutboxReadMode = 'POLL' | 'WAL';

export interface OutboxSourceRecord {
  readonly app: string;
  readonly env: string;
  /** Stable while database and table stay the same (a mode change keeps it): event ids derive from it and the row id. */
  readonly outboxId: string;
  readonly databaseUrl: string;
  readonly table: string;
  /** The table the URL reaches (`outboxIdentity`); null when saved by an earlier version, which kept none. */
  readonly identity: string | null;
  readonly requestedMode: OutboxRequestedMode;
  readonly readMode: OutboxReadMode;
  /** Rows without a tenant are set aside as dead. */
  readonly requireTenant: boolean;
  readonly updatedAt: Date;
}

export interface OutboxReport {
  /** Null until the outbox's database answered once. */
  readonly pending: number | null;
  readonly oldestPendingSeconds: number | null;
  readonly dead: number | null;
  readonly lastError: string | null;
}

/** What a reader measured just now: the figures, and the reader's last error (a poll that failed). */
export interface OutboxMeasurement {
  readonly pending: number;
  readonly oldestPendingSeconds: number | null;
  readonly dead: number;
  readonly lastError: string | null;
}

/** Rows set aside as dead, by reason (`dead_reason`). */
export type DeadRowCounts = ReadonlyMap<string, number>;

/**
 * The rows a reader set aside as dead and not yet added to the platform database
 * (`recordOutboxDeadRows`). They stay counted here until a write of them succeeds: a write that
 * fails, or a report that gives up on its figures, loses none (the alert would never fire).
 */
export interface DeadRowTally {
  /** Counts a row set aside as dead. */
  add(reason: string): void;
  /** A copy of what is counted and not written yet; empty when none. */
  unwritten(): DeadRowCounts;
  /** Subtracts counts once written: those counted since `unwritten()` stay. */
  written(counts: DeadRowCounts): void;
}

export function createDeadRowTally(): DeadRowTally {
  const counts = new Map<string, number>();
  return {
    add(reason) {
      counts.set(reason, (counts.get(reason) ?? 0) + 1);
    },
    unwritten: () => new Map(counts),
    written(writtenCounts) {
      for (const [reason, rows] of writtenCounts) {
        const left = (counts.get(reason) ?? 0) - rows;
        if (left > 0) counts.set(reason, left);
        else counts.delete(reason);
      }
    },
  };
}

export interface OutboxSourceView extends OutboxSourceRecord {
  /**
   * Absent until a reader reported once. `reportedAt` is when the figures were measured (null:
   * never), not when the reader last wrote: a reader that cannot measure writes its error alone.
   */
  readonly report: (OutboxReport & { readonly reportedAt: Date | null; readonly routedPerSecond: number; readonly stale: boolean }) | undefined;
}

/** A rate older than this no longer counts (its process stopped or lost the outbox), in seconds. */
const RATE_FRESH_SECONDS = 15;

/**
 * Figures measured longer ago than this are stale (six report intervals at the default 5 s), in seconds: no reader
 * measured them since — every workers process down, or the outbox's database unreadable. Compared
 * with the database's clock, which wrote `reported_at`.
 */
export const OUTBOX_FIGURES_STALE_SECONDS = 30;

type Row = {
  app: string;
  env: string;
  outbox_id: string;
  database_url: string;
  table_name: string;
  source_identity: string | null;
  requested_mode: OutboxRequestedMode;
  read_mode: OutboxReadMode;
  require_tenant: boolean;
  updated_at: Date;
  pending: number | null;
  oldest_pending_seconds: number | null;
  dead: number | null;
  last_error: string | null;
  reported_at: Date | null;
  routed_per_second: number | null;
  stale: boolean;
};

const COLUMNS = `s.app, s.env, s.outbox_id, s.database_url, s.table_name, s.source_identity, s.requested_mode, s.read_mode, s.require_tenant, s.updated_at,
  s.pending, s.oldest_pending_seconds, s.dead, s.last_error, s.reported_at,
  (SELECT sum(r.routed_per_second) FROM outbox_rates r
    WHERE r.outbox_id = s.outbox_id AND r.reported_at > now() - interval '${RATE_FRESH_SECONDS} seconds')::float8 AS routed_per_second,
  (s.reported_at IS NULL OR s.reported_at < now() - interval '${OUTBOX_FIGURES_STALE_SECONDS} seconds') AS stale`;

function viewOf(row: Row): OutboxSourceView {
  const { reported_at: reportedAt } = row;
  return {
    app: row.app,
    env: row.env,
    outboxId: row.outbox_id,
    databaseUrl: row.database_url,
    table: row.table_name,
    identity: row.source_identity,
    requestedMode: row.requested_mode,
    readMode: row.read_mode,
    requireTenant: row.require_tenant,
    updatedAt: row.updated_at,
    report:
      reportedAt === null && row.last_error === null
        ? undefined
        : {
            pending: row.pending,
            oldestPendingSeconds: row.oldest_pending_seconds,
            dead: row.dead,
            routedPerSecond: row.routed_per_second ?? 0,
            lastError: row.last_error,
            reportedAt,
            stale: row.stale,
          },
  };
}

export async function listOutboxSources(db: Database): Promise<OutboxSourceView[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM outbox_sources s ORDER BY s.app, s.env`);
  return rows.map(viewOf);
}

export async function getOutboxSource(db: Database, app: string, env: string): Promise<OutboxSourceView | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM outbox_sources s WHERE s.app = $1 AND s.env = $2`, [app, env]);
  return rows[0] && viewOf(rows[0]);
}

export interface OutboxSourceInput extends Omit<OutboxSourceRecord, 'updatedAt' | 'outboxId' | 'identity'> {
  /** The table the URL reaches (`outboxIdentity`). */
  readonly identity: string;
  /**
   * For an outbox saved by an earlier version (no identity): the URL it must still hold, with the
   * same table name, to keep its id — one judged to reach the same database (`sameDatabaseLocation`).
   * Checked in the statement, so a change saved meanwhile by another call is not taken for it.
   * @default null (a new id)
   */
  readonly legacyUrl?: string | null;
}

/**
 * Saves the environment's outbox. The outbox id is kept while the URL reaches the same table
 * (whatever its text), new otherwise; any change starts without a report.
 *
 * One table per environment: a table another environment's outbox reads (the same identity) is
 * refused, BAD_USER_INPUT on the field `table` — each outbox has its own readers, and each row
 * would be routed by one of them only, to its environment. Checked under a lock on the identity,
 * so two saves at once cannot both pass. A unique index would not do: databases where two
 * environments already share a table could not build it (the migration would fail); theirs is
 * refused at its next save. Outboxes saved by an earlier version (no identity) are not compared.
 */
export async function saveOutboxSource(db: Database, source: OutboxSourceInput): Promise<OutboxSourceView> {
  await db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(hashtext('tributary.outbox.sources'), hashtext($1))`, [source.identity]);
    // The same app's first: it may be named; another app's may not (its admin is someone else).
    const { rows } = await tx.query<{ app: string; env: string }>(
      `SELECT app, env FROM outbox_sources WHERE source_identity = $1 AND NOT (app = $2 AND env = $3)
        ORDER BY (app = $2) DESC, env LIMIT 1`,
      [source.identity, source.app, source.env],
    );
    const other = rows[0];
    if (other) throw sharedTableError(source, other);
    await tx.query(
      `INSERT INTO outbox_sources (app, env, outbox_id, database_url, table_name, requested_mode, read_mode, require_tenant, source_identity)
       VALUES ($1, $2, $6, $3, $4, $5, $7, $8, $9)
       ON CONFLICT (app, env) DO UPDATE SET
         outbox_id = CASE WHEN outbox_sources.source_identity = excluded.source_identity
                            OR (outbox_sources.source_identity IS NULL AND outbox_sources.database_url = $10 AND outbox_sources.table_name = excluded.table_name)
                          THEN outbox_sources.outbox_id ELSE excluded.outbox_id END,
         database_url = excluded.database_url, table_name = excluded.table_name, source_identity = excluded.source_identity,
         requested_mode = excluded.requested_mode, read_mode = excluded.read_mode, require_tenant = excluded.require_tenant, updated_at = now(),
         pending = NULL, oldest_pending_seconds = NULL, dead = NULL, last_error = NULL, reported_at = NULL`,
      [
        source.app,
        source.env,
        source.databaseUrl,
        source.table,
        source.requestedMode,
        `obx_${randomBytes(12).toString('base64url')}`,
        source.readMode,
        source.requireTenant,
        source.identity,
        source.legacyUrl ?? null,
      ],
    );
  });
  return (await getOutboxSource(db, source.app, source.env))!;
}

/** The table is `other`'s outbox already: named when it is the same app's environment, not otherwise. */
function sharedTableError(source: Pick<OutboxSourceInput, 'app' | 'table'>, other: { app: string; env: string }): Error {
  const reader = other.app === source.app ? `the outbox of environment "${other.env}" of this app` : "another environment's outbox";
  return badUserInput(
    'table',
    `The table ${source.table} in that database is read by ${reader}: two outboxes on one table would each route only some of its rows. ` +
      'Use one table per environment: create another (npm run outbox:sql -- schema.name prints its DDL, or pass createTable: true) and set it as table',
    { reason: 'OUTBOX_TABLE_SHARED' },
  );
}

export async function removeOutboxSource(db: Database, app: string, env: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM outbox_sources WHERE app = $1 AND env = $2', [app, env]);
  return rowCount > 0;
}

/**
 * The figures the reader just measured of the outbox it reads, and its last error (kept only while
 * the source still points where it read); `reported_at` is when they were measured.
 */
export async function saveOutboxReport(db: Database, source: Pick<OutboxSourceRecord, 'app' | 'env' | 'outboxId'>, report: OutboxMeasurement): Promise<void> {
  await db.query(
    `UPDATE outbox_sources SET pending = $4, oldest_pending_seconds = $5, dead = $6, last_error = $7, reported_at = now()
     WHERE app = $1 AND env = $2 AND outbox_id = $3`,
    [source.app, source.env, source.outboxId, report.pending, report.oldestPendingSeconds, report.dead, report.lastError],
  );
}

/**
 * Adds rows set aside as dead to the outbox's counts of this minute (migration 0031), which the
 * retention sweep of the outbox's table does not touch: `outbox.dead_rows` reads them. The
 * outbox's expired counts are deleted on the way (`addMinuteCounts`).
 */
export async function recordOutboxDeadRows(db: Database, outboxId: string, deadRows: DeadRowCounts): Promise<void> {
  await addMinuteCounts(db, OUTBOX_DEAD_COUNTS, outboxId, [...deadRows].map(([reason, rows]) => ({ labels: [reason], rows })));
}

/** Writes what `tally` holds (`recordOutboxDeadRows`), then subtracts it: on failure the counts stay for the next write. */
export async function writeDeadRowTally(db: Database, outboxId: string, tally: Pick<DeadRowTally, 'unwritten' | 'written'>): Promise<void> {
  const deadRows = tally.unwritten();
  if (deadRows.size === 0) return;
  await recordOutboxDeadRows(db, outboxId, deadRows);
  tally.written(deadRows);
}

/**
 * The reader could not measure the outbox: its error is saved, and the figures stay as they were
 * last measured, with their time. Written as fresh, they would hide a backlog that grows while
 * nobody can read it (`outbox.backlog_age`) and overwrite another reader's real figures.
 */
export async function saveOutboxError(db: Database, source: Pick<OutboxSourceRecord, 'app' | 'env' | 'outboxId'>, lastError: string): Promise<void> {
  await db.query('UPDATE outbox_sources SET last_error = $4 WHERE app = $1 AND env = $2 AND outbox_id = $3', [source.app, source.env, source.outboxId, lastError]);
}

/** One process's routing rate for an outbox; the status sums the fresh ones. Stale rates of any outbox are removed on the way. */
export async function saveOutboxRate(db: Database, outboxId: string, reporter: string, routedPerSecond: number): Promise<void> {
  await db.query(
    `INSERT INTO outbox_rates (outbox_id, reporter, routed_per_second) VALUES ($1, $2, $3)
     ON CONFLICT (outbox_id, reporter) DO UPDATE SET routed_per_second = excluded.routed_per_second, reported_at = now()`,
    [outboxId, reporter, routedPerSecond],
  );
  await db.query(`DELETE FROM outbox_rates WHERE reported_at < now() - interval '${RATE_FRESH_SECONDS * 4} seconds'`);
}
