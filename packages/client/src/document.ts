/**
 * `subscribeDocument(service, id, { onDocument })`: a live sync document. The server sends the
 * document as it is (revision R), then every change after R; on every new socket the
 * subscription starts again with a fresh snapshot — the refill — so nothing of the gap is missed.
 * The snapshot is taken as it comes, whatever is held: it is the document now, also when it was
 * deleted in the gap (a snapshot of no document has no data, and the revision of its deletion, or 0
 * when it never existed). A change older than the revision held is dropped (after a deletion any
 * revision is taken). A new login of another user drops the document held (`onReset`) before the
 * new user's socket is up: the server says nothing to a user who may not read the document, so it
 * would otherwise stay on show to them.
 */
import type { Connection } from './connection.ts';
import { isPermissionRevoked } from './errors.ts';
import { TributaryDocumentDocument, type DocumentOperation } from './generated.ts';
import { createRetryGate, runResumable } from './resumable.ts';

/** `T`: the data type you expect (your promise, not checked). */
export interface LiveDocument<T = unknown> {
  readonly service: string;
  readonly id: string;
  /** The revision of its deletion while the document is deleted; 0 while it never existed. */
  readonly revision: number;
  /** Null while the document does not exist (or after its deletion). */
  readonly data: T | null;
  /** What the last message was: SNAPSHOT, CREATED, UPDATED or DELETED. */
  readonly operation: DocumentOperation;
}

export interface SubscribeDocumentOptions {
  /** The document after each change (and its snapshot on every new socket, when newer). */
  readonly onDocument: (document: LiveDocument) => void;
  /**
   * The subscription stopped for good (FORBIDDEN…). When the server ended it because a refreshed
   * token may no longer read the document (FORBIDDEN, `reason: PERMISSION_REVOKED`:
   * `isPermissionRevoked(error)`), `current` is undefined from then on: stop showing it.
   */
  readonly onError?: (error: unknown) => void;
  /**
   * Not served for now, but not stopped: a refusal the client retries (RATE_LIMITED — after its
   * `retryAfterMs` when it names one —, UNAVAILABLE, INTERNAL_SERVER_ERROR…), or the connection
   * turned `unauthorized` (a SessionEndedError with the close code) until `reconnect()`.
   */
  readonly onRetry?: (error: Error) => void;
  /** Served again after `onRetry`: called just before the snapshot that follows. */
  readonly onResume?: () => void;
  /**
   * The client's user changed (a new login: another subject, tenant, app or env): the document held
   * was the previous user's and is dropped (`current` is undefined) — stop showing it. The new
   * user's snapshot follows if they may read the document; if not, nothing does.
   */
  readonly onReset?: () => void;
}

export interface DocumentSubscription {
  /** The document as last delivered; undefined before the first message. */
  readonly current: LiveDocument | undefined;
  close(): void;
}

export function subscribeDocument(connection: Connection, service: string, id: string, options: SubscribeDocumentOptions): DocumentSubscription {
  const controller = new AbortController();
  let current: LiveDocument | undefined;
  /** Stopped for good: subscribed on no further socket, but still told of a new login (its document goes). */
  let failed = false;
  /** `onRetry` was told, and no document came since. */
  let retrying = false;
  /** When a retry may go, across sockets (a refusal's `retryAfterMs`). */
  const gate = createRetryGate();
  const interrupted = (error: Error) => {
    if (failed) return;
    retrying = true;
    options.onRetry?.(error);
  };

  const take = (next: LiveDocument) => {
    // A snapshot (the first message on each socket) is the document as it is now, whatever is held.
    // Once the document is gone (deleted, or a snapshot of no document), any revision is taken.
    const gone = current === undefined || current.operation === 'DELETED' || current.data === null;
    if (retrying) {
      retrying = false;
      options.onResume?.();
    }
    if (next.operation !== 'SNAPSHOT' && !gone && next.revision <= (current?.revision ?? 0)) return;
    current = next;
    options.onDocument(next);
  };

  const stop = connection.use({
    attach: (session) => {
      if (failed) return;
      void runResumable(connection, session, controller.signal, {
        gate,
        run: (current, signal, delivered) =>
          current.stream(TributaryDocumentDocument, { service, id }, ({ document }) => {
            delivered();
            take({ service, id, revision: document.revision, operation: document.operation, data: document.operation === 'DELETED' ? null : document.data });
          }, signal),
        // The next subscription starts with a snapshot: that is the refill.
        resync: () => Promise.resolve(),
        retrying: interrupted,
        fail: (error) => {
          failed = true;
          // The refreshed token may no longer read it: not kept for show (as after a new login).
          if (isPermissionRevoked(error)) current = undefined;
          options.onError?.(error);
        },
      });
    },
    unauthorized: interrupted,
    tokenRefused: interrupted,
    reset: () => {
      // The previous user's refusals: the new user's budget is their own.
      gate.notBefore = 0;
      current = undefined;
      options.onReset?.();
    },
  });

  return {
    get current() {
      return current;
    },
    close() {
      stop();
      controller.abort();
    },
  };
}
