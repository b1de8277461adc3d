/**
 * Capped exponential backoff for the loops that reconnect or retry until they are stopped (the
 * WAL reader, a CDC source, the dispatcher's bus link, the document cache). One implementation, so
 * every loop waits the same way and every wait ends at once when its owner is disposed.
 */

export interface BackoffOptions {
  /** First delay, in ms. */
  readonly initialMs: number;
  /** Longest delay, in ms. */
  readonly maxMs: number;
  /** Random spread added or removed, in ms (uniform in ±jitterMs). @default 0 */
  readonly jitterMs?: number;
}

export interface Backoff {
  /** The delay before the next attempt: initialMs · 2^failures, capped at maxMs, with jitter. */
  next(): number;
  /** Back to the first delay (after a success). */
  reset(): void;
  /** Failures since the last reset. */
  readonly failures: number;
}

export function createBackoff(options: BackoffOptions): Backoff {
  const { initialMs, maxMs, jitterMs = 0 } = options;
  let failures = 0;
  return {
    next() {
      const base = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 30));
      failures += 1;
      const spread = jitterMs === 0 ? 0 : (Math.random() * 2 - 1) * jitterMs;
      return Math.max(0, Math.round(base + spread));
    },
    reset() {
      failures = 0;
    },
    get failures() {
      return failures;
    },
  };
}

/**
 * Resolves after `ms`, or at once when `signal` aborts; never rejects. Returns whether the full
 * time passed (false: aborted), so a loop can write `if (!(await pause(ms, signal))) return;`.
 */
export function pause(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const timer = setTimeout(() => finish(true), ms);
    const onAbort = () => finish(false);
    function finish(completed: boolean) {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(completed);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryOptions extends BackoffOptions {
  /** Tries in all, the first included. */
  readonly tries: number;
  /** Told each failure that is tried again, before the wait. */
  readonly onRetry?: (error: unknown) => void;
}

/** Tries that ride out a moment's outage (Postgres or Redis away briefly): 5, 200 ms to 1.6 s apart. */
export const BRIEF_OUTAGE: Pick<RetryOptions, 'tries' | 'initialMs' | 'maxMs'> = { tries: 5, initialMs: 200, maxMs: 2_000 };

/**
 * `work` tried until it resolves, at most `tries` times, with the backoff's waits between tries
 * (for steps that must not be lost to a moment's outage but cannot wait for ever); rejects with the
 * last failure.
 */
export async function withRetries<T>(work: () => Promise<T>, options: RetryOptions): Promise<T> {
  const backoff = createBackoff(options);
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (backoff.failures >= options.tries - 1) throw error;
      options.onRetry?.(error);
      await pause(backoff.next());
    }
  }
}
