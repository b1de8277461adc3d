/**
 * The pipeline every role shares: the event log (the resumable history of every stream), the live
 * bus and channels (with their presence), and the router every source hands its events to. Redis Streams and pub/sub
 * when REDIS_URL is set (shared by every instance); an in-memory ring and bus otherwise (one process).
 * The router's webhook tap stores each routed event's deliveries and schedules them: BullMQ jobs
 * with Redis, a wake-up of the in-process delivery loop otherwise (the workers deliver). The
 * gateway emitter routes the sockets' lifecycle events, only those an endpoint selects.
 */
import { createChannelHub, type ChannelHub, type ChannelHubOptions } from '../pipeline/channels/channel-hub.ts';
import { createRedisChannelTransport } from '../pipeline/channels/redis-channel-transport.ts';
import { createRedisPresence } from '../pipeline/channels/redis-presence.ts';
import type { EventLog } from '../pipeline/log/event-log.ts';
import { createMemoryLog } from '../pipeline/log/memory-log.ts';
import { createRedisLog } from '../pipeline/log/redis-log.ts';
import type { EventBus } from '../pipeline/pubsub/event-bus.ts';
import { createMemoryBus } from '../pipeline/pubsub/memory-bus.ts';
import { createRedisBus, type RedisBus } from '../pipeline/pubsub/redis-bus.ts';
import { createEventRouter, type EventRouter } from '../pipeline/router/event-router.ts';
import { createBullmqScheduler } from '../pipeline/webhooks/bullmq-scheduler.ts';
import { createLocalWake } from '../pipeline/webhooks/delivery-scheduler.ts';
import { createEndpointCache } from '../pipeline/webhooks/endpoint-cache.ts';
import { createGatewayEmitter, type GatewayEmitter } from '../pipeline/webhooks/gateway-emitter.ts';
import { deliveryScheduler, type WebhookFanIn } from '../pipeline/webhooks/webhook-fan-in.ts';
import { createWebhookTap } from '../pipeline/webhooks/webhook-tap.ts';
import { createDeliveryStatistics } from '../pipeline/webhooks/delivery-statistics.ts';
import { startAnalytics, type Analytics } from './analytics.ts';
import type { Disposable, StartContext } from './subsystem.ts';
import { createCleanupStack } from '../cleanup-stack.ts';
import { componentLogger } from '../logger.ts';

export interface Pipeline extends Disposable {
  readonly log: EventLog;
  readonly bus: EventBus;
  readonly channels: ChannelHub;
  readonly router: EventRouter;
  readonly webhooks: WebhookFanIn;
  /** Gateway lifecycle events (connected, disconnected, subscribed, broadcast), for webhooks. */
  readonly gateway: GatewayEmitter;
  /** Per-topic analytics: the recorder (undefined when off), instance figures, the minute store. */
  readonly analytics: Analytics;
  /**
   * Runs `step` at shutdown right after the analytics' last push (the embedded workers' last
   * flush, which must see it). Steps run in order; one that fails is logged and the next still runs.
   */
  afterLastAnalyticsPush(step: () => Promise<void>): void;
}

export async function startPipeline(context: StartContext): Promise<Pipeline> {
  const { config, clients, metrics, logger } = context;
  const retention = { maxEvents: config.events.logMaxEvents, maxAgeMs: config.events.logMaxAgeMs };
  const keyPrefix = config.redisKeyPrefix;
  // Made in the reverse of the order they stop in: each is undone as it was made, also when a later
  // step of the start fails, and every undoing runs even when an earlier one fails.
  const cleanup = createCleanupStack(logger);
  try {
    let log: EventLog;
    let bus: EventBus;
    let redisBus: RedisBus | undefined;
    if (clients.redis === undefined) {
      const memoryBus = createMemoryBus();
      log = createMemoryLog({
        retention,
        maxBytes: config.events.logMaxBytes,
        maxStreams: config.events.logMaxStreams,
        logger: componentLogger(logger, 'memory-log'),
        publish: (stream, event) => memoryBus.deliver(stream, event),
      });
      bus = memoryBus;
    } else {
      const { command, subscriber } = clients.redis;
      redisBus = createRedisBus({ subscriber, publisher: command, logger, keyPrefix });
      const closing = redisBus;
      // Before the clients close the subscriber connection: its end is then no outage to warn of.
      cleanup.push('live bus', () => closing.close());
      log = createRedisLog({ redis: command, retention, keyPrefix, maxStreamBytes: config.events.logStreamMaxBytes });
      bus = redisBus;
    }
    const closingLog = log;
    cleanup.push('event log', () => closingLog.close());
    const statistics = createDeliveryStatistics({ db: clients.db, logger });
    cleanup.push('delivery statistics', () => statistics.close());
    const scheduler: WebhookFanIn['scheduler'] =
      config.redisUrl === undefined
        ? { kind: 'embedded', wake: createLocalWake() }
        : { kind: 'bullmq', queue: createBullmqScheduler({ redisUrl: config.redisUrl, prefix: `${keyPrefix}bull`, logger }) };
    cleanup.push('delivery scheduler', () => (scheduler.kind === 'bullmq' ? scheduler.queue : scheduler.wake).close());
    const endpoints = await createEndpointCache({ db: clients.db, refreshMs: config.webhooks.endpointRefreshMs, logger });
    cleanup.push('endpoint cache', () => Promise.resolve(endpoints.close()));
    // Run right after the analytics' last push (registered next, so undone just before this),
    // while the router and the database are still open.
    const afterLastPush: (() => Promise<void>)[] = [];
    cleanup.push('after the last analytics push', async () => {
      for (const step of afterLastPush.splice(0)) {
        await step().catch((error: unknown) => logger.error({ err: error }, 'shutdown step after the last analytics push failed'));
      }
    });
    // The last counts leave for the cluster's store, and (embedded) on to the database.
    const analytics = startAnalytics(context);
    cleanup.push('analytics', () => analytics.dispose());
    const fanIn: WebhookFanIn = { endpoints, scheduler, statistics };
    const tap = createWebhookTap({ db: clients.db, endpoints, scheduler: deliveryScheduler(fanIn), statistics, logger, maxBodyBytes: config.webhooks.maxBodyBytes });
    const router = createEventRouter({ log, logger, metrics, analytics: analytics.recorder, afterPlaced: (events) => tap.deliver(events) });
    const gateway = createGatewayEmitter({ router, endpoints, logger, metrics });
    // The sockets are closed by the time these run (the server stops first): their last events
    // finish routing, after their members' last presence updates.
    cleanup.push('gateway events', () => gateway.close());
    const channels = createChannelHub({ ...channelTransport(context, redisBus), metrics, analytics: analytics.recorder, logger: componentLogger(logger, 'channels') });
    cleanup.push('channels', () => channels.close());
    // Channel members are subscriptions too (the dashboard's, `tributary_subscriptions`).
    const stopSampling = metrics.sample({ subscriptions: () => channels.memberCount() });
    cleanup.push('channel sampling', () => Promise.resolve(stopSampling()));
    return {
      log,
      bus,
      channels,
      router,
      webhooks: fanIn,
      gateway,
      analytics,
      afterLastAnalyticsPush: (step) => void afterLastPush.push(step),
      dispose: () => cleanup.run(),
    };
  } catch (error) {
    await cleanup.run();
    throw error;
  }
}

/** Channels across instances over the bus's pub/sub engine, with presence in Redis; none (in-process) without Redis. */
function channelTransport({ config, clients, logger }: StartContext, redisBus: RedisBus | undefined): Pick<ChannelHubOptions, 'transport' | 'presence'> {
  if (clients.redis === undefined || redisBus === undefined) return {};
  const { command } = clients.redis;
  const keyPrefix = config.redisKeyPrefix;
  const transport = createRedisChannelTransport({ pubsub: redisBus.pubsub, publisher: command, keyPrefix, logger });
  // Presence heartbeats at the dashboard's tick: an instance's members go with it as its report does.
  const presence = createRedisPresence({ redis: command, keyPrefix, heartbeatMs: config.dashboardTickMs, announce: (key, message) => transport.publish(key, message), logger });
  return { transport, presence };
}
