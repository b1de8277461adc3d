/**
 * Group commit: many callers' small writes become one statement. A write submitted while the
 * previous statement is still running waits for it and goes with everything else submitted
 * meanwhile, so nothing waits for a timer — alone, a write goes at once (no added latency); under
 * load, the batch grows with the load (one round trip for many writes).
 *
 * Each caller gets its own item's result, or the batch's error: a failed statement fails every write
 * in it (each caller handles it as it would its own failed statement).
 */
export interface GroupCommit<I, O> {
  /** Writes `item` with the next batch; resolves with its result once that batch is written. */
  submit(item: I): Promise<O>;
  /** Items waiting for a batch or being written. */
  readonly pending: number;
}

export interface GroupCommitOptions<I, O> {
  /** Writes a batch; returns one result per item, in the items' order. */
  readonly write: (items: readonly I[]) => Promise<readonly O[]>;
  /** Largest batch (a statement's size stays bounded); the rest waits for the next one. */
  readonly maxBatch: number;
  /** Batches written at once (a pool with several connections can take more than one). @default 1 */
  readonly concurrency?: number;
}

interface Waiting<I, O> {
  readonly item: I;
  readonly resolve: (result: O) => void;
  readonly reject: (error: unknown) => void;
}

export function createGroupCommit<I, O>(options: GroupCommitOptions<I, O>): GroupCommit<I, O> {
  const concurrency = options.concurrency ?? 1;
  let queue: Waiting<I, O>[] = [];
  let writing = 0;
  let inBatches = 0;

  const writeOne = () => {
    const batch = queue.length <= options.maxBatch ? queue : queue.slice(0, options.maxBatch);
    queue = batch === queue ? [] : queue.slice(options.maxBatch);
    writing += 1;
    inBatches += batch.length;
    const settle = (each: (waiting: Waiting<I, O>, index: number) => void) => {
      writing -= 1;
      inBatches -= batch.length;
      batch.forEach(each);
      writeNext();
    };
    options.write(batch.map((waiting) => waiting.item)).then(
      (results) => {
        if (results.length !== batch.length) {
          const error = new Error(`group commit: ${results.length} results for ${batch.length} items`);
          settle((waiting) => waiting.reject(error));
        } else settle((waiting, index) => waiting.resolve(results[index]!));
      },
      (error: unknown) => settle((waiting) => waiting.reject(error)),
    );
  };
  const writeNext = () => {
    while (writing < concurrency && queue.length > 0) writeOne();
  };

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        // Submits of the same tick go together: the batch starts after them.
        if (queue.length === 1) queueMicrotask(writeNext);
      });
    },
    get pending() {
      return queue.length + inBatches;
    },
  };
}
