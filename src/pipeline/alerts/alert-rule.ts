/**
 * What an alert rule is (issue 12, part 4; seed 000, "Alert Pipeline").
 *
 * Terminology:
 * - rule: a named check (`webhook.failure_rate`) that reads one figure per subject over a window
 *   and judges it: bad (with a severity), good, or unknown.
 * - subject: what an alert is about — `endpoint:<id>`, `outbox:<app>/<env>`, `cdc:<source>`,
 *   `cluster` — inside a scope (app, env and maybe tenant). An alert is keyed by rule, subject
 *   and scope: a flapping endpoint is one alert whose `count` grows, never a flood.
 * - unknown: too little to judge (fewer samples than the minimum, a figure not reported lately):
 *   it neither fires nor resolves, and leaves the streaks where they are.
 * - gone: the subject no longer exists (an endpoint deleted, an outbox or CDC source removed), or
 *   is out of the rule's sight for as long as it stays so (an endpoint disabled: nothing is
 *   attempted to it), as the rule's `gone` says of a subject it read nothing about: its open alert
 *   resolves at once and its streaks are dropped. Unknown waits for a figure; gone has none to wait for.
 * - streaks (hysteresis): an alert fires after `fireAfter` bad evaluations in a row and resolves
 *   after `resolveAfter` good ones in a row (`alert-engine.ts`).
 * - dead band: a figure is bad over its limit but good only at or under `RESOLVE_FRACTION` of it;
 *   in between it is `between`, which neither fires nor resolves (`judgeLimit`).
 */
import type { Severity } from '../events/alert-event.ts';
import type { Scope } from '../scope.ts';

/** Defined with the alert events they travel in. */
export type { AlertState, Severity } from '../events/alert-event.ts';

/** A rule's judgement of one subject's figure (`gone` comes from `AlertRule.gone`, never from a reading). */
export type Verdict =
  | { readonly kind: 'unknown'; readonly reason: string }
  | { readonly kind: 'gone'; readonly reason: string }
  /**
   * `message`: the good figure in words, which a resolved alert shows instead of its firing
   * message ("back within limit: 0 open connections (limit 3)"); absent, a generic one is used.
   */
  | { readonly kind: 'good'; readonly value: number; readonly message?: string }
  /** Not over the limit, not clearly under it either (the dead band): neither bad nor good. */
  | { readonly kind: 'between'; readonly value: number }
  | { readonly kind: 'bad'; readonly severity: Severity; readonly value: number; readonly message: string };

/** What an alert is about, inside its scope (with the rule's name, an alert's key). */
export interface RuleSubject {
  readonly subject: string;
  readonly scope: Scope;
}

/** One subject as a rule saw it in one evaluation. */
export interface Reading extends RuleSubject {
  readonly verdict: Verdict;
}

export interface RuleContext {
  /** The window rates and counts are taken over, in ms. */
  readonly windowMs: number;
  /**
   * This rule's subjects that have an open alert or streaks. A rule that reads only the subjects
   * in trouble reads these too: one whose trouble stopped then reads good and its alert resolves,
   * where it would otherwise be silent — unknown — for as long as it exists.
   */
  readonly watched: readonly RuleSubject[];
}

export interface AlertRule {
  /** Stable, dotted, lower case: stored with every alert and used as a metric label. */
  readonly name: string;
  /** One line for operators (README and logs). */
  readonly description: string;
  /**
   * Reads every subject it has a figure for and judges each. A subject it says nothing about is
   * unknown this time, unless `gone` says it no longer exists. Bounded: a rule returns at most a
   * few thousand readings.
   */
  read(context: RuleContext): Promise<readonly Reading[]>;
  /**
   * Of `subjects` — ones with an alert or streaks that `read` said nothing about this time — those
   * that are gone, each as given (the same object) with why. Asked only after `read` succeeded, so a
   * rule that cannot be read never resolves anything. Absent: its subjects never go away
   * (`cluster`), and a silent one is unknown.
   */
  gone?(subjects: readonly RuleSubject[], context: Pick<RuleContext, 'windowMs'>): Promise<readonly GoneSubject[]>;
}

/** A subject a rule's `gone` found gone. */
export interface GoneSubject {
  /** The subject as `gone` was given it (the same object). */
  readonly subject: RuleSubject;
  /** Why: the message its alert resolves with. @default "<subject> no longer exists" */
  readonly reason?: string;
  /**
   * It still exists, only out of the rule's sight (an endpoint disabled): its alert resolves, but
   * is kept however long ago that was (`alert-retention.ts` deletes alerts of subjects that no
   * longer exist), and its row re-opens should it fire again.
   */
  readonly exists?: boolean;
}

/**
 * A figure resolves an alert only at or under this share of its limit: one that hovers at the
 * limit would otherwise fire, resolve and fire again every few evaluations, each firing a page.
 */
export const RESOLVE_FRACTION = 0.9;

/** The level at or under which a figure is good, for a `limit` it is bad over. */
export function resolveLevel(limit: number): number {
  return limit * RESOLVE_FRACTION;
}

/**
 * Judges a figure against its limit with the dead band: bad over it, good at or under
 * `resolveLevel`, between otherwise. Pure. `bad.message` describes the figure as it is now (the
 * rules build it from this reading), so a good verdict says the same, back within its limit: an
 * alert that resolves on it then reads as resolved, not as its firing figure.
 */
export function judgeLimit(value: number, limit: number, bad: { readonly severity: Severity; readonly message: string }): Verdict {
  if (value > limit) return { kind: 'bad', severity: bad.severity, value, message: bad.message };
  return value <= resolveLevel(limit) ? { kind: 'good', value, message: `${BACK_WITHIN_LIMIT}: ${bad.message}` } : { kind: 'between', value };
}

/** How a good verdict's message begins when its figure is back within its limit. */
export const BACK_WITHIN_LIMIT = 'back within limit';

/** The message of an alert resolved on good verdicts that carried none (a rule judging good without a figure to tell). */
export const BACK_TO_NORMAL = 'back to normal';

/** Most readings taken from one rule in one evaluation: a bound on each query and on memory. */
export const MAX_READINGS_PER_RULE = 5_000;

/**
 * Where a rule that reads its subjects in key order, MAX_READINGS_PER_RULE at a time, starts its
 * next reading: after the last key of a full reading, so the subjects past the bound are judged
 * too (every other evaluation, not never), and from the start after one that was not full.
 */
export interface ReadingCursor {
  /** The key the next reading starts after; '' from the start. */
  readonly after: string;
  /** Takes note of a reading's keys, in the order read. */
  advance(keys: readonly string[]): void;
}

export function createReadingCursor(): ReadingCursor {
  let after = '';
  return {
    get after() {
      return after;
    },
    advance(keys) {
      after = keys.length >= MAX_READINGS_PER_RULE ? (keys.at(-1) ?? '') : '';
    },
  };
}

/** `endpoint:<id>` → `<id>`: the webhook endpoint an alert is about, if any. */
export function endpointOfSubject(subject: string): string | undefined {
  return subject.startsWith('endpoint:') ? subject.slice('endpoint:'.length) : undefined;
}
