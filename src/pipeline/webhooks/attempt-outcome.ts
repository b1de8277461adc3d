/**
 * What a webhook attempt came to — one list, and the views of it each part of the code takes. The
 * attempt log (migration 0007, 0014, 0028) stores every one of them; an attempter reports all but
 * `dead`, which recording an attempt spells for a failure with no retry left; the instance figures
 * count all but `cut`, which is no attempt of the delivery's.
 */

/** Every outcome the attempt log holds, in the order admins read them. */
export const LOGGED_OUTCOMES = ['delivered', 'failed', 'gone', 'throttled', 'refused', 'dead', 'cut'] as const;

/**
 * An attempt as the log records it. `dead`: a failure that dead-lettered the delivery. `cut`: by
 * this process's shutdown, no answer yet — logged, but not one of the delivery's attempts.
 */
export type LoggedOutcome = (typeof LOGGED_OUTCOMES)[number];

/** How an attempt ended, as its attempter reports it (a last failure is logged `dead`). */
export type AttemptOutcome = Exclude<LoggedOutcome, 'dead'>;

/** What a webhook attempt came to in the instance figures (`dead`: failed with no retry left; a `cut` one is not counted). */
export type WebhookOutcome = Exclude<LoggedOutcome, 'cut'>;

const LOGGED: ReadonlySet<string> = new Set(LOGGED_OUTCOMES);

/** Whether a string (an admin's filter) is one of the outcomes the attempt log holds. */
export function isLoggedOutcome(value: string): value is LoggedOutcome {
  return LOGGED.has(value);
}
