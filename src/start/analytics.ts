/**
 * Per-topic analytics, in every role: the recorder the router, the dispatcher and the webhook
 * deliverer count into; the minute store where every instance's counts meet (Redis, or this
 * process's memory when embedded); the pusher that moves the counts there every few seconds; and
 * the figures `/metrics` (and a dashboard) read. With `ANALYTICS_ENABLED=false` nothing is counted.
 * The workers flush the store to Postgres (`workers/analytics-flush.ts`).
 */
import { createCleanupStack } from '../cleanup-stack.ts';
import { HOT_TOPICS_IN_METRICS } from '../metrics.ts';
import type { InstanceFigures } from '../pipeline/analytics/instance-figures.ts';
import { createMemoryMinuteStore } from '../pipeline/analytics/memory-minute-store.ts';
import type { MinuteStore } from '../pipeline/analytics/minute-store.ts';
import { createAnalyticsPusher } from '../pipeline/analytics/pusher.ts';
import { createAnalyticsRecorder, disabledFigures, type AnalyticsCollector } from '../pipeline/analytics/recorder.ts';
import { createRedisMinuteStore } from '../pipeline/analytics/redis-minute-store.ts';
import { parseStreamKey } from '../pipeline/stream.ts';
import type { Disposable, StartContext } from './subsystem.ts';

export interface Analytics extends Disposable {
  /** Undefined when analytics is off: the hot path then skips counting altogether. */
  readonly recorder: AnalyticsCollector | undefined;
  /** This instance's cumulative totals. */
  readonly figures: InstanceFigures;
  readonly store: MinuteStore;
  /** Pushes what was counted to the store now (tests; shutdown does it too). */
  pushNow(): Promise<void>;
}

export function startAnalytics({ config, clients, metrics, logger, now }: StartContext): Analytics {
  const settings = config.analytics;
  const store = clients.redis ? createRedisMinuteStore({ redis: clients.redis.command, keyPrefix: config.redisKeyPrefix }) : createMemoryMinuteStore();
  if (!settings.enabled) {
    return { recorder: undefined, figures: disabledFigures(now), store, pushNow: () => Promise.resolve(), dispose: () => Promise.resolve() };
  }
  const recorder = createAnalyticsRecorder({ maxTopicsPerMinute: settings.maxTopicsPerMinute, now });
  const cleanup = createCleanupStack(logger);
  const pusher = createAnalyticsPusher({ recorder, store, intervalMs: settings.pushIntervalMs, logger });
  // The last push, after the sampler is gone: it runs even when removing the sampler fails.
  cleanup.push('analytics pusher', () => pusher.close());
  const stopSampling = metrics.sample({
    analytics() {
      const figures = recorder.figures.snapshot();
      const hotTopics = recorder.topTopics(HOT_TOPICS_IN_METRICS).flatMap(({ topicKey, eventsPerSecond }) => {
        const parsed = parseStreamKey(topicKey);
        return parsed ? [{ app: parsed.scope.app, env: parsed.scope.env, tenant: parsed.scope.tenant ?? '', topic: parsed.topic, eventsPerSecond }] : [];
      });
      return { ...figures, hotTopics };
    },
  });
  cleanup.push('analytics sampling', () => Promise.resolve(stopSampling()));
  return {
    recorder,
    figures: recorder.figures,
    store,
    pushNow: () => pusher.pushNow(),
    dispose: () => cleanup.run(),
  };
}
