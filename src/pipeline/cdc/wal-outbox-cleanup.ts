/**
 * What a WAL-mode outbox routed and has still to delete from its table, and the poison rows it has
 * to mark dead there, oldest first (`wal-outboxes.ts`). Bounded: past `MAX_CLEAN_UP_QUEUE` routed
 * ids the oldest are dropped; they stay pending in the table and the next catch-up routes them
 * again, with their ids.
 *
 * A clean-up round takes its batch out of the queue before its statements run, and gives it back
 * when they fail. Left in the queue until done, the batch could be trimmed away meanwhile (a chunk
 * routed while the round waits on the database), and removing it by position afterwards would
 * remove ids the round never deleted: rows routed a second time by the next catch-up.
 */

/** A row set aside as dead, and why. */
export interface DeadRow {
  readonly id: string;
  readonly reason: string;
}

export interface CleanUpBatch {
  readonly ids: readonly string[];
  readonly dead: readonly DeadRow[];
}

/** Routed ids waiting to be deleted, per outbox. */
export const MAX_CLEAN_UP_QUEUE = 100_000;

export interface CleanUpQueue {
  readonly empty: boolean;
  /** Queues what a chunk routed; returns how many of the oldest routed ids were dropped to stay within the bound. */
  add(ids: readonly string[], dead: readonly DeadRow[]): number;
  /** Takes up to `size` routed ids and `size` dead rows out of the queue, oldest first. */
  take(size: number): CleanUpBatch;
  /** Puts a batch whose statements failed back, first in line (trimmed again, as the oldest, by the next `add`). */
  giveBack(batch: CleanUpBatch): void;
}

export function createCleanUpQueue(max = MAX_CLEAN_UP_QUEUE): CleanUpQueue {
  let ids: string[] = [];
  let dead: DeadRow[] = [];
  return {
    get empty() {
      return ids.length === 0 && dead.length === 0;
    },
    add(routed, poison) {
      // One at a time: a spread of a chunk's ids can pass the engine's limit on arguments.
      for (const id of routed) ids.push(id);
      for (const row of poison) dead.push(row);
      const over = ids.length - max;
      if (over <= 0) return 0;
      ids.splice(0, over);
      return over;
    },
    take(size) {
      return { ids: ids.splice(0, size), dead: dead.splice(0, size) };
    },
    giveBack(batch) {
      ids = [...batch.ids, ...ids];
      dead = [...batch.dead, ...dead];
    },
  };
}
