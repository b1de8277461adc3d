/**
 * What alerting keeps in the platform database (migrations 0009, 0022): the alerts, each change
 * until it is announced and the hysteresis streaks behind them. One function per SQL statement.
 * The evaluator's lease is `evaluator-lease.ts`'s.
 */
import { createHash } from 'node:crypto';
import type { Queryable } from '../../db/database.ts';
import { scopeKey, type Scope } from '../scope.ts';
import type { Streaks } from './alert-engine.ts';
import type { AlertState, Severity } from './alert-rule.ts';

export interface AlertRecord {
  /** `alrt_…`, derived from rule, subject and scope: the same alert on every instance, for ever. */
  readonly id: string;
  readonly rule: string;
  readonly subject: string;
  readonly scope: Scope;
  readonly severity: Severity;
  readonly state: AlertState;
  /** Times it fired, re-openings included. */
  readonly count: number;
  readonly firstFiredAt: Date;
  readonly lastFiredAt: Date;
  readonly acknowledgedAt: Date | null;
  readonly acknowledgedBy: string | null;
  readonly resolvedAt: Date | null;
  readonly lastValue: number | null;
  readonly message: string;
  /** The last change (every change is also kept in `alert_changes` until it is announced). */
  readonly lastChange: AlertChange;
  /** Bumped by every change. */
  readonly version: number;
  readonly updatedAt: Date;
}

export type AlertChange = 'fired' | 'escalated' | 'acknowledged' | 'resolved';

/** The key every alert and its streaks share. */
export interface AlertKey {
  readonly rule: string;
  readonly subject: string;
  readonly scope: Scope;
}

export interface TrackerRecord extends AlertKey {
  readonly id: string;
  readonly streaks: Streaks;
}

/** A tracker as stored: with how long ago its streaks last changed (by the database's clock). */
export interface StoredTracker extends TrackerRecord {
  readonly idleMs: number;
}

export function alertIdOf(key: AlertKey): string {
  return `alrt_${createHash('sha256').update(`${key.rule}|${key.subject}|${scopeKey(key.scope)}`).digest('base64url').slice(0, 22)}`;
}

type AlertRow = {
  id: string;
  rule: string;
  subject: string;
  app: string;
  env: string;
  tenant: string | null;
  severity: Severity;
  state: AlertState;
  count: number;
  first_fired_at: Date;
  last_fired_at: Date;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  resolved_at: Date | null;
  last_value: number | null;
  message: string;
  last_change: AlertChange;
  version: number;
  updated_at: Date;
};

/** An alert's columns but its id: what a change in `alert_changes` keeps of the alert it left. */
const STATE_COLUMNS =
  'rule, subject, app, env, tenant, severity, state, count, first_fired_at, last_fired_at, acknowledged_at, acknowledged_by, resolved_at, last_value, message, last_change, version, updated_at';

const ALERT_COLUMNS = `id, ${STATE_COLUMNS}`;

/**
 * `write` (a statement on `alerts` that returns ALERT_COLUMNS of the row it changed) with that change
 * appended to `alert_changes` in the same statement: the row keeps only its last change, so a change
 * overwritten before it was announced would never be (a fire, then a resolve while routing failed).
 */
const withChange = (write: string): string =>
  `WITH changed AS (${write}),
     kept AS (INSERT INTO alert_changes (alert_id, ${STATE_COLUMNS}) SELECT ${ALERT_COLUMNS} FROM changed)
   SELECT ${ALERT_COLUMNS} FROM changed`;

function toAlert(row: AlertRow): AlertRecord {
  return {
    id: row.id,
    rule: row.rule,
    subject: row.subject,
    scope: { app: row.app, env: row.env, tenant: row.tenant ?? undefined },
    severity: row.severity,
    state: row.state,
    count: row.count,
    firstFiredAt: row.first_fired_at,
    lastFiredAt: row.last_fired_at,
    acknowledgedAt: row.acknowledged_at,
    acknowledgedBy: row.acknowledged_by,
    resolvedAt: row.resolved_at,
    lastValue: row.last_value,
    message: row.message,
    lastChange: row.last_change,
    version: row.version,
    updatedAt: row.updated_at,
  };
}

/** Every open (firing or acknowledged) alert, at most `limit`. */
export async function listOpenAlerts(db: Queryable, limit: number): Promise<AlertRecord[]> {
  const { rows } = await db.query<AlertRow>(`SELECT ${ALERT_COLUMNS} FROM alerts WHERE state <> 'resolved' ORDER BY id LIMIT $1`, [limit]);
  return rows.map(toAlert);
}

export async function getAlert(db: Queryable, id: string): Promise<AlertRecord | undefined> {
  const { rows } = await db.query<AlertRow>(`SELECT ${ALERT_COLUMNS} FROM alerts WHERE id = $1`, [id]);
  return rows[0] && toAlert(rows[0]);
}

export interface FireInput extends AlertKey {
  readonly severity: Severity;
  readonly value: number;
  readonly message: string;
}

/**
 * Opens the alert: inserts it, or re-opens its resolved row as firing with `count` + 1 (one row
 * per key: a flapping subject is one alert). Undefined when it is open already (nothing changes).
 */
export async function fireAlert(db: Queryable, input: FireInput): Promise<AlertRecord | undefined> {
  const { rows } = await db.query<AlertRow>(
    withChange(`INSERT INTO alerts (id, rule, subject, app, env, tenant, severity, state, last_value, message)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'firing', $8, $9)
     ON CONFLICT (id) DO UPDATE SET state = 'firing', severity = excluded.severity, count = alerts.count + 1,
       last_fired_at = now(), acknowledged_at = NULL, acknowledged_by = NULL, resolved_at = NULL,
       last_value = excluded.last_value, message = excluded.message, last_change = 'fired', version = alerts.version + 1, updated_at = now()
     WHERE alerts.state = 'resolved'
     RETURNING ${ALERT_COLUMNS}`),
    [alertIdOf(input), input.rule, input.subject, input.scope.app, input.scope.env, input.scope.tenant ?? null, input.severity, input.value, input.message],
  );
  return rows[0] && toAlert(rows[0]);
}

/** Raises an open alert's severity; undefined when it is not open. */
export async function escalateAlert(db: Queryable, id: string, severity: Severity, value: number, message: string): Promise<AlertRecord | undefined> {
  const { rows } = await db.query<AlertRow>(
    withChange(`UPDATE alerts SET severity = $2, last_value = $3, message = $4, last_change = 'escalated', version = alerts.version + 1, updated_at = now()
     WHERE id = $1 AND state <> 'resolved' RETURNING ${ALERT_COLUMNS}`),
    [id, severity, value, message],
  );
  return rows[0] && toAlert(rows[0]);
}

/**
 * Resolves an open alert; undefined when it is not open. `value` null keeps the last figure;
 * `message` replaces the alert's: the evaluator always says why it resolved (the good figure, or
 * its subject gone), so its `system.alerts` event and the API do not show the figure it fired on.
 */
export async function resolveAlert(db: Queryable, id: string, value: number | null, message?: string): Promise<AlertRecord | undefined> {
  const { rows } = await db.query<AlertRow>(
    withChange(`UPDATE alerts SET state = 'resolved', resolved_at = now(), last_value = coalesce($2, last_value), message = coalesce($3, message),
       last_change = 'resolved', version = alerts.version + 1, updated_at = now()
     WHERE id = $1 AND state <> 'resolved' RETURNING ${ALERT_COLUMNS}`),
    [id, value, message ?? null],
  );
  return rows[0] && toAlert(rows[0]);
}

/** An open alert's figure and message as its last bad verdict says. */
export interface AlertRefresh {
  readonly id: string;
  readonly value: number;
  readonly message: string;
}

/**
 * Writes open alerts' figures and messages as they are now, one statement; not a change (no
 * version, no `alert_changes` row: nothing announced), and a row already saying so is not written.
 */
export async function refreshAlerts(db: Queryable, refreshes: readonly AlertRefresh[]): Promise<void> {
  if (refreshes.length === 0) return;
  await db.query(
    `UPDATE alerts a SET last_value = r.value, message = r.message
       FROM unnest($1::text[], $2::float8[], $3::text[]) AS r (id, value, message)
      WHERE a.id = r.id AND a.state <> 'resolved' AND (a.last_value IS DISTINCT FROM r.value OR a.message IS DISTINCT FROM r.message)`,
    [refreshes.map((r) => r.id), refreshes.map((r) => r.value), refreshes.map((r) => r.message)],
  );
}

/** Acknowledges a firing alert; undefined when it is not firing (unknown, acknowledged or resolved). */
export async function acknowledgeAlert(db: Queryable, id: string, by: string): Promise<AlertRecord | undefined> {
  const { rows } = await db.query<AlertRow>(
    withChange(`UPDATE alerts SET state = 'acknowledged', acknowledged_at = now(), acknowledged_by = $2, last_change = 'acknowledged',
       version = version + 1, updated_at = now()
     WHERE id = $1 AND state = 'firing' RETURNING ${ALERT_COLUMNS}`),
    [id, by],
  );
  return rows[0] && toAlert(rows[0]);
}

export interface AlertFilter {
  readonly app: string;
  readonly env: string;
  /** Only this tenant's alerts; undefined: every alert of the environment. */
  readonly tenant: string | undefined;
  readonly states: readonly AlertState[] | undefined;
  readonly severities: readonly Severity[] | undefined;
  /** Strictly after this position in the listing (newest fired first). */
  readonly after: AlertPosition | undefined;
  readonly limit: number;
}

/**
 * Where an alert was in the listing when it was read: its last firing and its id. A page resumes
 * after the position, not after the alert, which moves to the top when it fires again.
 */
export interface AlertPosition {
  /** `last_fired_at` in UTC to the microsecond, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (a Date keeps milliseconds only). */
  readonly lastFiredAt: string;
  readonly id: string;
}

/** An environment's alerts, the most recently fired first, each with its position. */
export async function listAlerts(db: Queryable, filter: AlertFilter): Promise<{ alert: AlertRecord; position: AlertPosition }[]> {
  const { rows } = await db.query<AlertRow & { position: string }>(
    `SELECT ${ALERT_COLUMNS}, to_char(last_fired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS position FROM alerts
     WHERE app = $1 AND env = $2 AND ($3::text IS NULL OR tenant = $3)
       AND ($4::text[] IS NULL OR state = ANY($4)) AND ($5::text[] IS NULL OR severity = ANY($5))
       AND ($6::timestamptz IS NULL OR (last_fired_at, id) < ($6::timestamptz, $7::text))
     ORDER BY last_fired_at DESC, id DESC LIMIT $8`,
    [
      filter.app,
      filter.env,
      filter.tenant ?? null,
      filter.states ?? null,
      filter.severities ?? null,
      filter.after?.lastFiredAt ?? null,
      filter.after?.id ?? null,
      filter.limit,
    ],
  );
  return rows.map((row) => ({ alert: toAlert(row), position: { lastFiredAt: row.position, id: row.id } }));
}

/** A change not announced yet: the alert as that change left it (`lastChange` is the change). */
export interface PendingChange {
  /** Its place in the order changes were written (one alert's changes in the order they were made). */
  readonly seq: string;
  readonly alert: AlertRecord;
}

/** Changes whose event has not been routed yet, in the order they were written, at most `limit`. */
export async function listPendingChanges(db: Queryable, limit: number): Promise<PendingChange[]> {
  const { rows } = await db.query<AlertRow & { seq: string }>(
    `SELECT seq::text AS seq, alert_id AS id, ${STATE_COLUMNS} FROM alert_changes ORDER BY seq LIMIT $1`,
    [limit],
  );
  return rows.map((row) => ({ seq: row.seq, alert: toAlert(row) }));
}

/** Deletes changes once their events are routed. */
export async function deleteAnnouncedChanges(db: Queryable, seqs: readonly string[]): Promise<void> {
  if (seqs.length === 0) return;
  await db.query('DELETE FROM alert_changes WHERE seq = ANY($1::bigint[])', [seqs]);
}

/**
 * Open alerts (firing or acknowledged) by rule, severity and state, cluster-wide:
 * `tributary_alerts_open`, and `tributary_alerts_firing` (its firing ones). Acknowledged ones are
 * counted because acknowledging is not a fix: a Prometheus rule on firing ones alone resolved in
 * Alertmanager as soon as someone acknowledged, and never saw an acknowledged warning escalate.
 */
export async function openCounts(db: Queryable): Promise<{ rule: string; severity: Severity; state: Exclude<AlertState, 'resolved'>; count: number }[]> {
  const { rows } = await db.query<{ rule: string; severity: Severity; state: Exclude<AlertState, 'resolved'>; count: number }>(
    `SELECT rule, severity, state, count(*)::int AS count FROM alerts WHERE state <> 'resolved' GROUP BY rule, severity, state ORDER BY rule, severity, state`,
  );
  return rows;
}

/**
 * Resolved alerts resolved more than `olderThanMs` ago, in id order after `after`, at most
 * `limit`: the ones retention may delete (`alert-retention.ts`).
 */
export async function listLongResolved(db: Queryable, olderThanMs: number, after: string, limit: number): Promise<(AlertKey & { id: string })[]> {
  const { rows } = await db.query<{ id: string; rule: string; subject: string; app: string; env: string; tenant: string | null }>(
    `SELECT id, rule, subject, app, env, tenant FROM alerts
     WHERE state = 'resolved' AND resolved_at < now() - make_interval(secs => $1) AND id > $2 ORDER BY id LIMIT $3`,
    [olderThanMs / 1000, after, limit],
  );
  return rows.map((row) => ({ id: row.id, rule: row.rule, subject: row.subject, scope: { app: row.app, env: row.env, tenant: row.tenant ?? undefined } }));
}

/** Deletes the alerts `ids` that are still resolved since more than `olderThanMs` (not fired again meanwhile); returns how many. */
export async function deleteLongResolved(db: Queryable, ids: readonly string[], olderThanMs: number): Promise<number> {
  if (ids.length === 0) return 0;
  const { rowCount } = await db.query(
    `DELETE FROM alerts WHERE id = ANY($1::text[]) AND state = 'resolved' AND resolved_at < now() - make_interval(secs => $2)`,
    [ids, olderThanMs / 1000],
  );
  return rowCount;
}

type TrackerRow = { id: string; rule: string; subject: string; app: string; env: string; tenant: string | null; bad_streak: number; critical_streak: number; good_streak: number };

/**
 * Every kept streak, at most `limit`. `updated_at` is when its streaks last changed: the evaluator
 * writes a tracker only when they do (`saveTrackers`), so it tells how old a bad streak is.
 */
export async function listTrackers(db: Queryable, limit: number): Promise<StoredTracker[]> {
  const { rows } = await db.query<TrackerRow & { idle_ms: number }>(
    `SELECT id, rule, subject, app, env, tenant, bad_streak, critical_streak, good_streak,
            (extract(epoch FROM now() - updated_at) * 1000)::float8 AS idle_ms
     FROM alert_trackers ORDER BY id LIMIT $1`,
    [limit],
  );
  return rows.map((row) => ({
    id: row.id,
    rule: row.rule,
    subject: row.subject,
    scope: { app: row.app, env: row.env, tenant: row.tenant ?? undefined },
    streaks: { bad: row.bad_streak, critical: row.critical_streak, good: row.good_streak },
    idleMs: Math.max(0, row.idle_ms),
  }));
}

/** Writes `keep` (streaks that changed: `updated_at` says when) and deletes the trackers `drop` names: one statement. */
export async function saveTrackers(db: Queryable, keep: readonly TrackerRecord[], drop: readonly string[]): Promise<void> {
  if (keep.length === 0 && drop.length === 0) return;
  await db.query(
    `WITH dropped AS (DELETE FROM alert_trackers WHERE id = ANY($10::text[]))
     INSERT INTO alert_trackers (id, rule, subject, app, env, tenant, bad_streak, critical_streak, good_streak)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::int[], $9::int[])
     ON CONFLICT (id) DO UPDATE SET bad_streak = excluded.bad_streak, critical_streak = excluded.critical_streak,
       good_streak = excluded.good_streak, updated_at = now()`,
    [
      keep.map((t) => t.id),
      keep.map((t) => t.rule),
      keep.map((t) => t.subject),
      keep.map((t) => t.scope.app),
      keep.map((t) => t.scope.env),
      keep.map((t) => t.scope.tenant ?? null),
      keep.map((t) => t.streaks.bad),
      keep.map((t) => t.streaks.critical),
      keep.map((t) => t.streaks.good),
      drop,
    ],
  );
}
