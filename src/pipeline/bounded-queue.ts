import { ErrorCode, TributaryError } from '../errors.ts';

export interface BoundedQueueOptions {
  /** Undelivered items kept before the consumer counts as fallen behind. */
  readonly capacity: number;
  /** Called once when the consumer stops (returns, throws, overflows or is closed). */
  readonly onClose?: () => void;
}

/**
 * What `push` did: `accepted` (queued or handed over), `overflowed` (this item crossed the bound:
 * the consumer is failed — reported once), `closed` (the queue no longer takes items).
 */
export type PushResult = 'accepted' | 'overflowed' | 'closed';

export interface BoundedQueue<T> extends AsyncIterableIterator<T> {
  /** Hands an item to the consumer. */
  push(item: T): PushResult;
  /** Ends the iteration after the items already queued. */
  close(): void;
  /** Stops the consumer now (what `for await … break` calls). */
  return(): Promise<IteratorResult<T>>;
}

/**
 * A push-to-pull bridge with a hard bound. Overflow policy: the consumer is failed with
 * RATE_LIMITED rather than buffering without limit or dropping silently.
 */
export function createBoundedQueue<T>(options: BoundedQueueOptions): BoundedQueue<T> {
  const items: T[] = [];
  let waiting: ((result: IteratorResult<T>) => void) | undefined;
  let failWaiting: ((error: unknown) => void) | undefined;
  let state: 'open' | 'closing' | 'done' = 'open';
  let failure: TributaryError | undefined;

  const finish = () => {
    if (state === 'done') return;
    state = 'done';
    items.length = 0;
    options.onClose?.();
  };

  const queue: BoundedQueue<T> = {
    push(item) {
      if (state !== 'open') return 'closed';
      if (waiting) {
        const resolve = waiting;
        waiting = failWaiting = undefined;
        resolve({ value: item, done: false });
        return 'accepted';
      }
      if (items.length >= options.capacity) {
        failure = new TributaryError(
          ErrorCode.RATE_LIMITED,
          `Subscriber fell behind: more than ${options.capacity} undelivered messages`,
        );
        state = 'closing';
        return 'overflowed';
      }
      items.push(item);
      return 'accepted';
    },
    close() {
      if (state !== 'open') return;
      state = 'closing';
      if (waiting) {
        const resolve = waiting;
        waiting = failWaiting = undefined;
        finish();
        resolve({ value: undefined, done: true });
      }
    },
    next() {
      const item = items.shift();
      if (item !== undefined) return Promise.resolve({ value: item, done: false });
      if (state !== 'open') {
        const error = failure;
        failure = undefined;
        finish();
        return error ? Promise.reject(error) : Promise.resolve({ value: undefined, done: true });
      }
      return new Promise<IteratorResult<T>>((resolve, reject) => {
        waiting = resolve;
        failWaiting = reject;
      });
    },
    return() {
      const resolve = waiting;
      waiting = failWaiting = undefined;
      finish();
      resolve?.({ value: undefined, done: true });
      return Promise.resolve({ value: undefined, done: true });
    },
    throw(error?: unknown) {
      const reject = failWaiting;
      waiting = failWaiting = undefined;
      finish();
      reject?.(error);
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    },
    [Symbol.asyncIterator]() {
      return queue;
    },
  };
  return queue;
}
