/**
 * The loop every resumable subscription runs on a socket, with a scripted subscription (the
 * session and connection are stand-ins: nothing here reaches them but the abort signal and the
 * resync bracket). Server answers are waited out, but refusals a retry would meet again: they stop it.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Connection } from '../../src/connection.ts';
import { SessionEndedError, TributaryRequestError } from '../../src/errors.ts';
import { createRetryGate, RefetchFailedError, runResumable } from '../../src/resumable.ts';
import type { Session } from '../../src/session.ts';

const answered = (code: string) => new TributaryRequestError([{ message: code, extensions: { code } }]);

/** A run that delivers a result, then ends with `error`. */
class AfterData {
  readonly error: Error;
  constructor(error: Error) {
    this.error = error;
  }
}

/**
 * A subscription whose runs reject with `script`'s errors in turn (after delivering a result, for
 * an `AfterData`), then stay subscribed until the socket ends.
 */
function scripted(script: readonly (Error | AfterData)[], resyncScript: readonly Error[] = []) {
  const socket = new AbortController();
  const calls = { runs: 0, resyncs: 0, refreshes: 0, failed: [] as unknown[], retrying: [] as unknown[], reported: [] as unknown[] };
  const runs = [...script];
  const resyncs = [...resyncScript];
  const connection = {
    beginResync: () => () => {},
    refreshToken: () => {
      calls.refreshes += 1;
      return Promise.resolve();
    },
    reportError: (error: unknown) => void calls.reported.push(error),
  };
  const done = runResumable(connection as unknown as Connection, { signal: socket.signal } as Session, new AbortController().signal, {
    gate: createRetryGate(),
    run: (_session, _signal, delivered) => {
      calls.runs += 1;
      const step = runs.shift();
      if (step instanceof AfterData) {
        delivered();
        return Promise.reject(step.error);
      }
      if (step) return Promise.reject(step);
      // Subscribed until the socket goes, as a real stream.
      return new Promise<void>((_resolve, reject) => socket.signal.addEventListener('abort', () => reject(new SessionEndedError()), { once: true }));
    },
    resync: () => {
      calls.resyncs += 1;
      const error = resyncs.shift();
      return error ? Promise.reject(error) : Promise.resolve();
    },
    fail: (error) => void calls.failed.push(error),
    retrying: (error) => void calls.retrying.push(error),
  });
  return { calls, done, endSocket: () => socket.abort() };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('runResumable', () => {
  it('subscribes again after a pause when the server answers UNAVAILABLE or RATE_LIMITED: the subscription does not stop', async () => {
    const { calls, done, endSocket } = scripted([answered('UNAVAILABLE'), answered('RATE_LIMITED'), answered('UNAVAILABLE')]);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.runs).toBe(1);
    // Each try waits its backoff (full jitter: 1 s, 2 s, 4 s windows at most).
    await vi.advanceTimersByTimeAsync(1_000 + 2_000 + 4_000);
    expect(calls.runs).toBe(4);
    expect(calls.failed).toEqual([]);
    endSocket();
    await done;
    expect(calls.failed).toEqual([]);
  });

  it('refills again when the refill itself meets a transient answer', async () => {
    const { calls, endSocket, done } = scripted([answered('RESYNC_REQUIRED'), answered('RESYNC_REQUIRED')], [answered('UNAVAILABLE')]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toMatchObject({ runs: 3, resyncs: 2, failed: [] });
    endSocket();
    await done;
  });

  it("refills again after a pause when the application's own refetch failed", async () => {
    const { calls, endSocket, done } = scripted([answered('RESYNC_REQUIRED'), answered('RESYNC_REQUIRED')], [new RefetchFailedError(new TypeError('fetch failed'))]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toMatchObject({ runs: 3, resyncs: 2, failed: [] });
    endSocket();
    await done;
  });

  it('refills at once after the first RESYNC_REQUIRED, then pauses before each further one in a row (a server that refuses every position)', async () => {
    // Each wait at 99 % of its window: 990 ms, then 1,980 ms.
    vi.spyOn(Math, 'random').mockReturnValue(0.99);
    const { calls, endSocket, done } = scripted(Array.from({ length: 5 }, () => answered('RESYNC_REQUIRED')));
    await vi.advanceTimersByTimeAsync(0);
    // The second RESYNC_REQUIRED in a row waits before the next refill.
    expect(calls).toMatchObject({ runs: 2, resyncs: 1 });
    await vi.advanceTimersByTimeAsync(989);
    expect(calls).toMatchObject({ runs: 2, resyncs: 1 });
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toMatchObject({ runs: 3, resyncs: 2 });
    // Then longer.
    await vi.advanceTimersByTimeAsync(1_979);
    expect(calls).toMatchObject({ runs: 3, resyncs: 2 });
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toMatchObject({ runs: 4, resyncs: 3, failed: [] });
    endSocket();
    await done;
  });

  it('refills at once after a RESYNC_REQUIRED that follows delivered data', async () => {
    const { calls, endSocket, done } = scripted([answered('RESYNC_REQUIRED'), new AfterData(answered('RESYNC_REQUIRED')), new AfterData(answered('RESYNC_REQUIRED'))]);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toMatchObject({ runs: 4, resyncs: 3, failed: [] });
    endSocket();
    await done;
  });

  it('asks for a fresh token and subscribes again after a pause when the server answers UNAUTHENTICATED (a socket in its token’s grace period)', async () => {
    const { calls, endSocket, done } = scripted([answered('UNAUTHENTICATED'), answered('UNAUTHENTICATED')]);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toMatchObject({ runs: 1, refreshes: 1, failed: [] });
    await vi.advanceTimersByTimeAsync(1_000 + 2_000);
    expect(calls).toMatchObject({ runs: 3, refreshes: 2, failed: [] });
    endSocket();
    await done;
  });

  it('subscribes again after a pause when the server answers INTERNAL_SERVER_ERROR, MISCONFIGURED, another code or none: only a refusal a retry would meet again stops it', async () => {
    const noCode = new TributaryRequestError([{ message: 'Unexpected error.' }]);
    const { calls, done, endSocket } = scripted([answered('INTERNAL_SERVER_ERROR'), answered('MISCONFIGURED'), answered('CONFLICT'), noCode]);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.runs).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000 + 2_000 + 4_000 + 8_000);
    expect(calls).toMatchObject({ runs: 5, failed: [] });
    endSocket();
    await done;
    expect(calls.failed).toEqual([]);
  });

  it('refills again when the refill itself meets INTERNAL_SERVER_ERROR', async () => {
    const { calls, endSocket, done } = scripted([answered('RESYNC_REQUIRED'), answered('RESYNC_REQUIRED')], [answered('INTERNAL_SERVER_ERROR')]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toMatchObject({ runs: 3, resyncs: 2, failed: [] });
    endSocket();
    await done;
  });

  it.each(['FORBIDDEN', 'BAD_USER_INPUT', 'NOT_FOUND', 'GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'QUERY_TOO_COMPLEX'])('stops for good on %s (a retry would meet it again)', async (code) => {
    const refused = answered(code);
    const { calls, done } = scripted([refused]);
    await done;
    expect(calls).toMatchObject({ runs: 1, failed: [refused] });
  });

  it('stops for good on an error of its own (a live model past maxRecords)', async () => {
    const own = new Error('liveModel(contacts): more than 10 records (maxRecords)');
    const { calls, done } = scripted([own]);
    await done;
    expect(calls).toMatchObject({ runs: 1, failed: [own] });
  });

  it('stops for good on a refusal a retry would meet again (FORBIDDEN) that follows a transient answer', async () => {
    const forbidden = answered('FORBIDDEN');
    const { calls, done } = scripted([answered('UNAVAILABLE'), forbidden]);
    await vi.advanceTimersByTimeAsync(1_000);
    await done;
    expect(calls.runs).toBe(2);
    expect(calls.failed).toEqual([forbidden]);
  });

  it('tells the subscription and the client of each refusal it retries (RATE_LIMITED), without stopping', async () => {
    const limited = answered('RATE_LIMITED');
    const unavailable = answered('UNAVAILABLE');
    const { calls, done, endSocket } = scripted([limited, unavailable]);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toMatchObject({ runs: 1, retrying: [limited], reported: [limited], failed: [] });
    await vi.advanceTimersByTimeAsync(1_000 + 2_000);
    expect(calls).toMatchObject({ runs: 3, retrying: [limited, unavailable], reported: [limited, unavailable], failed: [] });
    endSocket();
    await done;
  });

  it('waits at least the retryAfterMs a refusal names before subscribing again', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const limited = new TributaryRequestError([{ message: 'rate', extensions: { code: 'RATE_LIMITED', retryAfterMs: 7_000 } }]);
    const { calls, done, endSocket } = scripted([limited]);
    await vi.advanceTimersByTimeAsync(6_999);
    expect(calls.runs).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls.runs).toBe(2);
    endSocket();
    await done;
  });
});
