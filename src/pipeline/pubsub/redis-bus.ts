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
  /**
   * Stops watching the link (the subscriber's end at shutdown is then no outage: no warning, no
   * `lost`), leaves the streams still joined and takes the engine's listeners off the connection.
   * The connections stay open: their owner (`start/clients.ts`) closes them, after this. Close the
   * channel hub, which shares the engine, first. Idempotent.
   */
  close(): Promise<void>;
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
  const { subscriber } = options;
  // The engine adds its message listeners to the connection and keeps no handle on them: told
  // apart from the others' by what was there before, so `close` can take them off.
  const engineEvents = ['message', 'pmessage'] as const;
  const earlier = new Set(engineEvents.flatMap((event) => subscriber.listeners(event)));
  const pubsub = new RedisPubSub({
    subscriber,
    publisher: options.publisher,
    // Frames are not JSON; hand them over as text and parse them here.
    deserializer: (buffer) => buffer.toString('utf8'),
  });
  const engineListeners = engineEvents.flatMap((event) =>
    subscriber
      .listeners(event)
      .filter((listener) => !earlier.has(listener))
      .map((listener) => ({ event, listener: listener as (...args: unknown[]) => void })),
  );

  const watchers = new Set<BusLinkListener>();
  /** Subscription ids of the streams joined and not yet left. */
  const joined = new Set<number>();
  let lost = false;
  let closed = false;
  const onClose = () => {
    if (lost || closed) return;
    lost = true;
    logger.warn('live channel connection lost; holding live events until the log is caught up');
    for (const watcher of watchers) watcher.lost();
  };
  const onReady = () => {
    if (!lost || closed) return;
    // ioredis emits 'ready' before it re-subscribes; a PING queued after the SUBSCRIBEs answers
    // only once they are confirmed, so the catch-up read cannot miss an event in between.
    setImmediate(() => {
      if (closed) return;
      subscriber.ping().then(
        () => {
          if (closed || !lost || subscriber.status !== 'ready') return;
          lost = false;
          logger.info('live channel connection recovered; catching up from the log');
          for (const watcher of watchers) watcher.recovered();
        },
        (error: unknown) => {
          if (!closed) logger.warn({ err: error }, 'live channel connection lost again before catching up');
        },
      );
    });
  };
  subscriber.on('close', onClose);
  subscriber.on('ready', onReady);

  const leave = (id: number) => {
    if (joined.delete(id)) pubsub.unsubscribe(id);
  };

  return {
    pubsub,
    async join(stream, listener) {
      if (closed) throw new Error('redis bus: join() after close()');
      const channel = streamKeys(prefix, stream).live;
      const id = await pubsub.subscribe<string>(channel, (frame) => {
        const event = parseEventFrame(frame);
        if (event) listener(event);
        else logger.warn({ channel }, 'malformed live frame ignored');
      });
      joined.add(id);
      // Confirmed after a close: left at once, as close left the others.
      if (closed) leave(id);
      return () => leave(id);
    },
    watch(watcher) {
      watchers.add(watcher);
      return () => watchers.delete(watcher);
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      subscriber.off('close', onClose);
      subscriber.off('ready', onReady);
      watchers.clear();
      for (const id of [...joined]) leave(id);
      for (const { event, listener } of engineListeners) subscriber.off(event, listener);
      logger.debug('live bus closed');
      return Promise.resolve();
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
