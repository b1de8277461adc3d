/**
 * Where every instance's minute counts meet before the workers flush them: Redis (shared by the
 * cluster) or the memory of the one process (embedded). Instances push their drained counts every
 * few seconds; the cluster's count of a topic in a minute is the sum of the pushes, each instance
 * having counted only what happened on it — nothing is counted twice.
 */
import type { TopicCounts } from './topic-counts.ts';

/** One instance's counts of one minute since its last push. */
export interface PushBatch {
  /** Unique per batch: pushing the same batch again (after an ambiguous failure) adds nothing. */
  readonly id: string;
  /** Start of the minute, in ms since the epoch. */
  readonly minute: number;
  readonly topics: ReadonlyMap<string, TopicCounts>;
}

/** One environment's topics of a minute: what a reader of that environment asks for. */
export interface EnvironmentFilter {
  readonly app: string;
  readonly env: string;
  /** Keeps only some of the environment's topic keys (one tenant's); all of them when undefined. */
  readonly accept?: (topicKey: string) => boolean;
}

/** What a push learnt of the store. */
export interface PushReceipt {
  /**
   * The store's generation: the same until the store holds no minute (all written, or lost) — a
   * pusher that finds another than at its previous push knows that what it pushed since the workers
   * last wrote may be gone (`pusher.ts`). Undefined when the batch held nothing to push.
   */
  readonly generation: string | undefined;
}

export interface MinuteStore {
  readonly kind: 'redis' | 'memory';
  /** Adds a batch into its minute. */
  push(batch: PushBatch): Promise<PushReceipt>;
  /** Minutes holding counts, oldest first. */
  minutes(): Promise<number[]>;
  /**
   * A minute's counts summed over every push: one environment's (a reader's, which is sent
   * nothing of the others), or every topic of the minute when `environment` is undefined (the
   * flusher).
   */
  read(minute: number, environment?: EnvironmentFilter): Promise<Map<string, TopicCounts>>;
  /**
   * Forgets a minute once it is flushed. With `written` (what `read` gave and was written), only
   * those counts go: what was pushed in between stays, and the next flush finds it late.
   */
  remove(minute: number, written?: ReadonlyMap<string, TopicCounts>): Promise<void>;
}
