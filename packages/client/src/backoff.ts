/**
 * The reconnection schedule: exponential from 1 s to 30 s (seed 004) with FULL jitter — the n-th
 * retry waits a uniformly random time in [0, min(30 s, 1 s × 2ⁿ)).
 *
 * Why full jitter rather than the seed's ±500 ms: after a server restart every client loses its
 * socket in the same instant. With ±500 ms, 5,000 clients would come back within the same second
 * at every step of the curve (1 s, 2 s, 4 s…), a thundering herd against a server that is still
 * warming up; with full jitter each step spreads them uniformly over its whole window, so the
 * arrivals per second fall as the windows widen (AWS Architecture Blog, "Exponential Backoff And
 * Jitter": full jitter does the least work and finishes soonest among the schemes compared).
 */

export interface BackoffOptions {
  /** Upper bound of the first retry's window, in ms. @default 1000 */
  readonly initialMs?: number;
  /** Largest window, in ms. @default 30000 */
  readonly maxMs?: number;
}

export const DEFAULT_BACKOFF = { initialMs: 1000, maxMs: 30_000 } as const;

/** The window of retry `attempt` (0 for the first retry after a loss): the delay is drawn from [0, window). */
export function backoffWindow(attempt: number, options: BackoffOptions = {}): number {
  const initialMs = options.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const maxMs = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  // 2 ** 30 already exceeds any sensible cap; the clamp keeps the arithmetic finite.
  return Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(0, attempt), 30));
}

/** How long to wait before retry `attempt`, in ms; `random` in [0, 1) (Math.random by default). */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  return Math.floor(random() * backoffWindow(attempt, options));
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(finish, ms);
    signal.addEventListener('abort', finish, { once: true });
    function finish() {
      clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      resolve();
    }
  });
}
