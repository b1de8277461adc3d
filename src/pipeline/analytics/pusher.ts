/**
 * Moves what the recorder counted into the cluster's minute store every few seconds, so an
 * instance that dies loses at most one interval. A push that fails is kept (bounded) and tried
 * again with the same batch id, which the store applies once.
 *
 * The store itself may lose what was pushed before the workers wrote it (a Redis restarted without
 * persistence, flushed, or evicting): its generation then changes (`PushReceipt`). A minute this
 * instance pushed under the old generation was surely lost if it had not ended one push interval
 * before the old store was last reachable — when this instance's pushes began to fail, or the push
 * that found the new generation — since the workers write a minute only after a grace longer than
 * any push interval. Those minutes are logged at `warn` and counted (`lostMinutes`); a minute that
 * had ended before may have been written first, or not: not counted. Only minute numbers are kept
 * for this, never counts.
 */
import { randomUUID } from 'node:crypto';
import { componentLogger, type Logger } from '../../logger.ts';
import type { MinuteStore, PushBatch } from './minute-store.ts';
import type { AnalyticsCollector } from './recorder.ts';
import { MINUTE_MS } from './topic-counts.ts';

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
  /** The clock of the recorder's minutes, in ms since the epoch. @default Date.now */
  readonly now?: () => number;
}

export function createAnalyticsPusher(options: AnalyticsPusherOptions): AnalyticsPusher {
  const { recorder, store } = options;
  const logger = componentLogger(options.logger, 'analytics');
  const maxPending = options.maxPending ?? 120;
  const now = options.now ?? Date.now;
  const instance = randomUUID();
  let sequence = 0;
  const pending: PushBatch[] = [];
  let failing = false;
  /** The store's generation at the last push that reached it. */
  let generation: string | undefined;
  /** Minutes pushed under it that the workers may not have written yet (see the file's comment). */
  const unwritten = new Set<number>();
  /** When pushes began to fail since the last one that reached the store. */
  let failingSince: number | undefined;

  /** Whether `minute` cannot have been written by `time` (it had not ended a push interval before). */
  const unwrittenAt = (minute: number, time: number) => minute + MINUTE_MS + options.intervalMs > time;

  const reached = (minute: number, found: string | undefined, sentAt: number) => {
    if (found === undefined) return;
    if (generation !== undefined && found !== generation) {
      const lastReachable = Math.min(failingSince ?? sentAt, sentAt);
      const lost = [...unwritten].filter((each) => unwrittenAt(each, lastReachable)).sort((a, b) => a - b);
      if (lost.length > 0) {
        recorder.lostMinutes(lost.length);
        logger.warn(
          { minutes: lost.map((each) => new Date(each).toISOString()) },
          'the analytics minute store lost what this instance pushed for these minutes before the workers wrote it (Redis restarted without persistence, flushed or evicted): their counts are short',
        );
      }
      unwritten.clear();
    }
    generation = found;
    unwritten.add(minute);
    for (const each of unwritten) if (!unwrittenAt(each, sentAt)) unwritten.delete(each);
  };

  const run = async () => {
    for (const { minute, topics } of recorder.drain()) pending.push({ id: `${instance}:${(sequence += 1)}`, minute, topics });
    if (pending.length > maxPending) {
      const dropped = pending.splice(0, pending.length - maxPending);
      logger.warn({ batches: dropped.length }, 'analytics counts dropped: the minute store has been failing too long');
    }
    while (pending.length > 0) {
      const batch = pending[0]!;
      const sentAt = now();
      let receipt;
      try {
        receipt = await store.push(batch);
      } catch (error) {
        if (!failing) logger.warn({ err: error, pending: pending.length }, 'analytics counts could not be pushed; kept for the next try');
        failing = true;
        failingSince ??= sentAt;
        return;
      }
      reached(batch.minute, receipt.generation, sentAt);
      failingSince = undefined;
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
