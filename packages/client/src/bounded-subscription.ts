/**
 * A graphql-ws subscription read at its consumer's pace, through a queue of at most `limit`
 * results. graphql-ws's own `iterate()` queues without bound while the consumer awaits: a slow
 * handler would hold the whole backlog in memory, and the server — whose slow-consumer bound counts
 * what the socket has not taken — would never see back-pressure (the socket is read at once).
 *
 * Past the bound the subscription is completed (the server stops sending) and what the queue
 * holds is still handed out; the caller subscribes again from where its consumer got to, so the
 * server replays the rest at the consumer's pace (mercurius's `queueHighWaterMark`, the other way
 * round: the reader, not the writer, drops the stream).
 */
import type { Client, FormattedExecutionResult, SubscribePayload } from 'graphql-ws';

/**
 * How the subscription ended, once its queue is empty: `complete` (by the server), `overflow`
 * (its queue was full: subscribe again from the consumer's position), `closed` (`close()`), or
 * `error` — the server's errors (a list of GraphQL errors) or why the socket went.
 */
export type BoundedEnd = { readonly kind: 'complete' | 'overflow' | 'closed' } | { readonly kind: 'error'; readonly error: unknown };

export interface BoundedSubscription<T> {
  /** The next result's data, in order; undefined once the subscription ended and its queue is empty (`end` says how). */
  next(): Promise<T | undefined>;
  /** Set once it ended; results queued before are still handed out (but after `close()`). */
  readonly end: BoundedEnd | undefined;
  /** Ends it with `error` (its socket went): what is queued is still handed out. */
  fail(error: unknown): void;
  /** Ends it now: the queue is dropped, `next()` resolves undefined. Idempotent. */
  close(): void;
}

export function subscribeBounded<T>(client: Client, payload: SubscribePayload, limit: number): BoundedSubscription<T> {
  const queue: T[] = [];
  let end: BoundedEnd | undefined;
  let wake: (() => void) | undefined;
  // graphql-ws calls the sink only after the socket answered: never before `subscribe` returns.
  let unsubscribe = () => {};
  const finish = (how: BoundedEnd) => {
    if (end) return;
    end = how;
    // After the messages being handed over now (see Session.stream): the server's `complete` that
    // follows an errored result in the same read would otherwise count the operation as ended
    // twice in graphql-ws, which closes the socket at zero.
    queueMicrotask(() => unsubscribe());
    wake?.();
  };
  unsubscribe = client.subscribe<T>(payload, {
    next: (result: FormattedExecutionResult<T>) => {
      if (end) return;
      if (result.errors?.length) return finish({ kind: 'error', error: result.errors });
      if (result.data === undefined || result.data === null) return;
      if (queue.length >= limit) return finish({ kind: 'overflow' });
      queue.push(result.data);
      wake?.();
    },
    error: (error: unknown) => finish({ kind: 'error', error }),
    complete: () => finish({ kind: 'complete' }),
  });
  return {
    async next() {
      while (queue.length === 0 && !end) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      return queue.shift();
    },
    get end() {
      return end;
    },
    fail: (error) => finish({ kind: 'error', error }),
    close() {
      queue.length = 0;
      finish({ kind: 'closed' });
    },
  };
}
