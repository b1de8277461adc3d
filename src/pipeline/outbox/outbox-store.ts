import { randomBytes } from 'node:crypto';
import type { Database } from '../../db/database.ts';

/**
 * What the platform database keeps of the outboxes (migration 0005): each environment's outbox
 * (its database and table) and the figures the workers polling it last reported. One function
 * per statement.
 */
export type OutboxRequestedMode = 'AUTO' | 'POLL';

export interface OutboxSourceRecord {
  readonly app: string;
  readonly env: string;
  /** Stable while database and table stay the same: event ids derive from it and the row id. */
  readonly outboxId: string;
  readonly databaseUrl: string;
  readonly table: string;
  readonly requestedMode: OutboxRequestedMode;
  readonly updatedAt: Date;
}

export interface OutboxReport {
  /** The mode in effect. */
  readonly mode: 'POLL';
  /** Null until the outbox's database answered once. */
  readonly pending: number | null;
  readonly oldestPendingSeconds: number | null;
  readonly dead: number | null;
  readonly routedPerSecond: number;
  readonly lastError: string | null;
}

export interface OutboxSourceView extends OutboxSourceRecord {
  /** Absent until a worker polled the outbox once. */
  readonly report: (OutboxReport & { readonly reportedAt: Date }) | undefined;
}

type Row = {
  app: string;
  env: string;
  outbox_id: string;
  database_url: string;
  table_name: string;
  requested_mode: OutboxRequestedMode;
  updated_at: Date;
  mode: 'POLL' | null;
  pending: number | null;
  oldest_pending_seconds: number | null;
  dead: number | null;
  routed_per_second: number | null;
  last_error: string | null;
  reported_at: Date | null;
};

const COLUMNS =
  'app, env, outbox_id, database_url, table_name, requested_mode, updated_at, mode, pending, oldest_pending_seconds, dead, routed_per_second, last_error, reported_at';

function viewOf(row: Row): OutboxSourceView {
  const { reported_at: reportedAt } = row;
  return {
    app: row.app,
    env: row.env,
    outboxId: row.outbox_id,
    databaseUrl: row.database_url,
    table: row.table_name,
    requestedMode: row.requested_mode,
    updatedAt: row.updated_at,
    report:
      reportedAt === null
        ? undefined
        : {
            mode: row.mode ?? 'POLL',
            pending: row.pending,
            oldestPendingSeconds: row.oldest_pending_seconds,
            dead: row.dead,
            routedPerSecond: row.routed_per_second ?? 0,
            lastError: row.last_error,
            reportedAt,
          },
  };
}

export async function listOutboxSources(db: Database): Promise<OutboxSourceView[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM outbox_sources ORDER BY app, env`);
  return rows.map(viewOf);
}

export async function getOutboxSource(db: Database, app: string, env: string): Promise<OutboxSourceView | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM outbox_sources WHERE app = $1 AND env = $2`, [app, env]);
  return rows[0] && viewOf(rows[0]);
}

/** Saves the environment's outbox; a changed database or table starts without a report. */
export async function saveOutboxSource(db: Database, source: Omit<OutboxSourceRecord, 'updatedAt' | 'outboxId'>): Promise<OutboxSourceView> {
  const { rows } = await db.query<Row>(
    `INSERT INTO outbox_sources (app, env, outbox_id, database_url, table_name, requested_mode) VALUES ($1, $2, $6, $3, $4, $5)
     ON CONFLICT (app, env) DO UPDATE SET
       outbox_id = CASE WHEN outbox_sources.database_url = excluded.database_url AND outbox_sources.table_name = excluded.table_name
                        THEN outbox_sources.outbox_id ELSE excluded.outbox_id END,
       database_url = excluded.database_url, table_name = excluded.table_name,
       requested_mode = excluded.requested_mode, updated_at = now(), mode = NULL, pending = NULL,
       oldest_pending_seconds = NULL, dead = NULL, routed_per_second = NULL, last_error = NULL, reported_at = NULL
     RETURNING ${COLUMNS}`,
    [source.app, source.env, source.databaseUrl, source.table, source.requestedMode, `obx_${randomBytes(12).toString('base64url')}`],
  );
  return viewOf(rows[0]!);
}

export async function removeOutboxSource(db: Database, app: string, env: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM outbox_sources WHERE app = $1 AND env = $2', [app, env]);
  return rowCount > 0;
}

/** A worker's figures for the outbox it polls (kept only while the source still points where it polled). */
export async function saveOutboxReport(db: Database, source: Pick<OutboxSourceRecord, 'app' | 'env' | 'outboxId'>, report: OutboxReport): Promise<void> {
  await db.query(
    `UPDATE outbox_sources SET mode = $4, pending = $5, oldest_pending_seconds = $6, dead = $7, routed_per_second = $8,
       last_error = $9, reported_at = now()
     WHERE app = $1 AND env = $2 AND outbox_id = $3`,
    [source.app, source.env, source.outboxId, report.mode, report.pending, report.oldestPendingSeconds, report.dead, report.routedPerSecond, report.lastError],
  );
}
