/**
 * The order an endpoint's deliveries are taken in — leased, then attempted: due time, then id (the
 * order they were stored in). With maxConcurrency 1 and nothing failing, an endpoint receives its
 * deliveries in that order (a replay's oldest first), in both delivery modes. An `UPDATE …
 * RETURNING` hands rows back in the order it met them in the heap, which updates reshuffle: the
 * claims sort the few rows they lease (`TAKEN_ORDER`), and the embedded loop keeps its ready
 * deliveries in that order (`takenBefore`).
 */

/** A claim's rows (`d`) in the order they are taken. */
export const TAKEN_ORDER = 'ORDER BY d.next_attempt_at, d.id';

interface Taken {
  readonly id: string;
  /** Null: a lane's follower (not due until it is the head), taken after every due one. */
  readonly nextAttemptAt: Date | null;
}

/** Whether `a` is taken before `b`: the earlier due time, then the lower id (bigint ids as decimal text). */
export function takenBefore(a: Taken, b: Taken): boolean {
  const dueA = a.nextAttemptAt?.getTime() ?? Number.POSITIVE_INFINITY;
  const dueB = b.nextAttemptAt?.getTime() ?? Number.POSITIVE_INFINITY;
  if (dueA !== dueB) return dueA < dueB;
  return a.id.length !== b.id.length ? a.id.length < b.id.length : a.id < b.id;
}
