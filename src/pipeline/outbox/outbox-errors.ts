/**
 * What a failed outbox statement means, for `lastError` (`outboxStatus`) and the logs: the
 * SQLSTATEs an operator can act on said in words, anything else as Postgres said it.
 */
import { sqlStateOf, SqlState } from '../../errors.ts';

/** Whether the statement gave up on a lock another session holds (`lock_timeout`, `outbox-pool.ts`). */
export function isLockTimeout(error: unknown): boolean {
  return sqlStateOf(error) === SqlState.LOCK_NOT_AVAILABLE;
}

/** `error` in words: a lock wait and a privilege missing say what to look for; `what` names the step ("claiming rows"). */
export function describeOutboxError(error: unknown, what: string): string {
  const message = error instanceof Error ? error.message : String(error);
  if (isLockTimeout(error)) {
    return `${what}: waiting on a row lock held by another session (an open transaction that updated, deleted or locked outbox rows; pg_stat_activity shows it): its rows wait until it ends (${message})`;
  }
  if (sqlStateOf(error) === SqlState.QUERY_CANCELED) return `${what}: the statement ran past statement_timeout (${message})`;
  return `${what}: ${message}`;
}
