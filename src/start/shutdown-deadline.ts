/**
 * The one deadline of a graceful stop: SHUTDOWN_TIMEOUT_MS from the signal (from `dispose()`),
 * shared by every step, so the last ones — the pipeline's last analytics push and embedded flush,
 * the database's close — still run when an earlier one is slow. A step's budget is what is left
 * until its share of that time has passed, not a time of its own counted from when it began:
 * budgets counted that way added up to more than the whole (a receiver that never answers, a
 * client that never answers the close frame), and the process was killed before the database
 * step.
 */
import type { Logger } from '../logger.ts';

/**
 * How far into the shutdown each stage may go, as shares of SHUTDOWN_TIMEOUT_MS from the signal.
 * Sockets answer a close frame in milliseconds: one that has not by a quarter of the time is
 * frozen (a stalled tab, a dead proxy) and is terminated. The workers' webhook attempts in flight
 * are cut half the time after the workers begin to stop (`workers/webhook-delivery.ts`) — four
 * fifths in at the latest — and recording them takes a moment more: the workers may go on to
 * 85 %. What is left is for the steps after them, the last twentieth for the database's close.
 */
export const ShutdownShare = {
  /** Sockets have until then to answer the 1001 close frame; then they are terminated. */
  SOCKETS: 0.25,
  /** The listener's close (its last requests, the terminated sockets' ends) has until then. */
  STOP_ACCEPTING: 0.3,
  /** The workers (their attempts in flight, their last records) have until then. */
  WORKERS: 0.85,
  /** Everything before the database's close has until then: the rest of the time is the database's. */
  BEFORE_DATABASE: 0.95,
  /** The database's close, the last step: what is left (past it the process exits 1, naming the step). */
  DATABASE: 1,
} as const;

export interface ShutdownDeadline {
  /** Starts the clock (at the signal, or a failed start's undoing). The first call counts. */
  start(): void;
  /** Time from now until `share` of SHUTDOWN_TIMEOUT_MS has passed since the start, in ms (0 when past; the whole share before the start). */
  msUntil(share: number): number;
  /**
   * Runs `step` until it ends or `share` of the time has passed, whichever comes first. A step
   * still running then is left to end on its own (its failure logged) and the shutdown goes on:
   * the steps after it need the time, and the process exits soon after anyway.
   */
  bounded(name: string, share: number, step: () => Promise<void>): Promise<void>;
}

export function createShutdownDeadline(timeoutMs: number, logger: Logger): ShutdownDeadline {
  let startedAt: number | undefined;
  const msUntil = (share: number) => Math.max(0, (startedAt ?? Date.now()) + timeoutMs * share - Date.now());
  return {
    start() {
      startedAt ??= Date.now();
    },
    msUntil,
    async bounded(name, share, step) {
      const began = Date.now();
      const running = step();
      let timer: NodeJS.Timeout | undefined;
      const cut = new Promise<'cut'>((resolve) => (timer = setTimeout(() => resolve('cut'), msUntil(share))));
      try {
        const outcome = await Promise.race([running.then(() => 'done' as const), cut]);
        if (outcome === 'done') {
          logger.debug({ step: name, ms: Date.now() - began }, 'shutdown step done');
          return;
        }
      } finally {
        clearTimeout(timer);
      }
      logger.warn(
        { step: name, ms: Date.now() - began, untilMs: Math.round(timeoutMs * share) },
        'shutdown step cut: it took its share of SHUTDOWN_TIMEOUT_MS; stopping goes on without it',
      );
      running.catch((error: unknown) => logger.error({ err: error, step: name }, 'shutdown step failed after it was cut'));
    },
  };
}
