/**
 * The analytics worker (the seed's AnalyticsWorker): every `ANALYTICS_FLUSH_SECONDS` it writes the
 * closed minutes of the minute store to Postgres, adds them into their hours and days, and prunes
 * minutes past their retention. Any number of worker processes may run it: each minute is written
 * once (`pipeline/analytics/minute-flusher.ts`). Embedded, the store dies with the process: its
 * shutdown writes the minutes that have ended (`flushEnded`).
 */
import type { Database } from '../db/database.ts';
import { componentLogger, type Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { MinuteStore } from '../pipeline/analytics/minute-store.ts';
import { createMinuteFlusher } from '../pipeline/analytics/minute-flusher.ts';
import type { EventRouter } from '../pipeline/router/event-router.ts';

export interface AnalyticsFlushOptions {
  readonly db: Database;
  readonly store: MinuteStore;
  readonly router: Pick<EventRouter, 'routeMany'>;
  readonly logger: Logger;
  readonly metrics: Pick<Metrics, 'analyticsRowsSetAside'>;
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
  /**
   * Closes, then writes every minute that has ended, without waiting out the grace: for a store
   * that dies with this process (embedded) once its one pusher has made its last push — nothing
   * more can come for those minutes. The minute in progress stays unwritten: marked flushed, it
   * would drop what a restart within it counts. Never rejects (a failure is logged).
   */
  flushEnded(): Promise<void>;
}

export function startAnalyticsFlush(options: AnalyticsFlushOptions): AnalyticsFlush {
  const logger = componentLogger(options.logger, 'analytics');
  const flusher = createMinuteFlusher({ ...options, logger });
  /** Rows set aside counted in `/metrics` so far (the flusher counts since its start). */
  let counted = 0;
  const countSetAside = () => {
    options.metrics.analyticsRowsSetAside.inc(flusher.setAsideRows - counted);
    counted = flusher.setAsideRows;
  };
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
      .finally(() => {
        countSetAside();
        running = undefined;
      });
  };
  const timer = setInterval(tick, options.intervalMs);
  timer.unref();
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      clearInterval(timer);
      await running;
    })();
    return closing;
  };
  return {
    close,
    async flushEnded() {
      // After close: a flush of the timer's still running would hold the lock, and this one would stop.
      await close();
      try {
        const written = await flusher.flush({ graceMs: 0 });
        if (written.length > 0) logger.info({ minutes: written.map((minute) => new Date(minute).toISOString()) }, 'analytics minutes written at shutdown');
      } catch (error) {
        logger.warn({ err: error }, 'analytics minutes could not be written at shutdown; they are lost');
      }
      countSetAside();
    },
  };
}
