/**
 * `subscribeEvents(topic, { where, after, onEvent })`: a topic's events, resumed from the last
 * one delivered on every new socket, de-duplicated by event id.
 *
 * Without `after`, the subscription first reads `topicCursor(topic)` and subscribes after it, so it
 * holds a position from the start: a socket lost before the first event arrives loses nothing.
 * When the server answers RESYNC_REQUIRED (the cursor is older than the retained history, or the
 * history was lost), the subscription reads the topic's cursor anew, awaits `onResync` — refetch
 * whatever you derived from the events there — and continues after that cursor.
 *
 * A new login of another user (another subject, tenant, app or env) ends the previous user's
 * position: `onReset` at once (drop what you show), then, on the new user's socket, the same refill
 * — their position, `onResync`, the stream after it. A topic they may not read stays silent.
 */
import type { Connection } from './connection.ts';
import { TributaryEventsDocument, TributaryTopicCursorDocument, type EventWhere, type TributaryEventsSubscription } from './generated.ts';
import { createRecentIds } from './recent-ids.ts';
import { createRetryGate, RefetchFailedError, runResumable } from './resumable.ts';
import { createRetryReport } from './retry-report.ts';
import type { Session } from './session.ts';

/** An event of a topic; `P`: the payload type you expect (your promise, not checked). */
export type TopicEvent<P = unknown> = Omit<TributaryEventsSubscription['events'], 'payload'> & { readonly payload: P };

export interface SubscribeEventsOptions {
  /** The server-side filter (`{ field: 'payload.status', eq: 'paid' }`…). */
  readonly where?: EventWhere;
  /** Start after this cursor (an event's `cursor` kept from an earlier run). @default the topic's position now */
  readonly after?: string;
  /** Each event once (by id), in the topic's order. */
  readonly onEvent: (event: TopicEvent) => void;
  /** The history could not be resumed: refetch your state. The stream continues from the topic's position read just before. */
  readonly onResync?: () => void | Promise<void>;
  /** The subscription stopped for good (FORBIDDEN, BAD_USER_INPUT…; `isPermissionRevoked(error)` after a refreshed token lost the topic). */
  readonly onError?: (error: unknown) => void;
  /**
   * Not served for now, but not stopped: a refusal the client retries (RATE_LIMITED — after its
   * `retryAfterMs` when it names one —, UNAVAILABLE, INTERNAL_SERVER_ERROR…), or the connection
   * turned `unauthorized` (a SessionEndedError with the close code) until `reconnect()`.
   */
  readonly onRetry?: (error: Error) => void;
  /**
   * Served again after `onRetry`: an event arrived, or the server answered a probe sent after the
   * retried subscribe without refusing it first (the protocol acknowledges no subscription). A
   * refusal the server decides after a Redis round trip (a subject's new-stream rate, UNAVAILABLE)
   * may still follow that answer: `onRetry` again, then.
   */
  readonly onResume?: () => void;
  /**
   * The client's user changed (a new login): what you show of the previous user's events is theirs
   * — drop it now. Then, on the new user's socket, `onResync` runs and the stream continues from
   * the new user's position.
   */
  readonly onReset?: () => void;
  /** Event ids remembered for de-duplication. @default 10000 */
  readonly dedupeWindow?: number;
}

export interface EventsSubscription {
  /** The cursor of the last event delivered (persist it to resume a later run with `after`). */
  readonly cursor: string | undefined;
  close(): void;
}

export function subscribeEvents(connection: Connection, topic: string, options: SubscribeEventsOptions): EventsSubscription {
  const controller = new AbortController();
  let seen = createRecentIds(options.dedupeWindow);
  let cursor = options.after;
  /** A new login reset the subscription: the new user's position is read and `onResync` run before it subscribes. */
  let refill = false;
  /** Resets so far: a refill begun for the previous user must not set the cursor after one. */
  let resets = 0;
  /** Its refusals told (`failed`: stopped for good, subscribed on no further socket, but still told of a new login). */
  const report = createRetryReport(options);
  /** When a retry may go, across sockets (a refusal's `retryAfterMs`). */
  const gate = createRetryGate();
  /** The last refill begun (settled or not): the next one waits for it. */
  let refilling: Promise<void> = Promise.resolve();

  const readHead = async (session: Session, signal: AbortSignal) => (await session.execute(TributaryTopicCursorDocument, { topic }, signal)).topicCursor;

  /** Position first, state second: every event after the refetch's state is after the cursor. */
  const refillOnce = async (session: Session, signal: AbortSignal) => {
    const generation = resets;
    const head = await readHead(session, signal);
    try {
      await options.onResync?.();
    } catch (error) {
      connection.reportHandlerError(error);
      throw new RefetchFailedError(error);
    }
    // The cursor moves once the refetch is done: one that failed is tried again. Not when the
    // socket went meanwhile: the next socket's stream may have moved it past `head` already.
    if (generation !== resets || session.signal.aborted || signal.aborted) return;
    cursor = head;
    refill = false;
  };

  /**
   * One refill at a time: a refetch begun on a socket that died (stalled on the same dead network)
   * would otherwise run beside the next socket's, and the application could apply the older
   * state last — after a cursor set past it.
   */
  const refillAt = (session: Session, signal: AbortSignal): Promise<void> => {
    const next = refilling.then(() => refillOnce(session, signal));
    refilling = next.catch(() => {});
    return next;
  };

  const stop = connection.use({
    attach: (session) => {
      if (report.failed) return;
      void runResumable(connection, session, controller.signal, {
        gate,
        run: async (current, signal, delivered) => {
          if (refill) {
            const done = connection.beginResync();
            try {
              await refillAt(current, signal);
            } finally {
              done();
            }
          }
          cursor ??= await readHead(current, signal);
          const streaming = current.stream(TributaryEventsDocument, { topic, where: options.where ?? null, after: cursor ?? null }, ({ events: event }) => {
            delivered();
            report.resumed();
            cursor = event.cursor;
            if (seen.add(event.id)) options.onEvent(event);
          }, signal);
          report.probe(current, streaming, signal);
          await streaming;
        },
        resync: refillAt,
        retrying: report.interrupted,
        fail: report.fail,
      });
    },
    unauthorized: report.interrupted,
    tokenRefused: report.interrupted,
    reset: () => {
      resets += 1;
      // The previous user's refusals: the new user's budget is their own.
      gate.notBefore = 0;
      cursor = undefined;
      seen = createRecentIds(options.dedupeWindow);
      refill = true;
      options.onReset?.();
    },
  });

  return {
    get cursor() {
      return cursor;
    },
    close() {
      stop();
      controller.abort();
    },
  };
}
