import type { RedisPubSub } from 'graphql-redis-subscriptions';
import type { Redis } from 'ioredis';
import { ErrorCode, faultOf, TributaryError } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import type { ChannelMessage, ChannelTransport } from './channel-hub.ts';

export interface RedisChannelTransportOptions {
  /** The engine the event bus subscribes with: one SUBSCRIBE connection for both. */
  readonly pubsub: RedisPubSub;
  readonly publisher: Redis;
  /** @default 'trib:' */
  readonly keyPrefix?: string;
  /** Where malformed frames and failed deliveries are told. */
  readonly logger: Logger;
}

/** Channels across instances over Redis pub/sub. Frames: `C<message JSON>`. */
export function createRedisChannelTransport(options: RedisChannelTransportOptions): ChannelTransport {
  const prefix = options.keyPrefix ?? 'trib:';
  const logger = componentLogger(options.logger, 'redis-channels');
  // The hash tag keeps a channel in one slot under sharded pub/sub, like the streams.
  const channelName = (key: string) => `${prefix}{${key}}:channel`;
  const subscriber = () => options.pubsub.getSubscriber();
  // The subscriber connection queues commands while it is away (it must, to re-subscribe the
  // bus), without bound: a command sent now would wait there until Redis is back, and the next
  // join's would pile up behind it. Refused at once instead; the member retries.
  /** The PING asked for the joins waiting now. */
  let pinging: Promise<void> | undefined;
  const assertConnected = () => {
    if (subscriber().status !== 'ready') {
      throw new TributaryError(ErrorCode.UNAVAILABLE, 'Channels are unavailable right now (no connection to Redis); retry shortly');
    }
  };
  return {
    async publish(key, message) {
      await options.publisher.publish(channelName(key), `C${JSON.stringify(message)}`);
    },
    async subscribe(key, deliver) {
      assertConnected();
      const channel = channelName(key);
      const id = await options.pubsub.subscribe<string>(channel, (frame) => {
        const message = parseChannelFrame(frame);
        if (message === undefined) {
          // Not ours or corrupted (another version's frame, a foreign publisher): channels are
          // at-most-once, so it is skipped, but told.
          logger.warn({ channel }, 'malformed channel frame ignored');
          return;
        }
        // A fault while delivering is the server's own, not the frame's: logged as one. Caught here
        // all the same, or it would stop the pub/sub engine's other listeners of this frame and
        // surface inside the Redis connection's reply handling.
        try {
          // The message's JSON as it travelled (after the `C`): its size, for analytics.
          deliver(message, frame.length - 1);
        } catch (error) {
          logger.error({ err: error, fault: faultOf(error), channel }, 'channel message not delivered');
        }
      });
      return () => options.pubsub.unsubscribe(id);
    },
    async ready() {
      assertConnected();
      // Answered in order on the connection that carries the SUBSCRIBEs: after a reconnect, only
      // once those ioredis replays are confirmed; and only by a Redis that still answers, which
      // an open socket alone does not show. Joins meanwhile share the PING in flight: a burst of
      // them (a reconnect storm) sends one, not one each.
      pinging ??= subscriber()
        .ping()
        .then(() => undefined)
        .finally(() => (pinging = undefined));
      await pinging;
    },
  };
}

/** `C<message JSON>` → the message; undefined for a frame that is not one. */
export function parseChannelFrame(frame: unknown): ChannelMessage | undefined {
  if (typeof frame !== 'string' || frame[0] !== 'C') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame.slice(1));
  } catch {
    return undefined;
  }
  return isChannelMessage(parsed) ? parsed : undefined;
}

function isChannelMessage(value: unknown): value is ChannelMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const { channel, event } = value as Record<string, unknown>;
  return typeof channel === 'string' && typeof event === 'string';
}
