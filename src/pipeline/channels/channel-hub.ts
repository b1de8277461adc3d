import { ErrorCode, isTributaryError, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { AnalyticsRecorder } from '../analytics/recorder.ts';
import { createBoundedQueue, type BoundedQueue } from '../bounded-queue.ts';
import { within } from '../coordination/within.ts';
import type { Scope } from '../scope.ts';
import { analyticsKeyOf, channelKey, isPresenceEvent, type ChannelMember, type ChannelMessage, type MemberInput } from './channel-message.ts';
import { createMemoryPresence, type PresenceList, type PresenceStore } from './presence.ts';

export type { ChannelMember, ChannelMessage, MemberInput } from './channel-message.ts';
export type { PresenceList } from './presence.ts';

export interface JoinOptions {
  /** Who joins (principal and socket): listed in the channel's presence and announced. Unlisted when absent. */
  readonly member?: MemberInput;
  /** Whether this member receives the channel's `presence.joined` / `presence.left` messages. @default false */
  readonly presence?: boolean;
}

export interface ChannelHub {
  /**
   * Sends to every member of `message.channel` in `scope`, on every instance.
   * @throws TributaryError UNAVAILABLE when the transport cannot send it (Redis away): retry.
   */
  broadcast(scope: Scope, message: ChannelMessage): Promise<void>;
  /**
   * Joins a channel; resolves once messages sent from now on will arrive (and, with
   * `options.member`, once it is listed and announced). Leave with `return()`: it is then taken
   * off the list and announced as left.
   * @throws TributaryError UNAVAILABLE when the transport fails, is not ready (even when the
   * channel is already subscribed here), or has not confirmed within `joinTimeoutMs`, or when
   * presence cannot be written: retry.
   */
  join(scope: Scope, channel: string, options?: JoinOptions): Promise<AsyncIterableIterator<ChannelMessage>>;
  /**
   * The channel's listed members now — every instance's with Redis —, the first `first` in the
   * order they joined, and how many. @throws TributaryError UNAVAILABLE when presence cannot be read.
   */
  members(scope: Scope, channel: string, first: number): Promise<PresenceList>;
  /** Members in this process across all channels. */
  memberCount(): number;
  /** Waits for the presence updates in flight, then closes presence (this instance's members leave it). Idempotent. */
  close(): Promise<void>;
}

/** How messages travel between instances (Redis pub/sub), or within one (memory). */
export interface ChannelTransport {
  /** Rejects when the message cannot be sent; the hub answers UNAVAILABLE for anything but a TributaryError. */
  publish(key: string, message: ChannelMessage): Promise<void>;
  /**
   * Resolves once subscribed; returns the function that unsubscribes. Rejects (or never settles)
   * when it cannot subscribe: the hub answers UNAVAILABLE, and unsubscribes a late success.
   * `deliver` gets the size of the message as it travelled (its JSON, for analytics) when known.
   */
  subscribe(key: string, deliver: (message: ChannelMessage, bytes?: number) => void): Promise<() => void>;
  /**
   * Resolves once the transport is confirmed to deliver to subscriptions it already holds; asked
   * by a join that reuses one. Rejects (or never settles) like `subscribe`. @default always ready
   */
  ready?(): Promise<void>;
}

export interface ChannelHubOptions {
  /** @default an in-process transport */
  readonly transport?: ChannelTransport;
  /** Who is in each channel. @default this process's members, announced over `transport` */
  readonly presence?: PresenceStore;
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
  readonly metrics?: Pick<Metrics, 'channelMemberOverflows' | 'channelBroadcasts' | 'channelDeliveries' | 'channelMembers'>;
  /**
   * Counts a channel's traffic as a topic's (seed 000: "broadcastHook → MetricsUpdater →
   * HotTopicsAnalyzer"), under the topic `~channel:<name>`: a broadcast as an event of source
   * `socket` on the instance that sent it, its frames as deliveries on each instance with members
   * (no latency: a broadcast carries no timestamp). @default not counted
   */
  readonly analytics?: Pick<AnalyticsRecorder, 'routed' | 'delivered'> | undefined;
  /** Where a presence update that failed is told. @default not told */
  readonly logger?: Logger;
}

interface Member {
  readonly queue: BoundedQueue<ChannelMessage>;
  /** Receives presence messages. */
  readonly presence: boolean;
  /** Its entry in presence, once listed. */
  listed: ChannelMember | undefined;
  /** Its queue closed: it left. */
  gone: boolean;
}

interface Channel {
  readonly members: Set<Member>;
  /** Resolves to the transport's unsubscribe once this process listens on the channel. */
  readonly subscribed: Promise<() => void>;
  /** The channel's analytics topic key, made once. */
  readonly topicKey: string;
}

export function createChannelHub(options: ChannelHubOptions = {}): ChannelHub {
  const capacity = options.memberQueueCapacity ?? 1000;
  const joinTimeoutMs = options.joinTimeoutMs ?? 5000;
  const transport = options.transport ?? createMemoryChannelTransport();
  const { metrics, analytics, logger } = options;
  const presence = options.presence ?? createMemoryPresence({ announce: (key, message) => transport.publish(key, message) });
  const channels = new Map<string, Channel>();
  /** Presence updates in flight, awaited by `close`. */
  const inFlight = new Set<Promise<void>>();
  let members = 0;
  let closing: Promise<void> | undefined;

  const hold = (work: Promise<unknown>, failure?: string) => {
    const held: Promise<void> = work
      .then(
        () => undefined,
        (error: unknown) => void (failure && logger?.warn({ err: error }, failure)),
      )
      .finally(() => inFlight.delete(held));
    inFlight.add(held);
  };

  // The hot path: a loop over the channel's members, a counter added to per message — nothing
  // allocated per member.
  const deliver = (channel: Channel, message: ChannelMessage, bytes: number | undefined) => {
    const announcement = isPresenceEvent(message.event);
    let delivered = 0;
    for (const member of channel.members) {
      if (announcement && !member.presence) continue;
      const pushed = member.queue.push(message);
      if (pushed === 'accepted') delivered += 1;
      else if (pushed === 'overflowed') metrics?.channelMemberOverflows.inc();
    }
    if (delivered === 0) return;
    metrics?.channelDeliveries.inc(delivered);
    analytics?.delivered(channel.topicKey, delivered, bytes ?? JSON.stringify(message).length, undefined);
  };

  const leave = (key: string, channel: Channel, member: Member) => {
    members -= 1;
    metrics?.channelMembers.dec();
    member.gone = true;
    channel.members.delete(member);
    if (member.listed) hold(presence.remove(key, member.listed), 'channel member not taken off presence');
    if (channel.members.size > 0 || channels.get(key) !== channel) return;
    channels.delete(key);
    void channel.subscribed.then((unsubscribe) => unsubscribe(), () => undefined);
  };

  return {
    async broadcast(scope, message) {
      const key = channelKey(scope, message.channel);
      try {
        await transport.publish(key, message);
      } catch (error) {
        throw asUnavailable(error);
      }
      metrics?.channelBroadcasts.inc();
      analytics?.routed(channels.get(key)?.topicKey ?? analyticsKeyOf(key), 'socket');
    },
    async join(scope, name, joinOptions = {}) {
      const key = channelKey(scope, name);
      let channel = channels.get(key);
      const reused = channel !== undefined;
      if (!channel) {
        const created: Channel = {
          members: new Set(),
          subscribed: transport.subscribe(key, (message, bytes) => deliver(created, message, bytes)),
          topicKey: analyticsKeyOf(key),
        };
        channel = created;
        channels.set(key, channel);
      }
      const joined = channel;
      const member: Member = {
        presence: joinOptions.presence === true,
        listed: undefined,
        gone: false,
        queue: createBoundedQueue<ChannelMessage>({ capacity, onClose: () => leave(key, joined, member) }),
      };
      joined.members.add(member);
      members += 1;
      metrics?.channelMembers.inc();
      try {
        // A subscription confirmed once may since have lost its connection: a join that reuses it
        // asks the transport again, or it would believe itself live while broadcasts pass it by,
        // and its answer would tell whether someone else here holds the channel.
        const confirmed: Promise<unknown> = reused ? Promise.all([joined.subscribed, transport.ready?.()]) : joined.subscribed;
        await within(confirmed, joinTimeoutMs, `channel not confirmed within ${joinTimeoutMs} ms`);
        if (joinOptions.member) {
          // Listed once subscribed: the member's own `presence.joined` reaches it too.
          const listing = presence.add(key, joinOptions.member);
          hold(listing);
          const listed = await listing;
          // Gone meanwhile (its socket closed): off the list again, announced as left.
          if (listed && member.gone) hold(presence.remove(key, listed), 'channel member not taken off presence');
          else member.listed = listed;
        }
      } catch (error) {
        // The last member to go leaves the channel: a subscription that lands later is undone
        // then (`onClose`), and the next join subscribes afresh instead of inheriting a failure.
        await member.queue.return();
        throw asUnavailable(error);
      }
      return member.queue;
    },
    async members(scope, name, first) {
      try {
        return await presence.list(channelKey(scope, name), first);
      } catch (error) {
        throw asUnavailable(error);
      }
    },
    memberCount: () => members,
    close() {
      closing ??= (async () => {
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        // At shutdown: told, not thrown — what is left is swept once this instance's heartbeat expires.
        await presence.close().catch((error: unknown) => logger?.warn({ err: error }, 'channel presence not closed'));
      })();
      return closing;
    },
  };
}

/** Channels within one process. */
function createMemoryChannelTransport(): ChannelTransport {
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
