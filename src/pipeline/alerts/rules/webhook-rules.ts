/**
 * Webhook rules, computed cluster-wide from the platform database (every worker process adds its
 * figures there, so they are the same whoever evaluates):
 * - `webhook.failure_rate`: an endpoint's failed attempts over its attempts in the window —
 *   above the critical ratio critical, above the warning ratio warning (the seed's 50 % / 20 %),
 *   good at or under 90 % of the warning ratio. Below the minimum number of attempts a ratio is
 *   too little to fire on, but enough to resolve on when it is good: an endpoint that recovered
 *   at low traffic (its retries had inflated the attempts of its outage past the minimum) would
 *   otherwise stay firing for as long as its traffic stays low; anything else is unknown. A
 *   watched endpoint without a single attempt in the window is good (0) when no delivery waits
 *   for it either — nothing is failing, and its traffic may never come back — and unknown while
 *   one waits (retries backing off past the window, followers behind a failing head: as far as
 *   anyone knows it still fails). Read from the attempts' tallies
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
 * An endpoint deleted is gone for both, and so is one disabled (by an admin, or for its receiver's
 * 410): nothing is attempted to it, so nothing can fire or resolve its alerts, which resolve at
 * once ("endpoint:<id> disabled (…)") — they used to stay open, paging, for as long as it stayed
 * disabled. Enabled again, it is read again.
 */
import type { Queryable } from '../../../db/database.ts';
import { ADMIN_DISABLE_REASON } from '../../webhooks/endpoint-store.ts';
import {
  createReadingCursor,
  endpointOfSubject,
  judgeLimit,
  MAX_READINGS_PER_RULE,
  resolveLevel,
  type AlertRule,
  type GoneSubject,
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

/** One endpoint's attempts in the window. */
export interface FailureFigures {
  readonly attempts: number;
  readonly failures: number;
  /** Without attempts: whether deliveries to it are pending (waiting for an attempt); undefined when not known. */
  readonly waiting?: boolean;
}

/** The message of an endpoint good for having had no attempt in the window, and none waiting. */
const NO_ATTEMPTS_NONE_WAITING = 'no webhook attempts in the window, and none waiting';

/** Judges one endpoint's attempts: pure. */
export function judgeFailureRate(figures: FailureFigures, thresholds: FailureRateThresholds): Verdict {
  const { attempts, failures } = figures;
  if (attempts <= 0) {
    // Nothing attempted and nothing to attempt: no failure can be happening.
    if (figures.waiting === false) return { kind: 'good', value: 0, message: NO_ATTEMPTS_NONE_WAITING };
    return { kind: 'unknown', reason: figures.waiting === true ? 'no attempts in the window; deliveries wait for their next attempt' : 'no attempts in the window' };
  }
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

/**
 * Of `subjects`, those whose endpoint was deleted (endpoints are deleted outright, not marked) or
 * is disabled — the latter still exist (`exists`), and say so in their alert's message.
 */
async function goneEndpoints(db: Queryable, subjects: readonly RuleSubject[]): Promise<GoneSubject[]> {
  const { rows } = await db.query<{ id: string; enabled: boolean; disabled_reason: string | null }>(
    'SELECT id, enabled, disabled_reason FROM webhook_endpoints WHERE id = ANY($1::text[])',
    [endpointsOf(subjects)],
  );
  const existing = new Map(rows.map((row) => [row.id, row]));
  return subjects.flatMap((subject): GoneSubject[] => {
    const id = endpointOfSubject(subject.subject);
    if (id === undefined) return [];
    const endpoint = existing.get(id);
    if (endpoint === undefined) return [{ subject }];
    if (endpoint.enabled) return [];
    const why = endpoint.disabled_reason === null ? '' : ` (${endpoint.disabled_reason})`;
    return [{ subject, reason: `${subject.subject} disabled${why}`, exists: true }];
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
      // a failure an endpoint is good at best, which matters only to one with streaks or an alert:
      // those are read with or without attempts, and without any, whether a delivery waits (the
      // lane index holds exactly the pending rows). A disabled endpoint is left unread: gone.
      const { rows } = await db.query<EndpointRow & { attempts: number; failures: number; waiting: boolean }>(
        `WITH tallied AS (
           SELECT endpoint_id, sum(attempts)::int AS attempts, sum(failures)::int AS failures FROM webhook_attempt_tallies
           WHERE span_start > now() - make_interval(secs => $1) - interval '10 seconds' AND endpoint_id > $3
           GROUP BY endpoint_id
         ),
         subjects AS (SELECT endpoint_id FROM tallied WHERE failures > 0 UNION SELECT w.id FROM unnest($2::text[]) AS w (id) WHERE w.id > $3)
         SELECT s.endpoint_id, e.app, e.env, e.tenant, coalesce(t.attempts, 0) AS attempts, coalesce(t.failures, 0) AS failures,
                t.endpoint_id IS NULL AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = s.endpoint_id AND d.state = 'pending') AS waiting
         FROM subjects s JOIN webhook_endpoints e ON e.id = s.endpoint_id AND e.enabled LEFT JOIN tallied t ON t.endpoint_id = s.endpoint_id
         ORDER BY s.endpoint_id LIMIT $4`,
        [windowMs / 1000, endpointsOf(watched), cursor.after, MAX_READINGS_PER_RULE],
      );
      cursor.advance(rows.map((row) => row.endpoint_id));
      return rows.map((row): Reading => ({ subject: `endpoint:${row.endpoint_id}`, scope: scopeOfRow(row), verdict: judgeFailureRate(row, thresholds) }));
    },
    gone: (subjects) => goneEndpoints(db, subjects),
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
      // stopped reads good (0) and its alert can resolve. A disabled endpoint is left unread: gone.
      const { rows } = await db.query<EndpointRow & { dead: number }>(
        `WITH dead AS (
           SELECT endpoint_id, count(*)::int AS dead FROM webhook_deliveries
           WHERE state = 'dead' AND finished_at > now() - make_interval(secs => $1) GROUP BY endpoint_id
         )
         SELECT e.id AS endpoint_id, e.app, e.env, e.tenant, coalesce(d.dead, 0) AS dead
         FROM (SELECT endpoint_id FROM dead UNION SELECT unnest($2::text[])) AS s (endpoint_id)
         JOIN webhook_endpoints e ON e.id = s.endpoint_id AND e.enabled LEFT JOIN dead d ON d.endpoint_id = s.endpoint_id
         WHERE s.endpoint_id > $3
         ORDER BY s.endpoint_id LIMIT $4`,
        [windowMs / 1000, endpointsOf(watched), cursor.after, MAX_READINGS_PER_RULE],
      );
      cursor.advance(rows.map((row) => row.endpoint_id));
      return rows.map((row): Reading => ({ subject: `endpoint:${row.endpoint_id}`, scope: scopeOfRow(row), verdict: judgeDeadLetters(row.dead, options.allowed) }));
    },
    gone: (subjects) => goneEndpoints(db, subjects),
  };
}

/**
 * `webhook.endpoint_disabled`: an endpoint the engine disabled — its receiver answered 410, or
 * failed for `WEBHOOK_DISABLE_AFTER_SECONDS` without a success — is critical for as long as it
 * stays disabled: its deliveries wait, its events pile up, and the two rules above resolve once it
 * is disabled (nothing is attempted). Without this rule the on-call's page ended exactly when the
 * receiver was given up on. Enabled again — or disabled by an admin, who decided — it is good;
 * deleted, gone. (An admin disabling an endpoint the engine disabled keeps the engine's reason:
 * `disableEndpoint` changes nothing on a disabled one.) Reads the disabled endpoints and the
 * watched ones: what it reads grows with the trouble.
 */
export function webhookEndpointDisabledRule(db: Queryable): AlertRule {
  const cursor = createReadingCursor();
  return {
    name: 'webhook.endpoint_disabled',
    description: 'Webhook endpoints disabled by the engine (410 Gone, failing too long), until enabled or deleted',
    async read({ watched }) {
      const { rows } = await db.query<EndpointRow & { enabled: boolean; disabled_reason: string | null }>(
        `SELECT e.id AS endpoint_id, e.app, e.env, e.tenant, e.enabled, e.disabled_reason
           FROM webhook_endpoints e
          WHERE ((NOT e.enabled AND e.disabled_reason IS DISTINCT FROM $1) OR e.id = ANY($2::text[])) AND e.id > $3
          ORDER BY e.id LIMIT $4`,
        [ADMIN_DISABLE_REASON, endpointsOf(watched), cursor.after, MAX_READINGS_PER_RULE],
      );
      cursor.advance(rows.map((row) => row.endpoint_id));
      return rows.map((row): Reading => ({ subject: `endpoint:${row.endpoint_id}`, scope: scopeOfRow(row), verdict: judgeEndpointDisabled(row) }));
    },
    // Deleted endpoints only: a disabled one is read above.
    async gone(subjects) {
      const { rows } = await db.query<{ id: string }>('SELECT id FROM webhook_endpoints WHERE id = ANY($1::text[])', [endpointsOf(subjects)]);
      const existing = new Set(rows.map((row) => row.id));
      return subjects.filter((subject) => !existing.has(endpointOfSubject(subject.subject) ?? '')).map((subject) => ({ subject }));
    },
  };
}

/** Judges an endpoint's state: pure. Disabled for any reason but an admin's: critical. */
export function judgeEndpointDisabled(endpoint: { readonly enabled: boolean; readonly disabled_reason: string | null }): Verdict {
  if (endpoint.enabled || endpoint.disabled_reason === ADMIN_DISABLE_REASON) return { kind: 'good', value: 0 };
  const why = endpoint.disabled_reason === null ? '' : ` (${endpoint.disabled_reason})`;
  return { kind: 'bad', severity: 'critical', value: 1, message: `disabled${why}; its deliveries wait until it is enabled (setWebhookEndpointEnabled)` };
}
