import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { Redis } from 'ioredis';
import { componentLogger, type Logger } from '../../logger.ts';
import { encodeCursor } from '../log/cursor.ts';
import { isUnplacedEvent, type RealtimeEvent } from '../events/envelope.ts';
import { streamKeys } from '../redis-keys.ts';
import type { BusLinkListener, EventBus } from './event-bus.ts';

export interface RedisBusOptions {
  /** A connection of its own: once it SUBSCRIBEs it can run nothing else. */
  readonly subscriber: Redis;
  /** A command connection (graphql-redis-subscriptions wants one; this bus never publishes on it). */
  readonly publisher: Redis;
  readonly logger: Logger;
  /** @default 'trib:' */
  readonly keyPrefix?: string;
}

export interface RedisBus extends EventBus {
  /** The pub/sub engine, shared with the channel hub so one connection carries both. */
  readonly pubsub: RedisPubSub;
}

/**
 * The live side across instances: one SUBSCRIBE per stream per process, however many
 * subscribers (graphql-redis-subscriptions counts references). Frames are published by the
 * log's append script; ioredis re-subscribes after a reconnect, and `watch` tells the dispatcher
 * when to hold live events and when to read what it missed from the log.
 */
export function createRedisBus(options: RedisBusOptions): RedisBus {
  const prefix = options.keyPrefix ?? 'trib:';
  const logger = componentLogger(options.logger, 'redis-bus');
  const pubsub = new RedisPubSub({
    subscriber: options.subscriber,
    publisher: options.publisher,
    // Frames are not JSON; hand them over as text and parse them here.
    deserializer: (buffer) => buffer.toString('utf8'),
  });

  const watchers = new Set<BusLinkListener>();
  let lost = false;
  options.subscriber.on('close', () => {
    if (lost) return;
    lost = true;
    logger.warn('live channel connection lost; holding live events until the log is caught up');
    for (const watcher of watchers) watcher.lost();
  });
  options.subscriber.on('ready', () => {
    if (!lost) return;
    // ioredis emits 'ready' before it re-subscribes; a PING queued after the SUBSCRIBEs answers
    // only once they are confirmed, so the catch-up read cannot miss an event in between.
    setImmediate(() => {
      options.subscriber.ping().then(
        () => {
          if (!lost || options.subscriber.status !== 'ready') return;
          lost = false;
          logger.info('live channel connection recovered; catching up from the log');
          for (const watcher of watchers) watcher.recovered();
        },
        (error: unknown) => logger.warn({ err: error }, 'live channel connection lost again before catching up'),
      );
    });
  });

  return {
    pubsub,
    async join(stream, listener) {
      const channel = streamKeys(prefix, stream).live;
      const id = await pubsub.subscribe<string>(channel, (frame) => {
        const event = parseEventFrame(frame);
        if (event) listener(event);
        else logger.warn({ channel }, 'malformed live frame ignored');
      });
      return () => pubsub.unsubscribe(id);
    },
    watch(watcher) {
      watchers.add(watcher);
      return () => watchers.delete(watcher);
    },
  };
}

/**
 * `E<epoch>\n<id>\n<event JSON>` → the event with its cursor; undefined for a frame that is not
 * one (not JSON, or JSON without the fields of an event: `isUnplacedEvent`).
 */
export function parseEventFrame(frame: unknown): RealtimeEvent | undefined {
  if (typeof frame !== 'string' || frame[0] !== 'E') return undefined;
  const first = frame.indexOf('\n');
  const second = frame.indexOf('\n', first + 1);
  if (first === -1 || second === -1) return undefined;
  let unplaced: unknown;
  try {
    unplaced = JSON.parse(frame.slice(second + 1));
  } catch {
    return undefined;
  }
  if (!isUnplacedEvent(unplaced)) return undefined;
  return { ...unplaced, cursor: encodeCursor(frame.slice(1, first), frame.slice(first + 1, second)) };
}
