/**
 * One evaluation of every rule, by exactly one process of the cluster at a time: the holder of the
 * evaluator's lease (`alert_evaluator`, taken when free or expired, renewed each evaluation). It
 * reads each rule's figures, steps each subject's streaks (`alert-engine.ts`), and writes the new
 * streaks and alert changes in one transaction that first checks the lease is still its own,
 * renewing it if its time ran out meanwhile (`confirmEvaluatorLease`): a process whose lease
 * another took over writes nothing, while one that is merely slower than its lease — a slow
 * database, with nobody else to take over — still writes. The changes are then announced as events.
 *
 * A subject with an alert or streaks that its rule (read this time) said nothing about is unknown,
 * unless the rule says it no longer exists (`AlertRule.gone`): then its alert resolves at once.
 * Without that, an alert about a deleted endpoint would wait for a good figure that never comes.
 *
 * Streaks live in `alert_trackers`, so a restarted or new evaluator continues them. A tracker is
 * written only when its streaks change, so its age is that of its last change: a bad streak older
 * than the window — or than `fireAfter` evaluations and a lease take, when that is longer — is
 * forgotten (`expire`, `streakLifetimeMs`). An open alert's figure and message are refreshed by
 * every bad verdict (`refreshAlerts`), without a change.
 *
 * After an evaluation, alerts resolved long ago about subjects that no longer exist are deleted
 * (`alert-retention.ts`).
 */
import type { Database, Queryable } from '../../db/database.ts';
import { faultOf } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import type { EventRouter } from '../router/event-router.ts';
import { announcePending } from './alert-announcer.ts';
import { createAlertRetention, DEFAULT_ALERT_RETENTION_MS } from './alert-retention.ts';
import { expire, NO_STREAKS, step, streakLifetimeMs, worthKeeping, type HysteresisPolicy, type OpenAlert, type Streaks, type Transition } from './alert-engine.ts';
import { MAX_READINGS_PER_RULE, type AlertRule, type RuleSubject, type Verdict } from './alert-rule.ts';
import {
  alertIdOf,
  escalateAlert,
  fireAlert,
  listOpenAlerts,
  listTrackers,
  refreshAlerts,
  resolveAlert,
  saveTrackers,
  type AlertKey,
  type AlertRecord,
  type AlertRefresh,
  type TrackerRecord,
} from './alert-store.ts';
import { confirmEvaluatorLease, takeEvaluatorLease } from './evaluator-lease.ts';

export interface AlertEvaluatorOptions {
  readonly db: Database;
  readonly router: Pick<EventRouter, 'route'>;
  readonly rules: readonly AlertRule[];
  readonly policy: HysteresisPolicy;
  /** The window rates and counts are taken over, in ms. @default 5 minutes (set by the caller) */
  readonly windowMs: number;
  /** This process, as the lease names it (random per start). */
  readonly holder: string;
  /** How long the lease outlives an evaluation, in ms: another process takes over after it. */
  readonly leaseMs: number;
  /**
   * How often evaluations run (ALERTS_EVALUATE_SECONDS), in ms: with `leaseMs`, how long a bad
   * streak outlives its last bad verdict when the window is shorter (`streakLifetimeMs`).
   * @default a third of `leaseMs` (the workers' lease is three intervals and 2 s)
   */
  readonly evaluateMs?: number;
  /** How long an alert whose subject is gone is kept after it resolved, in ms. @default 30 days */
  readonly retentionMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
  readonly logger: Logger;
}

export interface Evaluation {
  /** False when another process holds the lease (or took it meanwhile): nothing was written. */
  readonly evaluated: boolean;
  /** Alert changes written by this evaluation. */
  readonly changes: number;
}

export interface AlertEvaluator {
  evaluate(): Promise<Evaluation>;
}

/** Most streaks and open alerts loaded per evaluation: a bound on memory. */
const MAX_TRACKED = 50_000;

interface Subject {
  readonly key: AlertKey;
  /** Its streaks as stored; undefined when none are. */
  stored: Streaks | undefined;
  /** How long ago the stored streaks last changed, in ms. */
  idleMs: number;
  open: OpenAlert | undefined;
  verdict: Verdict;
}

const keyOf = (from: AlertKey): AlertKey => ({ rule: from.rule, subject: from.subject, scope: from.scope });

/** The verdict of a subject its rule said nothing about this time (compared by identity). */
const NOT_READ: Verdict = Object.freeze({ kind: 'unknown', reason: 'no figure this time' });

function openAlertOf(alert: AlertRecord): OpenAlert | undefined {
  return alert.state === 'resolved' ? undefined : { state: alert.state, severity: alert.severity };
}

export function createAlertEvaluator(options: AlertEvaluatorOptions): AlertEvaluator {
  const { db, policy } = options;
  const logger = componentLogger(options.logger, 'alerts', { holder: options.holder });
  const streakLifetime = streakLifetimeMs({ windowMs: options.windowMs, evaluateMs: options.evaluateMs ?? options.leaseMs / 3, leaseMs: options.leaseMs }, policy);
  const retention = createAlertRetention({
    db,
    retentionMs: options.retentionMs ?? DEFAULT_ALERT_RETENTION_MS,
    windowMs: options.windowMs,
    now: options.now ?? Date.now,
    logger,
  });

  /** The rules whose last reading was as large as a reading may be, logged once until it is not. */
  const capped = new Set<string>();
  const noteCap = (rule: string, readings: number) => {
    if (readings < MAX_READINGS_PER_RULE) {
      if (capped.delete(rule)) logger.info({ rule }, 'alert rule reads all its subjects at once again');
    } else if (!capped.has(rule)) {
      capped.add(rule);
      logger.warn({ rule, readings }, 'alert rule read its cap of subjects at once: those past it are not judged this time');
    }
  };

  /**
   * Every subject of the rules that could be read, with its verdict (unknown when not read this
   * time, gone when it no longer exists), and those rules.
   */
  const gather = async (): Promise<{ subjects: Map<string, Subject>; readRules: Map<string, AlertRule> }> => {
    const subjects = new Map<string, Subject>();
    const readRules = new Map<string, AlertRule>();
    const trackers = await listTrackers(db, MAX_TRACKED);
    const openAlerts = await listOpenAlerts(db, MAX_TRACKED);
    // Read first: a rule that reads only the subjects in trouble reads these too (RuleContext.watched).
    const watched = new Map<string, Map<string, AlertKey>>();
    for (const known of [...trackers, ...openAlerts]) {
      const ofRule = watched.get(known.rule) ?? new Map<string, AlertKey>();
      ofRule.set(known.id, keyOf(known));
      watched.set(known.rule, ofRule);
    }
    for (const rule of options.rules) {
      try {
        const readings = await rule.read({ windowMs: options.windowMs, watched: [...(watched.get(rule.name)?.values() ?? [])] });
        noteCap(rule.name, readings.length);
        for (const reading of readings) {
          const key = { rule: rule.name, subject: reading.subject, scope: reading.scope };
          subjects.set(alertIdOf(key), { key, stored: undefined, idleMs: 0, open: undefined, verdict: reading.verdict });
        }
        readRules.set(rule.name, rule);
      } catch (error) {
        // Its subjects are left as they are (no streak moves) until it can be read again.
        logger.warn({ err: error, rule: rule.name }, 'alert rule could not be read');
      }
    }
    for (const tracker of trackers) {
      if (!readRules.has(tracker.rule)) continue;
      const subject = subjects.get(tracker.id) ?? { key: keyOf(tracker), stored: undefined, idleMs: 0, open: undefined, verdict: NOT_READ };
      subject.stored = tracker.streaks;
      subject.idleMs = tracker.idleMs;
      subjects.set(tracker.id, subject);
    }
    for (const alert of openAlerts) {
      if (!readRules.has(alert.rule)) continue;
      const subject = subjects.get(alert.id) ?? { key: keyOf(alert), stored: undefined, idleMs: 0, open: undefined, verdict: NOT_READ };
      subject.open = openAlertOf(alert);
      subjects.set(alert.id, subject);
    }
    for (const rule of readRules.values()) await markGone(rule, [...subjects.values()].filter((s) => s.key.rule === rule.name && s.verdict === NOT_READ));
    return { subjects, readRules };
  };

  /** Asks `rule` which of its silent subjects are gone (no longer exist, or out of its sight); theirs is the verdict `gone`. */
  const markGone = async (rule: AlertRule, silent: readonly Subject[]): Promise<void> => {
    if (rule.gone === undefined || silent.length === 0) return;
    let gone: ReadonlyMap<RuleSubject, string | undefined>;
    try {
      gone = new Map((await rule.gone(silent.map((subject) => subject.key), { windowMs: options.windowMs })).map((found) => [found.subject, found.reason]));
    } catch (error) {
      // Unknown, as before the question: nothing resolves on a reading that failed.
      logger.warn({ err: error, rule: rule.name }, 'alert rule could not tell which subjects are gone');
      return;
    }
    for (const subject of silent) {
      if (gone.has(subject.key)) subject.verdict = { kind: 'gone', reason: gone.get(subject.key) ?? `${subject.key.subject} no longer exists` };
    }
  };

  const apply = async (tx: Queryable, subject: Subject, transition: Transition): Promise<boolean> => {
    const id = alertIdOf(subject.key);
    switch (transition.kind) {
      case 'fired':
        return (await fireAlert(tx, { ...subject.key, severity: transition.severity, value: transition.value, message: transition.message })) !== undefined;
      case 'escalated':
        return (await escalateAlert(tx, id, transition.severity, transition.value, transition.message)) !== undefined;
      case 'resolved':
        return (await resolveAlert(tx, id, transition.value, transition.message)) !== undefined;
    }
  };

  return {
    async evaluate() {
      if (!(await takeEvaluatorLease(db, options.holder, options.leaseMs))) return { evaluated: false, changes: 0 };
      const { subjects, readRules } = await gather();
      const keep: TrackerRecord[] = [];
      const drop: string[] = [];
      const transitions: { subject: Subject; transition: Transition }[] = [];
      const refreshes: AlertRefresh[] = [];
      for (const [id, subject] of subjects) {
        const current = subject.stored === undefined ? NO_STREAKS : expire(subject.stored, subject.idleMs, streakLifetime);
        const next = step(current, subject.open, subject.verdict, policy);
        if (next.refresh) refreshes.push({ id, ...next.refresh });
        const kind = next.transition?.kind;
        const open = kind === 'resolved' ? false : kind !== undefined || subject.open !== undefined;
        if (worthKeeping(next.streaks, open)) {
          // The stored streaks handed back as they are (an unknown verdict on streaks not expired) are
          // not written: the tracker's age stays that of its last change. Streaks that expired count as
          // changed even when the step made them equal again (a stale `bad: 1` and one more bad verdict).
          if (next.streaks !== subject.stored) keep.push({ id, ...subject.key, streaks: next.streaks });
        } else if (subject.stored !== undefined) drop.push(id);
        if (next.transition) transitions.push({ subject, transition: next.transition });
      }
      const changes = await db.transaction(async (tx) => {
        const lease = await confirmEvaluatorLease(tx, options.holder, options.leaseMs);
        if (lease === 'lost') return undefined;
        // Slower than the lease, yet nobody took it: written, and said, as it hints at a slow database.
        if (lease === 'renewed') logger.info({ leaseMs: options.leaseMs }, 'alert evaluation outlived its lease; nobody took it over, so it is written');
        const written: typeof transitions = [];
        for (const change of transitions) if (await apply(tx, change.subject, change.transition)) written.push(change);
        // Not changes: no version, no `alert_changes` row, nothing announced.
        await refreshAlerts(tx, refreshes);
        await saveTrackers(tx, keep, drop);
        return written;
      });
      if (changes === undefined) {
        // Another process took the lease over (this one stalled past it): its evaluation stands.
        logger.warn({ leaseMs: options.leaseMs }, 'alert evaluator lease taken over by another process mid-evaluation; nothing written');
        return { evaluated: false, changes: 0 };
      }
      // One line per change, saying what: the operator reading the logs needs no query to know.
      for (const { subject, transition } of changes) {
        const { rule, subject: name, scope } = subject.key;
        const severity = transition.kind === 'resolved' ? undefined : transition.severity;
        const message = transition.message ?? '';
        logger.info({ rule, subject: name, app: scope.app, env: scope.env, tenant: scope.tenant, change: transition.kind, severity, value: transition.value }, `alert ${transition.kind}: ${rule} ${name}${message ? ` (${message})` : ''}`);
      }
      const gone = transitions.filter(({ subject }) => subject.verdict.kind === 'gone').map(({ subject }) => subject.key.subject);
      if (gone.length > 0) logger.info({ subjects: gone }, 'alerts resolved: their subjects no longer exist');
      // Written, so evaluated; what is not announced now stays pending for the next evaluation.
      await announcePending(db, options.router).catch((error: unknown) =>
        logger.warn({ err: error, fault: faultOf(error) }, 'alert changes written but not announced yet; the next evaluation announces them'),
      );
      await retention.step(readRules).catch((error: unknown) => logger.warn({ err: error, fault: faultOf(error) }, 'old resolved alerts not pruned; the next evaluation tries again'));
      return { evaluated: true, changes: changes.length };
    },
  };
}
