/**
 * The loop every resumable subscription runs on each socket: subscribe from its cursor; when the
 * server ends it with RESYNC_REQUIRED, refill (the subscription's own `resync`) and subscribe
 * again; when the server completes it, subscribe again after a backoff pause; when the socket
 * goes, stop — the next socket starts the loop again from the cursor kept.
 */
import { backoffDelay, pause } from './backoff.ts';
import type { Connection } from './connection.ts';
import { isResyncRequired, SessionEndedError } from './errors.ts';
import type { Session } from './session.ts';

export interface ResumableRun {
  /** Subscribes from the current cursor; settles when the server completes the subscription. */
  readonly run: (session: Session, signal: AbortSignal) => Promise<void>;
  /** RESYNC_REQUIRED: refetch what the subscription holds and set the cursor to continue from. */
  readonly resync: (session: Session, signal: AbortSignal) => Promise<void>;
  /** An error the subscription cannot go on after (FORBIDDEN, BAD_USER_INPUT…): it stops. */
  readonly fail: (error: unknown) => void;
}

/** Runs `spec` on `session` until the socket goes, `signal` aborts or it fails. */
export async function runResumable(connection: Connection, session: Session, signal: AbortSignal, spec: ResumableRun): Promise<void> {
  for (let completions = 0; !session.signal.aborted && !signal.aborted; ) {
    try {
      await spec.run(session, signal);
      // Completed by the server (it is shutting down, say): again on this socket, not in a tight loop.
      await pause(backoffDelay(completions, {}), AbortSignal.any([session.signal, signal]));
      completions += 1;
    } catch (error) {
      if (error instanceof SessionEndedError || session.signal.aborted || signal.aborted) return;
      if (!isResyncRequired(error)) {
        spec.fail(error);
        return;
      }
      const done = connection.beginResync();
      try {
        await spec.resync(session, signal);
      } catch (resyncError) {
        if (resyncError instanceof SessionEndedError || session.signal.aborted || signal.aborted) return;
        spec.fail(resyncError);
        return;
      } finally {
        done();
      }
    }
  }
}
