/**
 * The analytics worker (the seed's AnalyticsWorker): every `ANALYTICS_FLUSH_SECONDS` it writes the
 * closed minutes of the minute store to Postgres, rolls them up to hours and days, and prunes
 * minutes past their retention. Any number of worker processes may run it: each minute is written
 * once (`pipeline/analytics/minute-flusher.ts`).
 */
import type { Database } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import type { MinuteStore } from '../pipeline/analytics/minute-store.ts';
import { createMinuteFlusher } from '../pipeline/analytics/minute-flusher.ts';
import type { EventRouter } from '../pipeline/router/event-router.ts';

export interface AnalyticsFlushOptions {
  readonly db: Database;
  readonly store: MinuteStore;
  readonly router: Pick<EventRouter, 'routeMany'>;
  readonly logger: Logger;
  /** Between two flushes, in ms. */
  readonly intervalMs: number;
  /** After a minute's end, how long its last pushes may take to arrive, in ms. */
  readonly graceMs: number;
  /** Minute rows are kept this long, in ms. */
  readonly retentionMs: number;
  readonly now: () => number;
}

export interface AnalyticsFlush {
  /** Stops the timer and waits for a flush in progress. Idempotent. */
  close(): Promise<void>;
}

export function startAnalyticsFlush(options: AnalyticsFlushOptions): AnalyticsFlush {
  const logger = options.logger.child({ component: 'analytics' });
  const flusher = createMinuteFlusher({ ...options, logger });
  let running: Promise<void> | undefined;
  let failing = false;
  const tick = () => {
    // A slow flush (a large minute) is not overlapped by the next tick.
    if (running) return;
    running = flusher
      .flush()
      .then((written) => {
        if (written.length > 0) logger.debug({ minutes: written.map((minute) => new Date(minute).toISOString()) }, 'analytics minutes flushed');
        if (failing) logger.info('analytics flush works again');
        failing = false;
      })
      .catch((error: unknown) => {
        if (!failing) logger.warn({ err: error }, 'analytics flush failed; retrying at the next interval');
        failing = true;
      })
      .finally(() => (running = undefined));
  };
  const timer = setInterval(tick, options.intervalMs);
  timer.unref();
  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        await running;
      })();
      return closing;
    },
  };
}
