/**
 * Webhook delivery in a worker process: the BullMQ worker of the `webhook-delivery` queue (with
 * Redis; any number of processes) or the embedded loop (without), both attempting deliveries
 * through one deliverer — signed, gated per endpoint, retried, dead-lettered. Also measures each
 * endpoint's backlog for `/metrics` (and bounds it: backlog-bound.ts), counts each endpoint's
 * attempts for the failure-rate alert (attempt-tallies.ts), prunes the delivery log past its
 * retention and forgets the previous secrets of endpoints whose rotation overlap has ended.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import { componentLogger, type Logger } from '../logger.ts';
import type { Metrics, WebhookBacklogSample } from '../metrics.ts';
import type { AnalyticsRecorder } from '../pipeline/analytics/recorder.ts';
import type { EventRouter } from '../pipeline/router/event-router.ts';
import { boundBacklogs } from '../pipeline/webhooks/backlog-bound.ts';
import { pacedTask } from '../pipeline/coordination/paced-task.ts';
import { createAttemptTallies } from '../pipeline/webhooks/attempt-tallies.ts';
import { startBullmqDelivery } from '../pipeline/webhooks/bullmq-delivery.ts';
import { MAX_IDS_PER_JOB } from '../pipeline/webhooks/bullmq-scheduler.ts';
import { endpointBacklog, pruneWebhookLog } from '../pipeline/webhooks/delivery-log.ts';
import { startEmbeddedDelivery } from '../pipeline/webhooks/embedded-delivery.ts';
import { createMemoryGate } from '../pipeline/webhooks/endpoint-gate.ts';
import { createRedisGate } from '../pipeline/webhooks/redis-endpoint-gate.ts';
import { forgetExpiredSecrets } from '../pipeline/webhooks/endpoint-store.ts';
import { DEFAULT_RETRY_POLICY } from '../pipeline/webhooks/retry-schedule.ts';
import { createSlowEndpoints } from '../pipeline/webhooks/slow-endpoints.ts';
import { createWebhookDeliverer } from '../pipeline/webhooks/webhook-deliverer.ts';
import type { WebhookFanIn } from '../pipeline/webhooks/webhook-fan-in.ts';
import { createWebhookHttpClient } from '../pipeline/webhooks/webhook-http.ts';

export interface WebhookDeliveryOptions {
  readonly config: Config;
  readonly db: Database;
  /** The process's command connection (per-endpoint limits), when Redis is configured. */
  readonly redis: Redis | undefined;
  readonly router: EventRouter;
  readonly webhooks: WebhookFanIn;
  readonly logger: Logger;
  readonly metrics: Pick<Metrics, 'webhookAttempts' | 'webhookAttemptSeconds' | 'webhookDeadLetters' | 'sample'>;
  /** Counts each attempt's outcome per topic. @default no analytics */
  readonly analytics?: Pick<AnalyticsRecorder, 'webhookAttempt'> | undefined;
}

/**
 * An attempt still waiting for its receiver after this (or half the timeout, when shorter) is slow,
 * in ms: receivers are told to answer within seconds, and do. Slow attempts go to a share of their
 * own, half the size of WEBHOOK_CONCURRENCY (`slow-endpoints.ts`).
 */
const SLOW_AFTER_MS = 2_000;

/** A disabled endpoint's deliveries taken up at once, to be put back together (as many as a queue job names). */
const DISABLED_BATCH = MAX_IDS_PER_JOB;

/**
 * The backlog count reads every pending delivery (~1 µs a row): a few ms for thousands, seconds for
 * millions — behind a receiver down for a day, say (measured on Postgres 15: 190 ms at 200,000
 * pending, 2.1–2.2 s at 2,000,000). After a count of d ms it waits this many times d before the
 * next (at least the housekeeping's period, `WEBHOOK_HOUSEKEEPING_INTERVAL_MS`): at most a
 * twentieth of a backend's time however large the backlog grows. At 2,000,000 pending the figures
 * and the backlog bound are then ~45 s old, against 5 s (the default period) while it is small.
 */
const BACKLOG_COUNT_REST = 20;
/** Rows of each log table deleted by one statement. */
const PRUNE_BATCH = 1_000;
/**
 * Longest a pruning pass goes on taking batches, in ms. Measured at 1,000,000 deliveries and as
 * many attempts: a batch of each took 5–10 ms, and a pass deleted 45,000–84,000 of each — one
 * process keeps the retention at ~7,500 deliveries/s, where one batch a pass kept it at 200/s.
 * The backlog figures are then at most ~6 s old.
 */
const PRUNE_BUDGET_MS = 1_000;

export interface WebhookDelivery {
  /**
   * Stops delivering, within half of `budgetMs` — what is left of the shutdown's time, in ms
   * (@default SHUTDOWN_TIMEOUT_MS): attempts still in flight then are cut, and the BullMQ worker
   * waits no longer for Redis.
   */
  close(budgetMs?: number): Promise<void>;
}

export function startWebhookDelivery(options: WebhookDeliveryOptions): WebhookDelivery {
  const { config, db, webhooks } = options;
  const settings = config.webhooks;
  const logger = componentLogger(options.logger, 'webhooks');
  // A lease outlives the longest attempt, with room for recording it (`WEBHOOK_LEASE_MARGIN_MS`).
  const leaseMs = settings.timeoutMs * 2 + settings.leaseMarginMs;
  // As many connections to one receiver as attempts this process makes at once (each endpoint's gate
  // bounds its own share): a queue inside the HTTP client would only add latency.
  const slow = createSlowEndpoints({ slowAfterMs: Math.min(SLOW_AFTER_MS, settings.timeoutMs / 2), capacity: Math.max(1, Math.ceil(settings.concurrency / 2)) });
  // As many connections to one host as attempts can be in flight — the slow share's included: a
  // hanging endpoint keeps its connections, and another endpoint on the same host needs its own.
  const http = createWebhookHttpClient({ allowPrivateTargets: settings.allowPrivateTargets, connectionsPerOrigin: settings.concurrency + slow.capacity });
  // Each endpoint's attempts and failures, for the failure-rate alert (whichever process evaluates it).
  const tallies = createAttemptTallies({ db, logger });
  // Each endpoint's limits; with Redis shared by every process, its leases kept here a moment between attempts.
  const gate = options.redis ? createRedisGate({ redis: options.redis, keyPrefix: config.redisKeyPrefix, leaseMs, logger }) : createMemoryGate();
  const deliverer = createWebhookDeliverer({
    db,
    endpoints: webhooks.endpoints,
    http,
    gate,
    router: options.router,
    policy: { ...DEFAULT_RETRY_POLICY, windowMs: settings.retryWindowMs, fastBaseMs: settings.retryBaseMs },
    timeoutMs: settings.timeoutMs,
    disableAfterMs: settings.disableAfterMs,
    logger,
    metrics: options.metrics,
    analytics: options.analytics,
    slow,
    tallies,
  });
  const { scheduler } = webhooks;
  // A slow endpoint is held to what the slow share leaves it, as to its maxConcurrency. A disabled
  // one's deliveries are only put back, not sent: up to a batch of them at once, put back together
  // (its gate still holds an attempt to its maxConcurrency, should an enable not be cached yet).
  const maxConcurrencyOf = (endpointId: string) => {
    const endpoint = webhooks.endpoints.byId(endpointId);
    return endpoint?.enabled === false ? DISABLED_BATCH : slow.limit(endpointId, endpoint?.maxConcurrency);
  };
  const worker: { close(budgetMs?: number): Promise<void> } =
    scheduler.kind === 'bullmq'
      ? startBullmqDelivery({
          redisUrl: config.redisUrl!,
          prefix: `${config.redisKeyPrefix}bull`,
          db,
          deliverer,
          scheduler: scheduler.queue,
          concurrency: settings.concurrency,
          leaseMs,
          maxConcurrencyOf,
          reconcileMs: settings.reconcileIntervalMs,
          logger,
        })
      : startEmbeddedDelivery({ db, deliverer, wake: scheduler.wake, concurrency: settings.concurrency, leaseMs, maxConcurrencyOf, logger });

  let backlogs: WebhookBacklogSample[] = [];
  const stopSampling = options.metrics.sample({ webhookBacklogs: () => backlogs });
  const countBacklogs = pacedTask(() => endpointBacklog(db), { restFactor: BACKLOG_COUNT_REST });
  // Aborted on close: a pruning pass stops after its batch under way, and no run follows.
  const closing = new AbortController();
  const housekeeping = async () => {
    // Resting after a long count (a large backlog): the figures and marks of the last one stand.
    const found = await countBacklogs();
    if (found) {
      const measuredAt = Date.now();
      backlogs = found.map(({ endpointId, app, env, pending, oldestPendingSeconds }) => ({ endpoint: endpointId, app, env, pending, oldestPendingSeconds, measuredAt }));
      await boundBacklogs({ db, endpoints: webhooks.endpoints, router: options.router, maxPending: settings.maxPendingPerEndpoint, logger }, found);
    }
    // One statement over the endpoints (rows an admin adds: few), before the longer pruning; it
    // changes a row only once a rotation's overlap has ended.
    const forgotten = await forgetExpiredSecrets(db);
    if (forgotten > 0) logger.debug({ endpoints: forgotten }, 'expired webhook secrets cleared');
    const pruned = await pruneWebhookLog(db, settings.logRetentionMs, { batchSize: PRUNE_BATCH, budgetMs: PRUNE_BUDGET_MS, signal: closing.signal });
    if (pruned.deliveries + pruned.attempts > 0) logger.debug(pruned, 'webhook log pruned');
  };
  // Backlog figures, log pruning and expired secrets' clearing: each run is scheduled
  // `WEBHOOK_HOUSEKEEPING_INTERVAL_MS` after the one before has ended: a slow run (a large log, a
  // busy database) is never overlapped by the next, which would hold more of the connections that
  // claims and records need.
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const schedule = () => {
    timer = setTimeout(() => {
      running = housekeeping()
        .catch((error: unknown) => logger.warn({ err: error }, 'webhook housekeeping failed'))
        .finally(() => {
          running = undefined;
          if (!closing.signal.aborted) schedule();
        });
    }, settings.housekeepingIntervalMs);
    timer.unref();
  };
  schedule();
  logger.info({ mode: scheduler.kind }, 'webhook delivery started');

  return {
    async close(budgetMs = config.shutdownTimeoutMs) {
      // Attempts in flight get half the shutdown's time to end — counted from now, whatever else
      // stopping waits for; then they are cut (recorded as failed, due again at once, for this
      // process's successor) so that the process still stops cleanly — its leases released, its
      // connections closed — within SHUTDOWN_TIMEOUT_MS. The BullMQ worker's waits on Redis end
      // then too, at the latest (a Redis away held them 10 s, past the default shutdown's time).
      const deadline = performance.now() + budgetMs / 2;
      const cut = setTimeout(() => {
        logger.warn('webhook attempts still in flight at shutdown: cut, to be retried');
        http.abort().catch(() => undefined);
      }, budgetMs / 2);
      cut.unref();
      closing.abort();
      clearTimeout(timer);
      try {
        await running;
        stopSampling();
        await worker.close(Math.max(0, deadline - performance.now()));
      } finally {
        clearTimeout(cut);
        // After the worker: the gate gives back what it keeps (a lease released after this goes straight back).
        await Promise.all([http.close(), tallies.close(), gate.close()]);
      }
    },
  };
}
