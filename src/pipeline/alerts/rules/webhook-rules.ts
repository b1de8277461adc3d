/**
 * Webhook rules, computed cluster-wide from the platform database (every worker process adds its
 * figures there, so they are the same whoever evaluates):
 * - `webhook.failure_rate`: an endpoint's failed attempts over its attempts in the window —
 *   above the critical ratio critical, above the warning ratio warning (the seed's 50 % / 20 %),
 *   good at or under 90 % of the warning ratio. Below the minimum number of attempts a ratio is
 *   too little to fire on, but enough to resolve on when it is good: an endpoint that recovered
 *   at low traffic (its retries had inflated the attempts of its outage past the minimum) would
 *   otherwise stay firing for as long as its traffic stays low; anything else is unknown. Read from the attempts' tallies
 *   (`attempt-tallies.ts`: per endpoint and 10-second span, added every few seconds), not from
 *   the attempt log: the window is covered to the span (up to 10 s more), and a worker's last
 *   seconds of attempts count once it has added them;
 * - `webhook.dead_letters`: more deliveries dead-lettered in the window than allowed (warning),
 *   through an index of dead letters only (migrations/0021).
 * Each reads the endpoints in trouble in the window (a failed attempt, a dead letter) and those
 * whose alert or streaks it must move (`RuleContext.watched`), not every endpoint of the cluster:
 * what it reads grows with the trouble, and no endpoint is left out for sorting after thousands of
 * healthy ones. An endpoint read neither way has nothing to fire or resolve. Past
 * MAX_READINGS_PER_RULE, the next reading goes on after the last endpoint read.
 * An endpoint deleted is gone for both: its alerts resolve.
 */
import type { Queryable } from '../../../db/database.ts';
import {
  createReadingCursor,
  endpointOfSubject,
  judgeLimit,
  MAX_READINGS_PER_RULE,
  resolveLevel,
  type AlertRule,
  type Reading,
  type RuleSubject,
  type Verdict,
} from '../alert-rule.ts';

export interface FailureRateThresholds {
  /** Attempts needed in the window before a ratio means anything. @default 20 */
  readonly minSamples: number;
  /** Failed/attempted above this is critical (0–1). @default 0.5 */
  readonly criticalRatio: number;
  /** Failed/attempted above this is a warning (0–1). @default 0.2 */
  readonly warningRatio: number;
}

/** Judges one endpoint's attempts: pure. */
export function judgeFailureRate(figures: { readonly attempts: number; readonly failures: number }, thresholds: FailureRateThresholds): Verdict {
  const { attempts, failures } = figures;
  if (attempts <= 0) return { kind: 'unknown', reason: 'no attempts in the window' };
  const ratio = failures / attempts;
  if (attempts < thresholds.minSamples) {
    // Too few to fire on; a good ratio still resolves (it cannot raise anything).
    if (ratio <= resolveLevel(thresholds.warningRatio)) return { kind: 'good', value: ratio };
    return { kind: 'unknown', reason: `${attempts} attempts in the window; ${thresholds.minSamples} needed` };
  }
  const message = `${Math.round(ratio * 1000) / 10} % of ${attempts} webhook attempts failed`;
  if (ratio > thresholds.criticalRatio) return { kind: 'bad', severity: 'critical', value: ratio, message };
  return judgeLimit(ratio, thresholds.warningRatio, { severity: 'warning', message });
}

type EndpointRow = { endpoint_id: string; app: string; env: string; tenant: string | null };

function scopeOfRow(row: EndpointRow) {
  return { app: row.app, env: row.env, tenant: row.tenant ?? undefined };
}

/** The endpoints of a rule's watched subjects. */
const endpointsOf = (subjects: readonly RuleSubject[]): string[] => subjects.flatMap((subject) => endpointOfSubject(subject.subject) ?? []);

/** Of `subjects`, those whose endpoint was deleted (endpoints are deleted outright, not marked). */
async function deletedEndpoints(db: Queryable, subjects: readonly RuleSubject[]): Promise<RuleSubject[]> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM webhook_endpoints WHERE id = ANY($1::text[])', [endpointsOf(subjects)]);
  const existing = new Set(rows.map((row) => row.id));
  return subjects.filter((subject) => {
    const id = endpointOfSubject(subject.subject);
    return id !== undefined && !existing.has(id);
  });
}

export function webhookFailureRateRule(db: Queryable, thresholds: FailureRateThresholds): AlertRule {
  const cursor = createReadingCursor();
  return {
    name: 'webhook.failure_rate',
    description: 'Share of failed webhook attempts per endpoint over the window',
    async read({ windowMs, watched }) {
      // Every outcome but `delivered` failed (an error, a timeout, 4xx/5xx, 410, 429). The spans
      // that overlap the window: a span starts 10 s before its last attempts were added. Without
      // a failure an endpoint is good at best, which matters only to one with streaks or an alert.
      const { rows } = await db.query<EndpointRow & { attempts: number; failures: number }>(
        `WITH tallied AS (
           SELECT endpoint_id, sum(attempts)::int AS attempts, sum(failures)::int AS failures FROM webhook_attempt_tallies
           WHERE span_start > now() - make_interval(secs => $1) - interval '10 seconds' AND endpoint_id > $3
           GROUP BY endpoint_id
         )
         SELECT t.endpoint_id, e.app, e.env, e.tenant, t.attempts, t.failures
         FROM tallied t JOIN webhook_endpoints e ON e.id = t.endpoint_id
         WHERE t.failures > 0 OR t.endpoint_id = ANY($2::text[])
         ORDER BY t.endpoint_id LIMIT $4`,
        [windowMs / 1000, endpointsOf(watched), cursor.after, MAX_READINGS_PER_RULE],
      );
      cursor.advance(rows.map((row) => row.endpoint_id));
      return rows.map((row): Reading => ({ subject: `endpoint:${row.endpoint_id}`, scope: scopeOfRow(row), verdict: judgeFailureRate(row, thresholds) }));
    },
    // An endpoint without attempts in the window is read as nothing (unknown); a deleted one is gone.
    gone: (subjects) => deletedEndpoints(db, subjects),
  };
}

/** Judges an endpoint's new dead letters: pure. More than `allowed` is a warning; at or under 90 % of it, good. */
export function judgeDeadLetters(dead: number, allowed: number): Verdict {
  return judgeLimit(dead, allowed, { severity: 'warning', message: `${dead} webhook deliveries dead-lettered in the window` });
}

export function webhookDeadLettersRule(db: Queryable, options: { readonly allowed: number }): AlertRule {
  const cursor = createReadingCursor();
  return {
    name: 'webhook.dead_letters',
    description: 'Webhook deliveries dead-lettered per endpoint over the window',
    async read({ windowMs, watched }) {
      // The endpoints with dead letters in the window, and the watched ones: one whose dead letters
      // stopped reads good (0) and its alert can resolve.
      const { rows } = await db.query<EndpointRow & { dead: number }>(
        `WITH dead AS (
           SELECT endpoint_id, count(*)::int AS dead FROM webhook_deliveries
           WHERE state = 'dead' AND finished_at > now() - make_interval(secs => $1) GROUP BY endpoint_id
         )
         SELECT e.id AS endpoint_id, e.app, e.env, e.tenant, coalesce(d.dead, 0) AS dead
         FROM (SELECT endpoint_id FROM dead UNION SELECT unnest($2::text[])) AS s (endpoint_id)
         JOIN webhook_endpoints e ON e.id = s.endpoint_id LEFT JOIN dead d ON d.endpoint_id = s.endpoint_id
         WHERE s.endpoint_id > $3
         ORDER BY s.endpoint_id LIMIT $4`,
        [windowMs / 1000, endpointsOf(watched), cursor.after, MAX_READINGS_PER_RULE],
      );
      cursor.advance(rows.map((row) => row.endpoint_id));
      return rows.map((row): Reading => ({ subject: `endpoint:${row.endpoint_id}`, scope: scopeOfRow(row), verdict: judgeDeadLetters(row.dead, options.allowed) }));
    },
    gone: (subjects) => deletedEndpoints(db, subjects),
  };
}
