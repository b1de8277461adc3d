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
import { createRedisBus } from '../pipeline/pubsub/redis-bus.ts';
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
   * flush, which must see it). Steps run in order; each handles its own failure.
   */
  afterLastAnalyticsPush(step: () => Promise<void>): void;
}

export async function startPipeline(context: StartContext): Promise<Pipeline> {
  const { config, clients, metrics, logger } = context;
  const retention = { maxEvents: config.events.logMaxEvents, maxAgeMs: config.events.logMaxAgeMs };
  const keyPrefix = config.redisKeyPrefix;
  let log: EventLog;
  let bus: EventBus;
  let channelTransport: Pick<ChannelHubOptions, 'transport' | 'presence'> = {};
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
    const redisBus = createRedisBus({ subscriber, publisher: command, logger, keyPrefix });
    log = createRedisLog({ redis: command, retention, keyPrefix });
    bus = redisBus;
    const transport = createRedisChannelTransport({ pubsub: redisBus.pubsub, publisher: command, keyPrefix, logger });
    // Presence heartbeats at the dashboard's tick: an instance's members go with it as its report does.
    const presence = createRedisPresence({ redis: command, keyPrefix, heartbeatMs: config.dashboardTickMs, announce: (key, message) => transport.publish(key, message), logger });
    channelTransport = { transport, presence };
  }
  const endpoints = await createEndpointCache({ db: clients.db, refreshMs: config.webhooks.endpointRefreshMs, logger });
  const analytics = startAnalytics(context);
  const channels = createChannelHub({ ...channelTransport, metrics, analytics: analytics.recorder, logger: componentLogger(logger, 'channels') });
  // Channel members are subscriptions too (the dashboard's, `tributary_subscriptions`).
  const stopSampling = metrics.sample({ subscriptions: () => channels.memberCount() });
  const scheduler: WebhookFanIn['scheduler'] =
    config.redisUrl === undefined
      ? { kind: 'embedded', wake: createLocalWake() }
      : { kind: 'bullmq', queue: createBullmqScheduler({ redisUrl: config.redisUrl, prefix: `${keyPrefix}bull`, logger }) };
  const fanIn: WebhookFanIn = { endpoints, scheduler, statistics: createDeliveryStatistics({ db: clients.db, logger }) };
  const tap = createWebhookTap({ db: clients.db, endpoints, scheduler: deliveryScheduler(fanIn), statistics: fanIn.statistics, logger, maxBodyBytes: config.webhooks.maxBodyBytes });
  const router = createEventRouter({ log, logger, metrics, analytics: analytics.recorder, afterPlaced: (events) => tap.deliver(events) });
  const gateway = createGatewayEmitter({ router, endpoints, logger, metrics });
  const afterLastPush: (() => Promise<void>)[] = [];
  return {
    log,
    bus,
    channels,
    router,
    webhooks: fanIn,
    gateway,
    analytics,
    afterLastAnalyticsPush: (step) => void afterLastPush.push(step),
    async dispose() {
      // The sockets are closed by now (the server stops first); their last events finish routing,
      // their members' last presence updates finish.
      stopSampling();
      await channels.close();
      await gateway.close();
      // Then the last counts leave for the cluster's store, and (embedded) on to the database
      // while the router and the database are still open.
      await analytics.dispose();
      for (const step of afterLastPush.splice(0)) await step();
      endpoints.close();
      await deliveryScheduler(fanIn).close();
      await fanIn.statistics.close();
      await log.close();
    },
  };
}
