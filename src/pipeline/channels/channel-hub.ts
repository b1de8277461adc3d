import { createBoundedQueue, type BoundedQueue } from '../bounded-queue.ts';
import { scopeKey, type Scope } from '../scope.ts';

/**
 * Raw channel broadcast (seed 000, "Path 3: Socket Service"): delivered to the channel's current
 * members and not logged — the at-most-once path, unlike topics, which are resumable.
 */
export interface ChannelMessage {
  readonly channel: string;
  readonly event: string;
  readonly data: unknown;
}

export interface ChannelHub {
  /** Delivers to every member of `message.channel` in `scope`; returns how many received it. */
  broadcast(scope: Scope, message: ChannelMessage): number;
  /** Joins a channel; leaving is `return()` on the iterator. */
  join(scope: Scope, channel: string): AsyncIterableIterator<ChannelMessage>;
  /** Members across all channels, for metrics. */
  memberCount(): number;
}

export interface ChannelHubOptions {
  /** Messages a member may have undelivered before it is failed. @default 1000 */
  readonly memberQueueCapacity?: number;
}

/** The in-process hub: channels keyed by scope, then by name. */
export function createChannelHub(options: ChannelHubOptions = {}): ChannelHub {
  const capacity = options.memberQueueCapacity ?? 1000;
  const channels = new Map<string, Set<BoundedQueue<ChannelMessage>>>();
  let members = 0;

  return {
    broadcast(scope, message) {
      const queues = channels.get(channelKey(scope, message.channel));
      if (!queues) return 0;
      let delivered = 0;
      for (const queue of queues) if (queue.push(message)) delivered += 1;
      return delivered;
    },
    join(scope, channel) {
      const key = channelKey(scope, channel);
      let queues = channels.get(key);
      if (!queues) {
        queues = new Set();
        channels.set(key, queues);
      }
      const joined = queues;
      const queue = createBoundedQueue<ChannelMessage>({
        capacity,
        onClose: () => {
          joined.delete(queue);
          members -= 1;
          if (joined.size === 0 && channels.get(key) === joined) channels.delete(key);
        },
      });
      joined.add(queue);
      members += 1;
      return queue;
    },
    memberCount: () => members,
  };
}

function channelKey(scope: Scope, channel: string): string {
  return `${scopeKey(scope)}|${channel}`;
}
