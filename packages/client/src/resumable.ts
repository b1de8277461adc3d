/**
 * The loop every resumable subscription runs on each socket: subscribe from its cursor; when the
 * server ends it with RESYNC_REQUIRED, refill (the subscription's own `resync`) and subscribe
 * again — at once the first time, after a backoff pause when it comes again with nothing delivered
 * since the last refill (a server that refuses every position would otherwise be asked as fast as
 * the socket allows); when the server completes it, answers with any error but a refusal a retry
 * would meet again (`PERMANENT_CODES`) — INTERNAL_SERVER_ERROR (a server bug, a database error
 * that passes), UNAVAILABLE, RATE_LIMITED, MISCONFIGURED, an unknown code or none; UNAUTHENTICATED
 * (the socket's token expired: the server's grace period) after asking the client for a new
 * token —, or the refill's own refetch failed (`RefetchFailedError`), subscribe again after a
 * backoff pause; when the socket goes, stop — the next socket starts the loop again from the
 * cursor kept. A permanent refusal (FORBIDDEN, BAD_USER_INPUT…), or an error of the client's own
 * (a live model past `maxRecords`), stops it for good (`fail`).
 *
 * An error waited out is not silent: the subscription is told (`retrying`: a hook shows it, a live
 * model leaves `live`) and so is the client's `onError` — a refusal retried for ever (the socket's
 * 100 operations taken, a subject's rate) would otherwise look like a quiet stream. A refusal that
 * says when to come back (`extensions.retryAfterMs`) is not tried sooner — nor is any pause cut
 * short by a new socket: the time a retry may go (`RetryGate`) is the subscription's, kept across
 * sockets, and the loop on the next socket waits for it before it subscribes (a socket lost during
 * the wait, the server's or ours, would otherwise bring the retry forward to its reconnection).
 */
import { backoffDelay, pause } from './backoff.ts';
import type { Connection } from './connection.ts';
import { isMessageTooLarge, isPermanentRefusal, isResyncRequired, isTokenRefusal, retryAfterOf, SessionEndedError, TributaryRequestError } from './errors.ts';
import type { Session } from './session.ts';

/** When a subscription may be tried again: kept by the subscription, across its sockets. */
export interface RetryGate {
  /** Not before this time (ms since the epoch); 0: at once. */
  notBefore: number;
}

export function createRetryGate(): RetryGate {
  return { notBefore: 0 };
}

export interface ResumableRun {
  /** The subscription's own, the same object on every socket: the pause in force carries over. */
  readonly gate: RetryGate;
  /**
   * Subscribes from the current cursor; settles when the server completes the subscription. Calls
   * `delivered` for each result the server sends: the stream is healthy, the pauses start again.
   */
  readonly run: (session: Session, signal: AbortSignal, delivered: () => void) => Promise<void>;
  /** RESYNC_REQUIRED: refetch what the subscription holds and set the cursor to continue from. */
  readonly resync: (session: Session, signal: AbortSignal) => Promise<void>;
  /** An error the subscription cannot go on after (`PERMANENT_CODES`, or its own): it stops. */
  readonly fail: (error: unknown) => void;
  /**
   * A server error (or a failed refetch) the loop waits out and retries: the subscription goes on,
   * but it is not being served now. Told before the pause.
   */
  readonly retrying?: (error: Error) => void;
}

/**
 * The application's own refetch (`onResync`) failed: the refill is tried again after a pause —
 * the subscription does not stop because a reload met a network error once.
 */
export class RefetchFailedError extends Error {
  constructor(cause: unknown) {
    super('onResync failed; the refill is tried again', { cause });
    this.name = 'RefetchFailedError';
  }
}

/**
 * Whether the loop goes on after `error`: the server's answer unless a retry would meet it again
 * (one INTERNAL_SERVER_ERROR must not end a subscription for good), or a failed refetch.
 */
const isTransient = (error: unknown) => error instanceof RefetchFailedError || (error instanceof TributaryRequestError && !isPermanentRefusal(error));

/** Runs `spec` on `session` until the socket goes, `signal` aborts or it fails. */
export async function runResumable(connection: Connection, session: Session, signal: AbortSignal, spec: ResumableRun): Promise<void> {
  const ended = () => session.signal.aborted || signal.aborted;
  /** Pauses taken on this socket since the server last delivered something: each waits longer (full jitter), never a tight loop. */
  let pauses = 0;
  /** Refills done since the server last delivered something. */
  let refills = 0;
  const delivered = () => {
    pauses = 0;
    refills = 0;
  };
  const { gate } = spec;
  const pauseAgain = async (error?: unknown) => {
    // The server's own word on when a retry can pass (a subject's rate limit) beats the backoff's guess.
    const delay = Math.max(backoffDelay(pauses, {}), retryAfterOf(error) ?? 0);
    gate.notBefore = Date.now() + delay;
    await pause(delay, AbortSignal.any([session.signal, signal]));
    pauses += 1;
  };
  /** What is left of a pause taken on an earlier socket. */
  const awaitGate = async () => {
    const left = gate.notBefore - Date.now();
    if (left > 0) await pause(left, AbortSignal.any([session.signal, signal]));
  };
  /** Whether the loop goes on after `error`: paused when transient, stopped (`fail`) when not. */
  const survive = async (error: unknown) => {
    // The server closed the socket for this subscription's message (1009): sent again on the next
    // socket, it would close that one too. Stopped, though its socket is gone.
    if (isMessageTooLarge(error) && !signal.aborted) {
      spec.fail(error);
      return false;
    }
    if (error instanceof SessionEndedError || ended()) return false;
    if (!isTransient(error)) {
      spec.fail(error);
      return false;
    }
    // Refused for the socket's expired token: the socket runs refreshAuth only until it has a new
    // one. Asked for now; the server's 4419 at the end of its grace period bounds the retries.
    if (isTokenRefusal(error)) await connection.refreshToken();
    if (ended()) return false;
    const reported = error instanceof Error ? error : new Error(String(error));
    spec.retrying?.(reported);
    // A failed refetch was reported already, with what the application's onResync threw.
    if (!(error instanceof RefetchFailedError)) connection.reportError(reported);
    await pauseAgain(error);
    return true;
  };
  // On this socket each pause is taken where it is decided; this is the one an earlier socket left.
  await awaitGate();
  while (!ended()) {
    try {
      await spec.run(session, signal, delivered);
      // Completed by the server (it is shutting down, say): again on this socket, not in a tight loop.
      await pauseAgain();
    } catch (error) {
      if (!isResyncRequired(error)) {
        if (await survive(error)) continue;
        return;
      }
      const done = connection.beginResync();
      try {
        // Refilled already, and refused again before anything arrived: the server refuses every
        // position (a CDC source removed while its mappings stay, say). Waited out, longer each time.
        if (refills > 0) await pauseAgain();
        if (ended()) return;
        await spec.resync(session, signal);
        refills += 1;
      } catch (resyncError) {
        // Not refilled: after a transient error the next run is answered RESYNC_REQUIRED again.
        if (await survive(resyncError)) continue;
        return;
      } finally {
        done();
      }
    }
  }
}
