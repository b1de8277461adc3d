/**
 * The log of attempts that failed in the delivery workers themselves (not the receiver's answer:
 * Postgres or Redis away — a record, a claim or a job that could not be written), in both modes.
 * Such a failure heals itself: the delivery's lease runs out and it is attempted again, or the
 * reconciler queues what was not. A Redis restart failed every attempt under way at once (135
 * error lines, one per delivery, for one restart); here an outage is logged at `warn` when it
 * begins, again at most once a minute while it lasts (with how many failed so far, and the last
 * error: a failure that does not heal — a revoked permission, a bug — must stay in sight), and when
 * an attempt ends normally again; each failure between at `debug`.
 */
import type { Logger } from '../../logger.ts';

export interface AttemptFailureLog {
  /** An attempt failed (it threw): logged at `warn` when it begins an outage, else at `debug` and counted. */
  failed(error: unknown, deliveryId: string): void;
  /** An attempt ended normally (whatever the receiver answered): ends an outage under way, with its count. */
  succeeded(): void;
}

/** While failures go on, the outage is told again at `warn` this often at most, in ms. */
export const FAILURE_REMINDER_MS = 60_000;

export function createAttemptFailureLog(logger: Logger, now: () => number = Date.now): AttemptFailureLog {
  /** The outage under way: since when, its failures, and when it was last told at `warn`. */
  let outage: { since: number; failures: number; toldAt: number } | undefined;
  return {
    failed(error, deliveryId) {
      if (outage) {
        outage.failures += 1;
        if (now() - outage.toldAt >= FAILURE_REMINDER_MS) {
          outage.toldAt = now();
          logger.warn(
            { err: error, delivery: deliveryId, failures: outage.failures, seconds: Math.round((now() - outage.since) / 1000) },
            'webhook attempts keep failing; each delivery is retried when its lease ends',
          );
        } else logger.debug({ err: error, delivery: deliveryId }, 'webhook attempt failed; the delivery is retried when its lease ends');
        return;
      }
      outage = { since: now(), failures: 1, toldAt: now() };
      logger.warn(
        { err: error, delivery: deliveryId },
        'webhook attempt failed; the delivery is retried when its lease ends (further failures are counted until an attempt ends normally again)',
      );
    },
    succeeded() {
      if (!outage) return;
      const { since, failures } = outage;
      outage = undefined;
      logger.warn({ failures, seconds: Math.round((now() - since) / 1000) }, 'webhook attempts end normally again; those that failed meanwhile are retried when their leases end');
    },
  };
}
