/**
 * Server-to-server model subscriptions (seed 004's `kernel.Data().Subscribe(ctx, "contacts", …)`)
 * for Node services, on top of the public GraphQL API — nothing here reaches into the server.
 * Unlike `liveModel` it holds no records: each change is handed to an awaited handler, one at a
 * time, and the stream resumes from the last change the handler finished. One socket per
 * connection, for the position read and the subscription alike. Each change is handed over as
 * the server sent it (see `ModelChangeEvent.unchangedColumns` for a record without the large values
 * Postgres left out of it). What arrives while the handler
 * works is held up to `maxBufferedChanges`; past it the subscription is dropped once those are
 * handled and subscribed again from the cursor, so a slow handler makes the server replay at its
 * pace instead of piling the backlog up in memory. After `close()` no further change is handed
 * over: `closed` settles once the handler running, if any, has finished.
 *
 *   import { subscribeModel } from '@tributary/client';
 *   const subscription = subscribeModel({
 *     url: 'ws://tributary:4000/graphql',
 *     token: () => tokens.current(),            // read again at every (re)connect
 *     model: 'contacts',
 *     filter: { status: 'eq.active' },
 *     async onChange(change) {                  // awaited: one change at a time, in order
 *       if (change.operation === 'DELETED' || change.operation === 'LEFT') await cache.delete(change.id);
 *       else await cache.put(change.id, change.record);
 *     },
 *     async onResync() { await cache.reload(); } // history lost (slot recreated, log expired)
 *   });
 *   …
 *   subscription.close();
 *
 * Delivery is at least once: without `after`, the model's position (`records`' cursor) is read
 * before the first subscription, so a connection lost before the first change loses nothing; after
 * a dropped connection it resubscribes with `after` = the cursor of the last change `onChange`
 * finished (or that position), so nothing is skipped; a change the server delivers again
 * (after a crash: same `eventId`, another cursor) is dropped if it is among the last 10,000. When
 * the server answers RESYNC_REQUIRED, the model's position now is read first (`records`' cursor),
 * then `onResync` runs, and the stream continues from that position: a change committed while
 * `onResync` refetched is delivered, not skipped (one it already saw comes too: at least once).
 * A reconnect whose token grants other reads (permissions, roles: `tokenGrants`) than the position
 * was established under (the first position read, or the last resync's) is handled the same way:
 * the server filters the stream by the token — silence for rows it may no longer read, no past
 * changes of rows it now may — so resuming from the cursor would leave the consumer's copy stale.
 * Reconnects wait with the client's backoff (full jitter, 1 s to 30 s), which starts again after a
 * connection that delivered a change (a deploy's close after hours of changes waits the first
 * step, not the sixth); a RESYNC_REQUIRED answered again with no change delivered since the last
 * refill counts as a failure (a server that refuses every position is not asked in a tight loop).
 * A connection that stops answering is found by a ping unanswered within `pongTimeoutMs`, and
 * replaced. A request the server refuses in a way a retry would meet again (`PERMANENT_CODES`: an
 * invalid filter, a model the token may not read…) is not retried: it is reported once, as a
 * `TributaryRequestError` with the server's code, and the subscription ends. Any other error — INTERNAL_SERVER_ERROR (a server
 * bug, an unclassified database error), UNAVAILABLE, RATE_LIMITED, MISCONFIGURED (the operator
 * may fix it), UNAUTHENTICATED (the token is read again at the next connection), an unknown code
 * or none — is reported and retried with the backoff. A lost connection is reported as a
 * `SessionEndedError` (its `closeCode` and the server's `reason`); the token is judged as
 * `createClient` judges it (auth-losses.ts): refused (4403 "Invalid token", 4401, 4412), the
 * subscription ends with that error, as a client turns `unauthorized` — a token function that
 * keeps returning it would be refused for ever; expired (4419), it is read again at the next
 * connection, and a token refused as expired again and again is reported as a `TokenExpiredError`.
 */
import { print } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import { backoffDelay, pause } from './backoff.ts';
import { subscribeBounded, type BoundedSubscription } from './bounded-subscription.ts';
import { AuthLosses, EXPIRED_REFUSALS_TOLD } from './auth-losses.ts';
import { closeCodeOf, closeReasonOf, isGraphQLErrorList, isPermanentRefusal, SessionEndedError, TokenExpiredError, TributaryRequestError } from './errors.ts';
import { guardedWebSocket } from './guarded-websocket.ts';
import { TributaryChangesDocument, TributaryRecordsDocument } from './generated.ts';
import { createRecentIds } from './recent-ids.ts';
import { checkSocketUrl } from './socket-url.ts';
import type { ModelRecord } from './live-model-store.ts';
import { RefetchFailedError } from './resumable.ts';
import { tokenExpiresAt, tokenGrants } from './token.ts';

/** `LEFT` (with a filter only): the row no longer matches the filter; its record is null. */
export type ModelOperation = 'CREATED' | 'UPDATED' | 'DELETED' | 'LEFT';

/** `R`: the record type you expect (a `type` or an `interface`), your promise, not checked. */
export interface ModelChangeEvent<R extends object = ModelRecord> {
  /** Stable across redeliveries. */
  readonly eventId: string;
  readonly operation: ModelOperation;
  readonly model: string;
  /** The entity key. */
  readonly id: string;
  readonly record: R | null;
  /**
   * Columns `record` lacks because Postgres did not send them (an update that left a large,
   * TOASTed value unchanged, on a table without REPLICA IDENTITY FULL): keep the value your store
   * holds — merge `record` into the row rather than replace it. A change of a row your store does
   * not hold (an UPDATED that moved it into the filter, the CREATED of a key or tenant change)
   * lacks them too, with no value to keep: read the row whole by its key before you store it (a
   * live model does) — `records(model, ids: [change.id], filter)`, up to 100 ids a read.
   * Empty when `record` is the whole row.
   */
  readonly unchangedColumns: readonly string[];
  /** Resume point after this change. */
  readonly cursor: string;
  /** Commit time in the source database (ISO 8601). */
  readonly lastUpdatedAt: string;
}

export interface SubscribeModelOptions<R extends object = ModelRecord> {
  /** `ws://…/graphql` or `wss://…/graphql`. */
  readonly url: string;
  /** A bearer token, or a function giving the current one (called at every connection). */
  readonly token: string | (() => string | Promise<string>);
  readonly model: string;
  /** The server-side filter, e.g. `{ status: 'eq.active', age: ['gte.18', 'lt.65'] }`. */
  readonly filter?: Readonly<Record<string, string | readonly string[]>>;
  /** Start after this cursor (a change's `cursor` kept from an earlier run). @default the model's position when the subscription starts */
  readonly after?: string;
  /** Receives each change; the next one waits until the promise settles. A rejection is reported to `onError` and the change is not retried. */
  readonly onChange: (change: ModelChangeEvent<R>) => void | Promise<void>;
  /** History was lost: refetch what you hold. The stream then continues from the position read just before (no change in between skipped). */
  readonly onResync?: () => void | Promise<void>;
  /**
   * Connection problems, server errors and handler failures: the subscription keeps going (after
   * a backoff pause). A refusal a retry would meet again — a `TributaryRequestError` with one of
   * BAD_USER_INPUT, FORBIDDEN, NOT_FOUND, GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED,
   * QUERY_TOO_COMPLEX — is reported once and ends the subscription (`closed` settles). A lost
   * connection is a `SessionEndedError` (`closeCode`, the server's `reason`); a token the server
   * refuses (4403, 4401, 4412) ends the subscription with it too; a token refused as expired
   * again and again is a `TokenExpiredError`, retried.
   */
  readonly onError?: (error: unknown) => void;
  /** Longest wait between reconnection attempts, in ms. @default 30000 */
  readonly maxRetryDelayMs?: number;
  /** A ping this long after the last pong, in ms. @default 10000 */
  readonly pingIntervalMs?: number;
  /** A ping unanswered this long: the connection is dead, dropped and replaced (ms). @default 5000 */
  readonly pongTimeoutMs?: number;
  /** A connection not acknowledged this long after opening is dropped and retried (ms). @default 10000 */
  readonly connectTimeoutMs?: number;
  /** A WebSocket class where there is no global one. @default globalThis.WebSocket */
  readonly webSocketImpl?: unknown;
  /**
   * Changes received and not yet handed to `onChange` held at most (a count): past it the
   * subscription is dropped once those are handled, and subscribed again from the cursor — the
   * server replays the rest at the handler's pace, nothing held in memory meanwhile. @default 1000
   */
  readonly maxBufferedChanges?: number;
}

export interface ModelSubscription {
  /** Where the stream continues: the cursor of the last change handled (before any, the position read at the start), to persist for a later `after`. */
  cursor(): string | undefined;
  /** Stops for good. Idempotent. */
  close(): void;
  /** Settles once closed. */
  readonly closed: Promise<void>;
}

const QUERY = print(TributaryChangesDocument);
const POSITION_QUERY = print(TributaryRecordsDocument);

export function subscribeModel<R extends object = ModelRecord>(options: SubscribeModelOptions<R>): ModelSubscription {
  checkSocketUrl(options.url, 'subscribeModel');
  const controller = new AbortController();
  let cursor = options.after;
  const maxDelay = options.maxRetryDelayMs ?? 30_000;
  const seen = createRecentIds();
  const report = (error: unknown) => options.onError?.(error);
  /** RESYNC_REQUIRED was answered: the position is read and `onResync` run before the next subscription. */
  let resyncing = false;
  /** The current connection delivered a change: it was healthy, whatever ended it. */
  let delivered = false;
  const filter = options.filter ?? null;
  /** Which token refusals are retried, as a client's connection judges them. */
  const authLosses = new AuthLosses();
  /** The last connection's close was a refusal of its token a retry would meet again: the subscription ends. */
  let refused = false;
  /** What the token let the connection read when the position was established (`tokenGrants`): the first position read, or the last resync's. */
  let readUnder: string | undefined;
  const maxBuffered = options.maxBufferedChanges ?? 1_000;
  if (!Number.isInteger(maxBuffered) || maxBuffered < 1) throw new RangeError(`subscribeModel: maxBufferedChanges must be a positive integer, got ${maxBuffered}`);

  /** Where the model's change stream stands now: `changes(after:)` from it misses nothing committed later. */
  const readPosition = async (client: Client): Promise<string> => {
    for await (const result of client.iterate<{ records: { cursor: string } }>({ query: POSITION_QUERY, variables: { model: options.model, filter, first: 1 } })) {
      if (result.errors?.length) throw new TributaryRequestError(result.errors);
      if (result.data) return result.data.records.cursor;
    }
    throw new Error('The server sent no position');
  };

  /**
   * Hands `change` to `onChange` (unless seen already) and moves the cursor past it; false once
   * closed — a change still queued is never handed over after `close()`.
   */
  const handle = async (change: ModelChangeEvent<R>): Promise<boolean> => {
    if (controller.signal.aborted) return false;
    delivered = true;
    if (seen.add(change.eventId)) {
      try {
        await options.onChange(change);
      } catch (error) {
        report(error);
      }
    }
    cursor = change.cursor;
    return true;
  };

  /** One connection, and its subscription until it ends; resolves when either ends. */
  const runOnce = async (): Promise<'resync' | 'ended'> => {
    let pongTimer: ReturnType<typeof setTimeout> | undefined;
    /** Why the socket went (its close event), once it did. */
    let lost: { readonly event: unknown } | undefined;
    let acknowledged = false;
    /** The token sent in this connection's `connection_init`. */
    let sent: string | undefined;
    let stream: BoundedSubscription<{ changes: ModelChangeEvent<R> }> | undefined;
    /** Settles once the server acknowledged the connection (`undefined`) or it failed first (why). */
    let settleReady: (failure?: { readonly error: unknown }) => void = () => {};
    const ready = new Promise<{ readonly error: unknown } | undefined>((resolve) => (settleReady = resolve));
    /** Ends a connection not acknowledged within `connectTimeoutMs` of its start (set below). */
    const connecting: { timer?: ReturnType<typeof setTimeout> } = {};
    // Not lazy: a lazy client closes its socket as soon as the position query completes, and the
    // subscription would wait for a second one. This one lives until disposed; graphql-ws retries
    // nothing (`retryAttempts: 0`), the loop below does, from the cursor.
    // Guarded: `close()` terminates the client, and a socket still connecting then would throw
    // its "closed before the connection was established" as an uncaught exception.
    const webSocketImpl = guardedWebSocket(options.webSocketImpl);
    const client: Client = createClient({
      url: options.url,
      ...(webSocketImpl !== undefined && { webSocketImpl }),
      retryAttempts: 0,
      lazy: false,
      // A connection that failed without a close event (graphql-ws reports it here): it failed.
      onNonLazyError: (error) => settleReady({ error }),
      keepAlive: options.pingIntervalMs ?? 10_000,
      connectionAckWaitTimeout: options.connectTimeoutMs ?? 10_000,
      on: {
        // A ping with no pong in time: the connection is dead (TCP alone may not notice for minutes).
        ping: (received) => {
          if (received) return;
          clearTimeout(pongTimer);
          pongTimer = setTimeout(() => client.terminate(), options.pongTimeoutMs ?? 5_000);
        },
        pong: (received) => {
          if (received) clearTimeout(pongTimer);
        },
        connected: () => {
          acknowledged = true;
          clearTimeout(connecting.timer);
          authLosses.forget();
          settleReady();
        },
        closed: (event) => {
          clearTimeout(connecting.timer);
          lost ??= { event };
          stream?.fail(event);
          settleReady({ error: event });
        },
      },
      connectionParams: async () => {
        sent = typeof options.token === 'string' ? options.token : await options.token();
        return { authorization: `Bearer ${sent}` };
      },
    });
    // graphql-ws times the acknowledgement from the socket's open only: a socket that never opens
    // (a proxy that takes the TCP connection and never answers the upgrade) would wait for ever.
    connecting.timer = setTimeout(() => client.terminate(), options.connectTimeoutMs ?? 10_000);
    const stop = () => {
      clearTimeout(connecting.timer);
      stream?.close();
      client.terminate();
    };
    controller.signal.addEventListener('abort', stop, { once: true });
    try {
      // What the token lets this connection read is known once the server took it.
      const failure = await ready;
      if (failure) throw failure.error;
      const grants = tokenGrants(sent);
      // Read under other grants (the same service's token lost or gained a permission, sent on this
      // new connection): the server filters the stream by them — silence for what it may no longer
      // read, rows never seen for what it now may — so resuming from the cursor would leave the
      // consumer's copy stale for good. Resynced instead, as for RESYNC_REQUIRED.
      if (readUnder !== undefined && readUnder !== grants) resyncing = true;
      if (resyncing) {
        // Position first, state second: every change after the refetch's state is after the position.
        const position = await readPosition(client);
        try {
          await options.onResync?.();
        } catch (error) {
          // The application's refetch failed (a request of its own, say): tried again, never the end.
          throw new RefetchFailedError(error);
        }
        cursor = position;
        readUnder = grants;
        resyncing = false;
      }
      // Without a cursor, "after: null" would mean "from now" on every resubscription: a change
      // committed while a connection lost before the first change was down would be skipped.
      if (cursor === undefined) {
        cursor = await readPosition(client);
        readUnder = grants;
      }
      // `after` given: the caller's position, taken as read under the first connection's grants.
      readUnder ??= grants;
      // Each pass subscribes from the cursor; one whose queue filled up is dropped once handled,
      // and the next pass has the server replay from where the handler got to.
      for (;;) {
        // graphql-ws would open another socket for it: the loop below backs off first.
        if (lost) throw lost.event;
        if (controller.signal.aborted) return 'ended';
        stream = subscribeBounded(client, { query: QUERY, variables: { model: options.model, filter, after: cursor ?? null } }, maxBuffered);
        for (let next = await stream.next(); next !== undefined; next = await stream.next()) {
          if (next.changes && !(await handle(next.changes))) return 'ended';
        }
        const end = stream.end;
        if (end?.kind === 'error') throw end.error;
        if (end?.kind !== 'overflow') return 'ended';
      }
    } catch (error) {
      // graphql-ws reports operation errors as an array of GraphQL errors.
      if (isGraphQLErrorList(error)) {
        if (error.some((item) => item.extensions?.['code'] === 'RESYNC_REQUIRED')) return 'resync';
        throw new TributaryRequestError(error);
      }
      // …and a lost connection as its CloseEvent: reported as the client reports one.
      const event = lost?.event ?? error;
      if (!(error instanceof Error) && closeCodeOf(event) !== undefined) throw closeError(event, sent, acknowledged);
      throw error;
    } finally {
      stream?.close();
      clearTimeout(pongTimer);
      controller.signal.removeEventListener('abort', stop);
      // dispose() would wait for a socket not acknowledged yet (up to connectTimeoutMs): ended at once.
      if (!acknowledged) client.terminate();
      await Promise.resolve(client.dispose()).catch(() => {});
    }
  };

  /** The error a connection's close is reported as; `refused` when the token will not do. */
  const closeError = (event: unknown, token: string | undefined, acknowledged: boolean): SessionEndedError => {
    const code = closeCodeOf(event) ?? 4499;
    const reason = closeReasonOf(event);
    const disposition = authLosses.dispositionOf(token, acknowledged, code);
    if (disposition === 'unauthorized') refused = true;
    if (disposition === 'new-token') authLosses.expired(token);
    const refusals = authLosses.expiredRefusals;
    if (disposition === 'retry' && refusals >= EXPIRED_REFUSALS_TOLD && token !== undefined) return new TokenExpiredError(code, reason, tokenExpiresAt(token), refusals);
    return new SessionEndedError(code, reason);
  };

  const closed = (async () => {
    /** Connections in a row that failed (or were refused a refilled position again): the backoff's exponent. */
    let failures = 0;
    /** RESYNC_REQUIRED answers since a change was last delivered. */
    let resyncs = 0;
    while (!controller.signal.aborted) {
      delivered = false;
      try {
        const outcome = await runOnce();
        if (delivered) resyncs = 0;
        if (outcome === 'resync') {
          resyncing = true;
          resyncs += 1;
          // The first is refilled at once; another with no change in between means the server
          // refuses every position it is given: waited out like a failure, longer each time.
          failures = resyncs > 1 ? failures + 1 : 0;
        } else {
          failures = 0;
          // The server ended the subscription (it is shutting down, say): come back shortly.
          await pause(250, controller.signal);
        }
      } catch (error) {
        if (controller.signal.aborted) break;
        report(error);
        // Refused for good: trying again would meet the same answer, forever.
        if (isPermanentRefusal(error) || refused) {
          controller.abort();
          break;
        }
        if (delivered) resyncs = 0;
        // A connection that delivered changes was healthy: the schedule starts again after it.
        failures = delivered ? 1 : failures + 1;
      }
      // After a failure, a pause growing with each one (full jitter).
      if (failures > 0) await pause(backoffDelay(failures - 1, { maxMs: maxDelay }), controller.signal);
    }
  })();

  return {
    cursor: () => cursor,
    close: () => controller.abort(),
    closed,
  };
}
