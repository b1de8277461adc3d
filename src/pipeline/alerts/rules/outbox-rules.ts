/**
 * `outbox.backlog_age`: an environment's outbox has rows waiting longer than allowed (warning).
 * Read from what the outbox's reader (a poller, or the CDC leader in WAL mode) last reported in
 * `outbox_sources`; a report older than the window is unknown (nobody is reading it to say). An
 * outbox source removed (its row deleted) is gone: its alert resolves.
 */
import type { Queryable } from '../../../db/database.ts';
import { scopeKey } from '../../scope.ts';
import { MAX_READINGS_PER_RULE, type AlertRule, type Reading, type Verdict } from '../alert-rule.ts';

/** Judges an outbox's oldest waiting row (null: none waiting): pure. */
export function judgeBacklogAge(oldestPendingSeconds: number | null, maxSeconds: number): Verdict {
  const age = oldestPendingSeconds ?? 0;
  if (age > maxSeconds) return { kind: 'bad', severity: 'warning', value: age, message: `the oldest outbox row has waited ${Math.round(age)} s (limit ${maxSeconds} s)` };
  return { kind: 'good', value: age };
}

export function outboxBacklogRule(db: Queryable, options: { readonly maxAgeSeconds: number }): AlertRule {
  return {
    name: 'outbox.backlog_age',
    description: 'Age of the oldest outbox row not routed yet, per outbox',
    async read({ windowMs }) {
      const { rows } = await db.query<{ app: string; env: string; oldest_pending_seconds: number | null; fresh: boolean | null }>(
        `SELECT app, env, oldest_pending_seconds, reported_at > now() - make_interval(secs => $1) AS fresh
         FROM outbox_sources ORDER BY app, env LIMIT $2`,
        [windowMs / 1000, MAX_READINGS_PER_RULE],
      );
      return rows.map(
        (row): Reading => ({
          subject: `outbox:${row.app}/${row.env}`,
          scope: { app: row.app, env: row.env, tenant: undefined },
          verdict: row.fresh === true ? judgeBacklogAge(row.oldest_pending_seconds, options.maxAgeSeconds) : { kind: 'unknown', reason: 'no recent report from its reader' },
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
