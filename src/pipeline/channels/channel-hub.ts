import { ErrorCode, isTributaryError, TributaryError } from '../../errors.ts';
import type { Metrics } from '../../metrics.ts';
import { createBoundedQueue, type BoundedQueue } from '../bounded-queue.ts';
import { within } from '../coordination/within.ts';
import { scopeKey, type Scope } from '../scope.ts';

/**
 * Raw channel broadcast (seed 000, "Path 3: Socket Service"): delivered to the channel's current
 * members on every instance, not logged, not resumable — the at-most-once path, unlike topics.
 */
export interface ChannelMessage {
  readonly channel: string;
  readonly event: string;
  readonly data: unknown;
}

export interface ChannelHub {
  /**
   * Sends to every member of `message.channel` in `scope`, on every instance.
   * @throws TributaryError UNAVAILABLE when the transport cannot send it (Redis away): retry.
   */
  broadcast(scope: Scope, message: ChannelMessage): Promise<void>;
  /**
   * Joins a channel; resolves once messages sent from now on will arrive. Leave with `return()`.
   * @throws TributaryError UNAVAILABLE when the transport fails, is not ready (even when the
   * channel is already subscribed here), or has not confirmed within `joinTimeoutMs`: retry.
   */
  join(scope: Scope, channel: string): Promise<AsyncIterableIterator<ChannelMessage>>;
  /** Members in this process across all channels. */
  memberCount(): number;
}

/** How messages travel between instances (Redis pub/sub), or within one (memory). */
export interface ChannelTransport {
  /** Rejects when the message cannot be sent; the hub answers UNAVAILABLE for anything but a TributaryError. */
  publish(key: string, message: ChannelMessage): Promise<void>;
  /**
   * Resolves once subscribed; returns the function that unsubscribes. Rejects (or never settles)
   * when it cannot subscribe: the hub answers UNAVAILABLE, and unsubscribes a late success.
   */
  subscribe(key: string, deliver: (message: ChannelMessage) => void): Promise<() => void>;
  /**
   * Resolves once the transport is confirmed to deliver to subscriptions it already holds; asked
   * by a join that reuses one. Rejects (or never settles) like `subscribe`. @default always ready
   */
  ready?(): Promise<void>;
}

export interface ChannelHubOptions {
  /** @default an in-process transport */
  readonly transport?: ChannelTransport;
  /**
   * Messages a member may have undelivered before it is failed with RATE_LIMITED (overflow
   * policy: the member leaves with an error it can act on — rejoin — never a silent drop); each
   * such failure is counted in `channelMemberOverflows`. @default 1000
   */
  readonly memberQueueCapacity?: number;
  /**
   * How long a join waits for the transport to subscribe before it fails with UNAVAILABLE, in
   * ms. A SUBSCRIBE sent just as the Redis link dies waits in the subscriber connection's queue
   * until Redis is back, however long that takes; the member is told to retry instead.
   * @default 5000
   */
  readonly joinTimeoutMs?: number;
  /** @default no metrics */
  readonly metrics?: Pick<Metrics, 'channelMemberOverflows'>;
}

interface Channel {
  readonly members: Set<BoundedQueue<ChannelMessage>>;
  /** Resolves to the transport's unsubscribe once this process listens on the channel. */
  readonly subscribed: Promise<() => void>;
}

export function createChannelHub(options: ChannelHubOptions = {}): ChannelHub {
  const capacity = options.memberQueueCapacity ?? 1000;
  const joinTimeoutMs = options.joinTimeoutMs ?? 5000;
  const transport = options.transport ?? createMemoryChannelTransport();
  const channels = new Map<string, Channel>();
  let members = 0;

  return {
    async broadcast(scope, message) {
      try {
        await transport.publish(keyOf(scope, message.channel), message);
      } catch (error) {
        throw asUnavailable(error);
      }
    },
    async join(scope, name) {
      const key = keyOf(scope, name);
      let channel = channels.get(key);
      const reused = channel !== undefined;
      if (!channel) {
        const created: Channel = {
          members: new Set(),
          subscribed: transport.subscribe(key, (message) => {
            for (const queue of created.members) {
              if (queue.push(message) === 'overflowed') options.metrics?.channelMemberOverflows.inc();
            }
          }),
        };
        channel = created;
        channels.set(key, channel);
      }
      const joined = channel;
      const queue = createBoundedQueue<ChannelMessage>({
        capacity,
        onClose: () => {
          members -= 1;
          joined.members.delete(queue);
          if (joined.members.size > 0 || channels.get(key) !== joined) return;
          channels.delete(key);
          void joined.subscribed.then((unsubscribe) => unsubscribe(), () => undefined);
        },
      });
      joined.members.add(queue);
      members += 1;
      try {
        // A subscription confirmed once may since have lost its connection: a join that reuses it
        // asks the transport again, or it would believe itself live while broadcasts pass it by,
        // and its answer would tell whether someone else here holds the channel.
        const confirmed: Promise<unknown> = reused ? Promise.all([joined.subscribed, transport.ready?.()]) : joined.subscribed;
        await within(confirmed, joinTimeoutMs, `channel not confirmed within ${joinTimeoutMs} ms`);
      } catch (error) {
        // The last member to go leaves the channel: a subscription that lands later is undone
        // then (`onClose`), and the next join subscribes afresh instead of inheriting a failure.
        await queue.return();
        throw asUnavailable(error);
      }
      return queue;
    },
    memberCount: () => members,
  };
}

/** Channels within one process. */
export function createMemoryChannelTransport(): ChannelTransport {
  const listeners = new Map<string, Set<(message: ChannelMessage) => void>>();
  return {
    publish(key, message) {
      for (const deliver of listeners.get(key) ?? []) deliver(message);
      return Promise.resolve();
    },
    subscribe(key, deliver) {
      let set = listeners.get(key);
      if (!set) {
        set = new Set();
        listeners.set(key, set);
      }
      const joined = set;
      joined.add(deliver);
      return Promise.resolve(() => {
        joined.delete(deliver);
        if (joined.size === 0) listeners.delete(key);
      });
    },
  };
}

/** A transport failure is the backing service's (Redis), not the server's: the caller may retry. */
function asUnavailable(cause: unknown): TributaryError {
  if (isTributaryError(cause)) return cause;
  return new TributaryError(ErrorCode.UNAVAILABLE, 'Channels are unavailable right now; retry shortly', { cause });
}

function keyOf(scope: Scope, channel: string): string {
  return `${scopeKey(scope)}|${channel}`;
}
