/**
 * `outbox.backlog_age`: an environment's outbox has rows waiting longer than allowed (warning).
 * Read from the figures the outbox's reader (a poller, or the CDC leader in WAL mode) last measured
 * in `outbox_sources`: a reader that cannot measure them keeps only its error there, so
 * `reported_at` is when they were measured. Figures measured within the window are judged; older
 * ones are unknown (nobody is reading the outbox to say), unless the reader said why it cannot
 * read it: an outbox unreadable for longer than the window is bad (nobody routes its rows). An
 * outbox source removed (its row deleted) is gone: its alert resolves.
 *
 * `outbox.dead_rows`: rows set aside as dead (never routed: no valid topic, no tenant where one is
 * required, a payload too large…) within the window, over the number allowed (warning). Read from
 * the counts the readers add to `outbox_dead_counts` per minute (migration 0031), not from the
 * table's `dead_reason` rows, which the retention sweep deletes: a sweep does not resolve it, only
 * a window without new dead rows does. Counted by the minute: a row counts for up to a minute past
 * the window. Only the outbox's current table counts (its `outbox_id`).
 */
import type { Queryable } from '../../../db/database.ts';
import { scopeKey } from '../../scope.ts';
import { judgeLimit, MAX_READINGS_PER_RULE, type AlertRule, type GoneSubject, type Reading, type RuleSubject, type Verdict } from '../alert-rule.ts';

/** Judges an outbox's oldest waiting row (null: none waiting; good at or under 90 % of the limit): pure. */
export function judgeBacklogAge(oldestPendingSeconds: number | null, maxSeconds: number): Verdict {
  const age = oldestPendingSeconds ?? 0;
  return judgeLimit(age, maxSeconds, { severity: 'warning', message: `the oldest outbox row has waited ${Math.round(age)} s (limit ${maxSeconds} s)` });
}

/** One outbox's row as the rule reads it (a type, not an interface: a query's row type). */
export type OutboxFiguresRow = {
  /** Null: never measured (a row written by an earlier version while its outbox could not be read). */
  readonly pending: number | null;
  readonly oldest_pending_seconds: number | null;
  readonly last_error: string | null;
  /** Whether the figures were measured within the window. */
  readonly fresh: boolean | null;
  /** Seconds since the figures were measured (or, never measured, since the source was set). */
  readonly unmeasured_seconds: number;
};

/** Judges an outbox's figures, fresh or not, and its reader's error: pure. */
function judgeOutbox(row: OutboxFiguresRow, maxSeconds: number): Verdict {
  if (row.fresh === true) {
    // A figure of age is a measurement; no figure at all is not one: neither good nor bad.
    if (row.oldest_pending_seconds === null && row.pending === null) return { kind: 'unknown', reason: 'the outbox was not measured' };
    return judgeBacklogAge(row.oldest_pending_seconds, maxSeconds);
  }
  if (row.last_error !== null) {
    const seconds = row.unmeasured_seconds;
    return { kind: 'bad', severity: 'warning', value: seconds, message: `the outbox cannot be read (nothing measured for ${Math.round(seconds)} s): ${row.last_error}` };
  }
  return { kind: 'unknown', reason: 'no recent report from its reader' };
}

export function outboxBacklogRule(db: Queryable, options: { readonly maxAgeSeconds: number }): AlertRule {
  return {
    name: 'outbox.backlog_age',
    description: 'Age of the oldest outbox row not routed yet, per outbox',
    async read({ windowMs }) {
      const { rows } = await db.query<OutboxFiguresRow & { app: string; env: string }>(
        `SELECT app, env, pending, oldest_pending_seconds, last_error, reported_at > now() - make_interval(secs => $1) AS fresh,
                extract(epoch FROM now() - coalesce(reported_at, updated_at))::float8 AS unmeasured_seconds
         FROM outbox_sources ORDER BY app, env LIMIT $2`,
        [windowMs / 1000, MAX_READINGS_PER_RULE],
      );
      return rows.map(
        (row): Reading => ({
          subject: `outbox:${row.app}/${row.env}`,
          scope: { app: row.app, env: row.env, tenant: undefined },
          verdict: judgeOutbox(row, options.maxAgeSeconds),
        }),
      );
    },
    gone: (subjects) => removedOutboxes(db, subjects),
  };
}

/** Of `subjects` (`outbox:<app>/<env>`), those whose environment has no outbox source any more. */
async function removedOutboxes(db: Queryable, subjects: readonly RuleSubject[]): Promise<readonly GoneSubject[]> {
  const { rows } = await db.query<{ app: string; env: string }>(
    'SELECT app, env FROM outbox_sources WHERE (app, env) IN (SELECT * FROM unnest($1::text[], $2::text[]))',
    [subjects.map((subject) => subject.scope.app), subjects.map((subject) => subject.scope.env)],
  );
  const existing = new Set(rows.map((row) => scopeKey({ ...row, tenant: undefined })));
  return subjects.filter((subject) => !existing.has(scopeKey({ ...subject.scope, tenant: undefined }))).map((subject) => ({ subject }));
}

/** Judges the rows an outbox set aside as dead in the window, and the most frequent reason (null: none): pure. */
function judgeDeadRows(deadRows: number, topReason: string | null, windowMs: number, allowed: number): Verdict {
  const why = topReason === null ? '' : ` (most often: ${topReason})`;
  return judgeLimit(deadRows, allowed, {
    severity: 'warning',
    message: `${deadRows} outbox ${deadRows === 1 ? 'row was' : 'rows were'} set aside as dead in the last ${Math.round(windowMs / 1000)} s${why}: never routed`,
  });
}

export function outboxDeadRowsRule(db: Queryable, options: { readonly allowed: number }): AlertRule {
  return {
    name: 'outbox.dead_rows',
    description: 'Outbox rows set aside as dead (never routed) within the window, per outbox',
    async read({ windowMs }) {
      // A minute's count covers the minute after its start: one that began up to a minute before the window is in it.
      const { rows } = await db.query<{ app: string; env: string; dead_rows: number; top_reason: string | null }>(
        `WITH counted AS (
           SELECT outbox_id, reason, sum(row_count)::float8 AS row_count FROM outbox_dead_counts
            WHERE minute > now() - make_interval(secs => $1) - interval '1 minute' GROUP BY outbox_id, reason)
         SELECT s.app, s.env, coalesce((SELECT sum(c.row_count) FROM counted c WHERE c.outbox_id = s.outbox_id), 0)::float8 AS dead_rows,
                (SELECT c.reason FROM counted c WHERE c.outbox_id = s.outbox_id ORDER BY c.row_count DESC, c.reason LIMIT 1) AS top_reason
           FROM outbox_sources s ORDER BY s.app, s.env LIMIT $2`,
        [windowMs / 1000, MAX_READINGS_PER_RULE],
      );
      return rows.map(
        (row): Reading => ({
          subject: `outbox:${row.app}/${row.env}`,
          scope: { app: row.app, env: row.env, tenant: undefined },
          verdict: judgeDeadRows(row.dead_rows, row.top_reason, windowMs, options.allowed),
        }),
      );
    },
    gone: (subjects) => removedOutboxes(db, subjects),
  };
}
