/**
 * The workers role: background work that needs no socket — the outbox pollers, webhook
 * delivery, alert evaluation and the analytics flush. It runs in its own processes (`npm run
 * workers`, any number of them) next to servers, or inside the one process of `npm start` (role `all`).
 */
import { alertTimingProblem } from '../config-alerts.ts';
import { ErrorCode, TributaryError } from '../errors.ts';
import type { MinuteFlusherOptions } from '../pipeline/analytics/minute-flusher.ts';
import { createOutboxPool } from '../pipeline/outbox/outbox-pool.ts';
import { startAlertEvaluation } from '../workers/alerts.ts';
import { startAnalyticsFlush, type AnalyticsFlushOptions } from '../workers/analytics-flush.ts';
import { createOutboxPollers } from '../workers/outbox-pollers.ts';
import { startWebhookDelivery } from '../workers/webhook-delivery.ts';
import type { ClusterDashboard } from './dashboard.ts';
import type { Pipeline } from './pipeline.ts';
import type { Disposable, StartContext } from './subsystem.ts';

export interface Workers extends Disposable {
  /** The names of the workers this process runs. */
  readonly running: readonly string[];
}

export interface WorkerParts {
  readonly pipeline: Pipeline;
  readonly dashboard: ClusterDashboard;
}

export async function startWorkers({ config, clients, metrics, logger, now }: StartContext, { pipeline, dashboard }: WorkerParts): Promise<Workers> {
  // Before anything starts: the process evaluating the rules refuses a timing they cannot work with.
  const timing = alertTimingProblem(config.alerts);
  if (timing !== undefined) throw new TributaryError(ErrorCode.MISCONFIGURED, timing);
  const outbox = createOutboxPollers({
    db: clients.db,
    connect: (url) => createOutboxPool(url, logger),
    router: pipeline.router,
    logger,
    metrics,
    pollIntervalMs: config.outbox.pollIntervalMs,
    retentionMs: config.outbox.retentionMs,
    reportIntervalMs: config.outbox.reportIntervalMs,
    maxPayloadBytes: config.events.maxPayloadBytes,
  });
  // A source that cannot be reached is reported in its status; it never stops the process.
  await outbox.refresh().catch((error: unknown) => logger.error({ err: error }, 'outbox sources could not be loaded'));
  const webhooks = startWebhookDelivery({
    config,
    db: clients.db,
    redis: clients.redis?.command,
    router: pipeline.router,
    webhooks: pipeline.webhooks,
    logger,
    metrics,
    analytics: pipeline.analytics.recorder,
  });
  const alerts = startAlertEvaluation({
    config: config.alerts,
    operatorScope: config.operatorScope,
    db: clients.db,
    router: pipeline.router,
    logger,
    metrics,
    cluster: dashboard.figures,
  });
  // Pushes arrive every push interval — any instance's, which may be longer than this process's
  // own (a server on the default 60 s pushes every 5 s, workers flushing every second every
  // second): a minute is closed once the last of them is surely in (`flushGraceMs`).
  // The hour and day retentions ride along to the flusher (`MinuteFlusherOptions`): the flush
  // prunes them where it prunes the minutes.
  const flushOptions: AnalyticsFlushOptions & Pick<MinuteFlusherOptions, 'hourRetentionMs' | 'dayRetentionMs'> = {
    db: clients.db,
    store: pipeline.analytics.store,
    router: pipeline.router,
    logger,
    metrics,
    intervalMs: config.analytics.flushSeconds * 1000,
    graceMs: config.analytics.flushGraceMs,
    retentionMs: config.analytics.retentionMs,
    hourRetentionMs: config.analytics.hourRetentionMs,
    dayRetentionMs: config.analytics.dayRetentionMs,
    now,
  };
  const analytics = startAnalyticsFlush(flushOptions);
  // Embedded, the minute store is this process's memory. The last counts are pushed when the
  // pipeline stops — after the workers, as the server counts until it has stopped — so the last
  // flush comes after that push, not when the worker stops.
  if (pipeline.analytics.store.kind === 'memory') pipeline.afterLastAnalyticsPush(() => analytics.flushEnded());
  const running = ['outbox', 'webhooks', 'alerts', 'analytics'];
  logger.info({ workers: running }, 'workers ready');
  return {
    running,
    async dispose() {
      // Side by side: each waits for its own work in flight, and none may hold another's stop — a
      // slow alert evaluation would keep the webhook attempts from their cut at half the shutdown's
      // time (docs/operations.md), leaving them unrecorded until their leases expire. The evaluation
      // in flight is waited for as long as the attempts are.
      const stopping = [alerts.close(config.shutdownTimeoutMs / 2), analytics.close(), webhooks.close(), outbox.close()];
      const failed = (await Promise.allSettled(stopping)).filter((result) => result.status === 'rejected');
      for (const { reason } of failed) logger.error({ err: reason }, 'a worker failed to stop');
    },
  };
}
