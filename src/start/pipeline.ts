/**
 * The pipeline every role shares: the event log (the resumable history of every stream), the live
 * bus and channels, and the router every source hands its events to. Redis Streams and pub/sub
 * when REDIS_URL is set (shared by every instance); an in-memory ring and bus otherwise (one process).
 */
import { createChannelHub, type ChannelHub } from '../pipeline/channels/channel-hub.ts';
import { createRedisChannelTransport } from '../pipeline/channels/redis-channel-transport.ts';
import type { EventLog } from '../pipeline/log/event-log.ts';
import { createMemoryLog } from '../pipeline/log/memory-log.ts';
import { createRedisLog } from '../pipeline/log/redis-log.ts';
import type { EventBus } from '../pipeline/pubsub/event-bus.ts';
import { createMemoryBus } from '../pipeline/pubsub/memory-bus.ts';
import { createRedisBus } from '../pipeline/pubsub/redis-bus.ts';
import { createEventRouter, type EventRouter } from '../pipeline/router/event-router.ts';
import type { Disposable, StartContext } from './subsystem.ts';

export interface Pipeline extends Disposable {
  readonly log: EventLog;
  readonly bus: EventBus;
  readonly channels: ChannelHub;
  readonly router: EventRouter;
}

export function startPipeline({ config, clients, metrics, logger }: StartContext): Pipeline {
  const retention = { maxEvents: config.events.logMaxEvents, maxAgeMs: config.events.logMaxAgeMs };
  const keyPrefix = config.redisKeyPrefix;
  let log: EventLog;
  let bus: EventBus;
  let channels: ChannelHub;
  if (clients.redis === undefined) {
    const memoryBus = createMemoryBus();
    log = createMemoryLog({ retention, publish: (stream, event) => memoryBus.deliver(stream, event) });
    bus = memoryBus;
    channels = createChannelHub({ metrics });
  } else {
    const { command, subscriber } = clients.redis;
    const redisBus = createRedisBus({ subscriber, publisher: command, logger, keyPrefix });
    log = createRedisLog({ redis: command, retention, keyPrefix });
    bus = redisBus;
    channels = createChannelHub({
      transport: createRedisChannelTransport({ pubsub: redisBus.pubsub, publisher: command, keyPrefix }),
      metrics,
    });
  }
  const router = createEventRouter({ log, logger, metrics });
  return { log, bus, channels, router, dispose: () => log.close() };
}
