/**
 * `outbox.backlog_age`: an environment's outbox has rows waiting longer than allowed (warning).
 * Read from the figures the outbox's reader (a poller, or the CDC leader in WAL mode) last measured
 * in `outbox_sources`: a reader that cannot measure them keeps only its error there, so
 * `reported_at` is when they were measured. Figures measured within the window are judged; older
 * ones are unknown (nobody is reading the outbox to say), unless the reader said why it cannot
 * read it: an outbox unreadable for longer than the window is bad (nobody routes its rows). An
 * outbox source removed (its row deleted) is gone: its alert resolves.
 */
import type { Queryable } from '../../../db/database.ts';
import { scopeKey } from '../../scope.ts';
import { judgeLimit, MAX_READINGS_PER_RULE, type AlertRule, type Reading, type Verdict } from '../alert-rule.ts';

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
export function judgeOutbox(row: OutboxFiguresRow, maxSeconds: number): Verdict {
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
    async gone(subjects) {
      const { rows } = await db.query<{ app: string; env: string }>(
        'SELECT app, env FROM outbox_sources WHERE (app, env) IN (SELECT * FROM unnest($1::text[], $2::text[]))',
        [subjects.map((subject) => subject.scope.app), subjects.map((subject) => subject.scope.env)],
      );
      const existing = new Set(rows.map((row) => scopeKey({ ...row, tenant: undefined })));
      return subjects.filter((subject) => !existing.has(scopeKey({ ...subject.scope, tenant: undefined })));
    },
  };
}
