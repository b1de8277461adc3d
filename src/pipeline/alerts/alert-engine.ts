/**
 * The pure part of alerting: given what a subject's streaks were, its open alert (if any) and this
 * evaluation's verdict, the next streaks and the state change to make. No I/O: the evaluator
 * (`alert-evaluator.ts`) loads the inputs and persists the outcome.
 *
 * The rules of the lifecycle:
 * - fire after `fireAfter` bad verdicts in a row; the severity is critical when the last
 *   `fireAfter` were all critical, warning otherwise;
 * - an open alert (firing or acknowledged) escalates from warning to critical after `fireAfter`
 *   critical verdicts in a row; it is never lowered while open (an operator was told "critical");
 * - an open alert resolves after `resolveAfter` good verdicts in a row, acknowledged or not;
 * - every bad verdict on an open alert that changes nothing else refreshes its figure and message
 *   (`refresh`), which is not a change: nothing is announced. An alert about 40 connections said
 *   "4 open connections" for as long as it stayed open, the figure it first fired on;
 * - good means clearly good: rules judge with a dead band (`RESOLVE_FRACTION`), and a figure
 *   between it and the limit is `between` — neither bad nor good: it ends both streaks. A figure
 *   hovering at its limit thus fires once and stays open, where a limit shared by firing and
 *   resolving fired, resolved and fired again (each re-firing re-opens the same alert, count + 1,
 *   and is announced: a page every minute);
 * - unknown changes nothing (neither streak moves), so one failure out of one attempt can neither
 *   fire nor reset a bad streak — for a while: a bad streak whose last bad verdict is older than
 *   the rule's window (or than a few evaluations take, when the window is shorter:
 *   `streakLifetimeMs`) is forgotten (`expire`), as that verdict says nothing of any window since.
 * - gone (the subject no longer exists) resolves an open alert at once, saying why, and clears the
 *   streaks: no figure will ever come to resolve it;
 * - a resolve always says why: the subject gone, or the last good verdict's figure (the firing
 *   message would otherwise stay on a resolved alert, and on its `system.alerts` event).
 */
import { BACK_TO_NORMAL, type AlertState, type Severity, type Verdict } from './alert-rule.ts';

export interface Streaks {
  /** Bad verdicts in a row (any severity). */
  readonly bad: number;
  /** Critical verdicts in a row. */
  readonly critical: number;
  /** Good verdicts in a row. */
  readonly good: number;
}

export const NO_STREAKS: Streaks = Object.freeze({ bad: 0, critical: 0, good: 0 });

export interface HysteresisPolicy {
  /** Bad evaluations in a row before an alert fires. @default 2 */
  readonly fireAfter: number;
  /** Good evaluations in a row before an open alert resolves. @default 3 */
  readonly resolveAfter: number;
}

/** What the engine needs of a subject's alert: only an open one matters. */
export interface OpenAlert {
  readonly state: Exclude<AlertState, 'resolved'>;
  readonly severity: Severity;
}

export type Transition =
  | { readonly kind: 'fired'; readonly severity: Severity; readonly value: number; readonly message: string }
  | { readonly kind: 'escalated'; readonly severity: 'critical'; readonly value: number; readonly message: string }
  /**
   * `value` null keeps the last figure. `message` replaces the alert's: why it resolved — its
   * subject gone, or its figure good again — so a resolved alert never shows its firing figure.
   */
  | { readonly kind: 'resolved'; readonly value: number | null; readonly message: string };

export interface Step {
  readonly streaks: Streaks;
  readonly transition: Transition | undefined;
  /** An open alert's figure and message now, when this verdict changes nothing else about it (no change, not announced). */
  readonly refresh?: { readonly value: number; readonly message: string };
}

export function step(streaks: Streaks, open: OpenAlert | undefined, verdict: Verdict, policy: HysteresisPolicy): Step {
  switch (verdict.kind) {
    case 'unknown':
      return { streaks, transition: undefined };
    case 'gone':
      return { streaks: NO_STREAKS, transition: open === undefined ? undefined : { kind: 'resolved', value: null, message: verdict.reason } };
    case 'between':
      return { streaks: NO_STREAKS, transition: undefined };
    case 'good': {
      const next = { bad: 0, critical: 0, good: streaks.good + 1 };
      const resolves = open !== undefined && next.good >= policy.resolveAfter;
      // The last good verdict's message: the figure it resolves on (the firing one is out of date).
      return { streaks: next, transition: resolves ? { kind: 'resolved', value: verdict.value, message: verdict.message ?? BACK_TO_NORMAL } : undefined };
    }
    case 'bad': {
      const next = { bad: streaks.bad + 1, critical: verdict.severity === 'critical' ? streaks.critical + 1 : 0, good: 0 };
      const sustainedCritical = next.critical >= policy.fireAfter;
      if (open === undefined) {
        if (next.bad < policy.fireAfter) return { streaks: next, transition: undefined };
        return { streaks: next, transition: { kind: 'fired', severity: sustainedCritical ? 'critical' : 'warning', value: verdict.value, message: verdict.message } };
      }
      if (open.severity === 'warning' && sustainedCritical) {
        return { streaks: next, transition: { kind: 'escalated', severity: 'critical', value: verdict.value, message: verdict.message } };
      }
      return { streaks: next, transition: undefined, refresh: { value: verdict.value, message: verdict.message } };
    }
  }
}

/**
 * How long a bad streak outlives its last bad verdict: the rule's window, and no less than the
 * time `fireAfter` evaluations `evaluateMs` apart take plus a lease (another process taking the
 * evaluations over). With the window alone, a window no longer than the interval forgot every
 * streak before the next evaluation could add to it, and nothing ever fired.
 */
export function streakLifetimeMs(timing: { readonly windowMs: number; readonly evaluateMs: number; readonly leaseMs: number }, policy: HysteresisPolicy): number {
  return Math.max(timing.windowMs, policy.fireAfter * timing.evaluateMs + timing.leaseMs);
}

/**
 * The streaks `idleMs` after they last changed: a bad streak is forgotten once its last bad verdict
 * is older than `maxIdleMs` (`streakLifetimeMs`). Every bad verdict changes the streaks and nothing
 * else changes a bad streak without ending it, so while there is one its last change is its last
 * bad verdict. Without this, one bad verdict, hours of unknown ones and one more bad verdict fired
 * as if they had been two evaluations in a row. A good streak is not forgotten: resolving on good
 * verdicts separated by unknown ones tells nobody anything false, and never leaves an alert open
 * for want of consecutive readings.
 */
export function expire(streaks: Streaks, idleMs: number, maxIdleMs: number): Streaks {
  return streaks.bad > 0 && idleMs > maxIdleMs ? NO_STREAKS : streaks;
}

/**
 * Whether a subject's streaks are worth keeping: a bad streak may still fire, a good streak may
 * still resolve an open alert; anything else is the same as no record at all.
 */
export function worthKeeping(streaks: Streaks, open: boolean): boolean {
  return streaks.bad > 0 || (open && streaks.good > 0);
}
