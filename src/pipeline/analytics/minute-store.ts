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

export interface MinuteStore {
  readonly kind: 'redis' | 'memory';
  /** Adds a batch into its minute. */
  push(batch: PushBatch): Promise<void>;
  /** Minutes holding counts, oldest first. */
  minutes(): Promise<number[]>;
  /** A minute's counts summed over every push; `accept` keeps only some topic keys. */
  read(minute: number, accept?: (topicKey: string) => boolean): Promise<Map<string, TopicCounts>>;
  /**
   * Forgets a minute once it is flushed. With `written` (what `read` gave and was written), only
   * those counts go: what was pushed in between stays, and the next flush finds it late.
   */
  remove(minute: number, written?: ReadonlyMap<string, TopicCounts>): Promise<void>;
}
