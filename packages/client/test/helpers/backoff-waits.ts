/**
 * The waits of the client's backoff, recorded. `Math.random` is pinned to 0.99, so each wait is
 * 99 % of the window it was drawn from (990 ms for the first step, 1,980 ms for the second…) and
 * the schedule shows without waiting on a clock; the waits can run at once.
 *
 * Which timers count: the client's own (set from packages/client) of 500 ms to 10 minutes but
 * 30 s, the `ws` library's own wait for a close handshake (never a backoff wait here: 99 % of a
 * window). Tests that use this set the
 * client's other timers (ping interval, connect timeout) to 10 minutes; waitFor's polls are shorter.
 * (The client numbers its operations per socket, so pinning Math.random makes no ids collide.)
 */
import { onTestFinished, vi } from 'vitest';

/**
 * Whether the timer being set is the client's: the test worker runs other files' code in the same
 * process (a server of an earlier file still stopping, a readiness check's 2 s), whose timers
 * are not the client's waits.
 */
function fromClient(): boolean {
  return /[\\/]packages[\\/]client[\\/](src|dist)[\\/]/.test(new Error().stack ?? '');
}

/** Longer than any backoff wait: the client's other timers in these tests. */
export const NEVER_MS = 600_000;

/** How long `ws` waits for the peer's close frame before it destroys the socket. */
const WS_CLOSE_TIMEOUT_MS = 30_000;

export interface BackoffWaits {
  /** The waits asked for so far, in ms, in order. */
  readonly waits: readonly number[];
}

/**
 * `atOnce`: run each wait after 0 ms instead of its length (the schedule is what is checked); a
 * function decides per wait (false: that one takes its length — one the test cuts short otherwise).
 */
export function recordBackoffWaits(options: { readonly atOnce: boolean | ((ms: number) => boolean); readonly onWait?: (ms: number) => void }): BackoffWaits {
  const waits: number[] = [];
  const original = globalThis.setTimeout;
  vi.spyOn(Math, 'random').mockReturnValue(0.99);
  vi.spyOn(globalThis, 'setTimeout').mockImplementation(((handler: () => void, ms?: number, ...rest: unknown[]) => {
    if (typeof ms === 'number' && ms >= 500 && ms < NEVER_MS && ms !== WS_CLOSE_TIMEOUT_MS && fromClient()) {
      waits.push(ms);
      options.onWait?.(ms);
      const atOnce = typeof options.atOnce === 'function' ? options.atOnce(ms) : options.atOnce;
      return original(handler, atOnce ? 0 : ms, ...rest);
    }
    return original(handler, ms, ...rest);
  }) as typeof setTimeout);
  onTestFinished(() => {
    vi.restoreAllMocks();
  });
  return { waits };
}
