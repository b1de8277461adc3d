/**
 * Moves what the recorder counted into the cluster's minute store every few seconds, so an
 * instance that dies loses at most one interval. A push that fails is kept (bounded) and tried
 * again with the same batch id, which the store applies once.
 */
import { randomUUID } from 'node:crypto';
import { componentLogger, type Logger } from '../../logger.ts';
import type { MinuteStore, PushBatch } from './minute-store.ts';
import type { AnalyticsCollector } from './recorder.ts';

export interface AnalyticsPusher {
  /** Drains the recorder and pushes everything pending now (tests, shutdown). */
  pushNow(): Promise<void>;
  /** Stops the timer after a last push. Idempotent. */
  close(): Promise<void>;
}

export interface AnalyticsPusherOptions {
  readonly recorder: AnalyticsCollector;
  readonly store: MinuteStore;
  /** Between two pushes, in ms (at most 5000: what a dying instance may lose). */
  readonly intervalMs: number;
  readonly logger: Logger;
  /** Batches kept while the store fails; the oldest are dropped beyond. @default 120 */
  readonly maxPending?: number;
}

export function createAnalyticsPusher(options: AnalyticsPusherOptions): AnalyticsPusher {
  const { recorder, store } = options;
  const logger = componentLogger(options.logger, 'analytics');
  const maxPending = options.maxPending ?? 120;
  const instance = randomUUID();
  let sequence = 0;
  const pending: PushBatch[] = [];
  let failing = false;

  const run = async () => {
    for (const { minute, topics } of recorder.drain()) pending.push({ id: `${instance}:${(sequence += 1)}`, minute, topics });
    if (pending.length > maxPending) {
      const dropped = pending.splice(0, pending.length - maxPending);
      logger.warn({ batches: dropped.length }, 'analytics counts dropped: the minute store has been failing too long');
    }
    while (pending.length > 0) {
      try {
        await store.push(pending[0]!);
      } catch (error) {
        if (!failing) logger.warn({ err: error, pending: pending.length }, 'analytics counts could not be pushed; kept for the next try');
        failing = true;
        return;
      }
      pending.shift();
      if (failing) logger.info('analytics counts pushed again');
      failing = false;
    }
  };

  // One run at a time: a call during a run waits for it, then runs again.
  let chain: Promise<void> = Promise.resolve();
  const pushNow = (): Promise<void> => {
    const next = chain.then(run);
    chain = next.catch(() => undefined);
    return next;
  };

  const timer = setInterval(() => void pushNow().catch((error: unknown) => logger.error({ err: error }, 'analytics push failed')), options.intervalMs);
  timer.unref();
  let closing: Promise<void> | undefined;
  return {
    pushNow,
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        await pushNow().catch((error: unknown) => logger.warn({ err: error }, 'last analytics push failed'));
      })();
      return closing;
    },
  };
}
