import type { RedisPubSub } from 'graphql-redis-subscriptions';
import type { Redis } from 'ioredis';
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { ChannelMessage, ChannelTransport } from './channel-hub.ts';

export interface RedisChannelTransportOptions {
  /** The engine the event bus subscribes with: one SUBSCRIBE connection for both. */
  readonly pubsub: RedisPubSub;
  readonly publisher: Redis;
  /** @default 'trib:' */
  readonly keyPrefix?: string;
}

/** Channels across instances over Redis pub/sub. Frames: `C<message JSON>`. */
export function createRedisChannelTransport(options: RedisChannelTransportOptions): ChannelTransport {
  const prefix = options.keyPrefix ?? 'trib:';
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
      const id = await options.pubsub.subscribe<string>(channelName(key), (frame) => {
        if (typeof frame !== 'string' || frame[0] !== 'C') return;
        try {
          deliver(JSON.parse(frame.slice(1)) as ChannelMessage);
        } catch {
          // Not ours or corrupted: channels are at-most-once, skip it.
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
