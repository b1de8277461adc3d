export interface WaitForOptions {
  /** How long to keep probing before giving up, in milliseconds. @default 5000 */
  timeoutMs?: number;
  /** Pause between two probes, in milliseconds. @default 50 */
  intervalMs?: number;
  /** Start of the rejection message; the last probe error (if any) is appended. @default 'waitFor timed out' */
  message?: string;
  /** Stops waiting early: the returned promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Polls `probe` until it returns (or resolves to) a truthy value without throwing, and resolves
 * with that value. Rejects after `timeoutMs` with `message`, naming the last thrown error so a
 * timeout says *why* the condition never held.
 */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<T> {
  const { timeoutMs = 5000, intervalMs = 50, message = 'waitFor timed out', signal } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    signal?.throwIfAborted();
    try {
      const value = await probe();
      if (value) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      const cause = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`${message} (after ${timeoutMs} ms)${cause}`, { cause: lastError });
    }
    await pause(Math.min(intervalMs, remaining), signal);
  }
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T | PromiseLike<T>): void;
  reject(reason?: unknown): void;
  /** True once `resolve` or `reject` has been called. */
  readonly settled: boolean;
}

/** A promise with its `resolve`/`reject` handed out, for awaiting an event in a test. */
export function deferred<T = void>(): Deferred<T> {
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  let settled = false;
  return {
    promise,
    resolve(value) {
      settled = true;
      resolve(value);
    },
    reject(reason) {
      settled = true;
      reject(reason);
    },
    get settled() {
      return settled;
    },
  };
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      const reason: unknown = signal?.reason;
      reject(reason instanceof Error ? reason : new Error('waitFor aborted', { cause: reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
