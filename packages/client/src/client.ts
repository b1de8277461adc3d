/**
 * `createClient({ url, getToken })`: one socket to Tributary, kept alive and resumed, and the
 * helpers that run on it. See the package README for the states and guarantees.
 */
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import type { BackoffOptions } from './backoff.ts';
import { Connection } from './connection.ts';
import { checkSocketUrl } from './socket-url.ts';
import type { ConnectionState } from './connection-state.ts';
import { subscribeDocument, type DocumentSubscription, type SubscribeDocumentOptions } from './document.ts';
import { documentWrites, type DocumentWrites, type SendRequest } from './document-writes.ts';
import { isTokenRefusal, SessionEndedError } from './errors.ts';
import { subscribeEvents, type EventsSubscription, type SubscribeEventsOptions } from './events.ts';
import { broadcastWithRetry, type BroadcastOptions } from './broadcast.ts';
import { joinChannel, type ChannelMembership, type JoinChannelOptions } from './channel.ts';
import { TributaryBroadcastDocument, TributaryPublishDocument } from './generated.ts';
import { handlerErrorReport } from './handler-errors.ts';
import type { ModelRecord } from './live-model-store.ts';
import { LiveModels, type LiveModel, type LiveModelOptions } from './live-model.ts';
import { publishWithRetry, type PublishedEvent, type PublishOptions } from './publish.ts';
import type { Operation, Variables } from './session.ts';
import type { GetToken } from './token-refresh.ts';

export interface ClientOptions {
  /** `ws://…/graphql` or `wss://…/graphql`. */
  readonly url: string;
  /**
   * The current access token (no `Bearer ` prefix), or null/undefined for none. Called for every
   * new socket and before the token expires (then handed to the live socket with `refreshAuth`
   * when it changed). Return your auth library's current token; refresh it there.
   */
  readonly getToken?: GetToken;
  /** A WebSocket class where there is no global one (Node < 22: `import WebSocket from 'ws'`). @default globalThis.WebSocket */
  readonly webSocketImpl?: unknown;
  /** Reconnection schedule: full jitter over [0, min(maxMs, initialMs × 2ⁿ)). @default { initialMs: 1000, maxMs: 30000 } */
  readonly backoff?: BackoffOptions;
  /** A ping this long after the last pong, in ms. @default 10000 */
  readonly pingIntervalMs?: number;
  /** A ping unanswered this long marks the socket dead: it is dropped and replaced, in ms. @default 5000 */
  readonly pongTimeoutMs?: number;
  /** A socket not acknowledged this long after it was opened is dropped and retried, in ms. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** Ask `getToken` for a new token this long before the socket's expires, in ms (at most half its life). @default 60000 */
  readonly refreshBeforeExpiryMs?: number;
  /** Rows per `records` page when a live model reads its snapshot. @default 500 */
  readonly pageSize?: number;
  /** Most records one live model holds: a snapshot or a change taking it past this stops the model with an error. @default 100000 */
  readonly maxRecords?: number;
  /**
   * Open the socket at the first use — a subscription, a live model, a request or publish, a state
   * listener, `reconnect()` — instead of at once. A client created during server rendering then
   * opens nothing: the React hooks use it in effects only, which never run on the server. Until
   * then `state` says `connecting`. @default false
   */
  readonly lazy?: boolean;
  /**
   * The largest message the client sends, in UTF-8 bytes of the whole `subscribe` frame (JSON):
   * the server's `WS_MAX_PAYLOAD_BYTES`, past which it closes the socket (1009) — and with it every
   * subscription on it. An operation whose message is larger is not sent: a subscription stops
   * with `onError`, a request or publish rejects, with a MessageTooLargeError (code
   * BAD_USER_INPUT, `extensions.reason` MESSAGE_TOO_LARGE). Should the server's limit be lower, a
   * subscription it closes the socket for (1009) is stopped alike rather than sent again on every
   * new socket. @default 1048576 (the server's default)
   */
  readonly maxMessageBytes?: number;
  /** Problems the client recovers from by itself (a failing `getToken`, a refused refresh), for logging. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Also the document writes (`DocumentWrites`: getDocument, createDocument, replaceDocument,
 * mergeDocument, deleteDocument, updateDocument), over the socket, ended as a publish is.
 */
export interface TributaryClient extends DocumentWrites {
  /** @see ConnectionState */
  readonly state: ConnectionState;
  /** Called with every new state; returns the unsubscription. */
  onStateChange(listener: (state: ConnectionState) => void): () => void;
  /** A topic's events, resumed across sockets, de-duplicated by id. */
  subscribeEvents(topic: string, options: SubscribeEventsOptions): EventsSubscription;
  /** A live sync document: its snapshot, then every change. */
  subscribeDocument(service: string, id: string, options: SubscribeDocumentOptions): DocumentSubscription;
  /** A model's records, kept current: snapshot, then changes; shared per model and filter. */
  liveModel<R extends object = ModelRecord>(model: string, options?: LiveModelOptions<R>): LiveModel<R>;
  /**
   * A query or mutation over the socket (waits for an acknowledged one): a typed document (the
   * result typed), or the operation's text (`request<T>('query …', variables)`: the result is
   * `unknown` unless you name its type; sent as it is, the server parses it). @throws
   * TributaryRequestError with the server's errors (GRAPHQL_PARSE_FAILED for text it cannot
   * parse); SessionEndedError when the socket went before the answer (it may or may not have run:
   * retry only what is safe to repeat). While the connection is `unauthorized` it waits for the
   * socket `reconnect()` brings (after a new login).
   */
  request<TData, TVariables extends Variables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables): Promise<TData>;
  request<TData = unknown>(query: string, variables?: Variables): Promise<TData>;
  /**
   * Publishes an event, retried with one idempotency key while that is safe (the socket went before
   * the answer, UNAVAILABLE, RATE_LIMITED, UNAUTHENTICATED for the socket's expired token — a new
   * one is asked for —, a try with the key still running): placed once however many tries.
   * @throws TributaryRequestError for an error not worth retrying, or the last one after
   * `attempts`; SessionEndedError when the client closes, the connection turns `unauthorized`,
   * another user's token comes (a new login), or the socket was closed for a reason a retry would
   * meet again (a message too big: 1009); the reason of `options.signal` once that aborts.
   */
  publish(topic: string, payload: Readonly<Record<string, unknown>>, options?: PublishOptions): Promise<PublishedEvent>;
  /**
   * Joins a channel (`channel(name)`; needs `<prefix>.join`): `onMessage` for each broadcast while
   * joined; joined again on every new socket. At most once: what is broadcast while the client has
   * no socket (a reconnection, a restart) is not delivered later — use a topic for that. A refusal
   * a retry would meet again (FORBIDDEN, BAD_USER_INPUT) ends it (`onError`); UNAVAILABLE,
   * RATE_LIMITED… are retried with backoff (`onRetry`). `T` is the type of `data` you expect
   * (not checked). Returns the membership: `close()` leaves.
   */
  joinChannel<T = unknown>(name: string, options: JoinChannelOptions<T>): ChannelMembership;
  /**
   * Sends `event` with `data` to a channel's members (`broadcast`; needs `<prefix>.broadcast`),
   * retried as `publish` is (UNAVAILABLE, RATE_LIMITED, an expired token, the socket gone before
   * the answer) — with no idempotency key, so a retry may reach a member twice: put an id in
   * `data` where a copy matters. @throws as `publish` does (FORBIDDEN, BAD_USER_INPUT for `data`
   * over the server's EVENT_MAX_PAYLOAD_BYTES…).
   */
  broadcast<T = unknown>(channel: string, event: string, data?: T, options?: BroadcastOptions): Promise<void>;
  /** Hands the socket a fresh token from `getToken` now (`refreshAuth`), if it changed. */
  refreshToken(): Promise<void>;
  /**
   * A new socket now — also out of `unauthorized` (after a new login). Subscriptions resume on it;
   * if its token is another user's, they drop what they hold first and start afresh for that user.
   */
  reconnect(): void;
  /** Stops everything: the socket, timers, every subscription. Idempotent. */
  close(): void;
}

/** The server's default `WS_MAX_PAYLOAD_BYTES` (1 MiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_048_576;

export function createClient(options: ClientOptions): TributaryClient {
  checkSocketUrl(options.url, 'createClient');
  const connection = new Connection({
    url: options.url,
    getToken: options.getToken,
    webSocketImpl: options.webSocketImpl,
    backoff: options.backoff ?? {},
    pingIntervalMs: options.pingIntervalMs ?? 10_000,
    pongTimeoutMs: options.pongTimeoutMs ?? 5_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    refreshBeforeExpiryMs: options.refreshBeforeExpiryMs ?? 60_000,
    lazy: options.lazy ?? false,
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    onError: options.onError ?? (() => {}),
    reportHandlerError: handlerErrorReport(options.onError),
  });
  const models = new LiveModels(connection, { pageSize: options.pageSize ?? 500, maxRecords: options.maxRecords ?? 100_000 });
  const closed = new AbortController();
  /** Why `signal` aborted, as the SessionEndedError a request rejects with. */
  const endedBy = (signal: AbortSignal) => (signal.reason instanceof SessionEndedError ? signal.reason : new SessionEndedError());
  /** `request`, ended (SessionEndedError) when `signal` aborts: the client's close, or a publish's own end (with its reason). */
  const requestUntil = <TData, TVariables extends Variables>(document: Operation<TData, TVariables>, variables: TVariables, signal: AbortSignal) =>
    new Promise<TData>((resolve, reject) => {
      if (signal.aborted) return reject(endedBy(signal));
      let started = false;
      // Filled in when `use` returns: `attach` may run before (on the current socket).
      const use: { stop?: () => void } = {};
      const onAbort = () => {
        use.stop?.();
        reject(endedBy(signal));
      };
      // Runs on the first acknowledged socket (the current one, if any), once.
      use.stop = connection.use({
        attach: (session) => {
          if (started) return;
          started = true;
          use.stop?.();
          session.execute(document, variables, signal).then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
        },
      });
      if (started) use.stop();
      signal.addEventListener('abort', onAbort, { once: true });
    });

  /**
   * Runs a publish or broadcast's tries with `ended`: aborted when the client closes, the
   * connection turns `unauthorized`, another user's token comes, or the caller's own signal
   * aborts — a retry must not wait for a socket that will not come, nor run under the next login.
   */
  const untilEnded = async <R>(callerSignal: AbortSignal | undefined, run: (send: SendRequest, ended: AbortSignal) => Promise<R>): Promise<R> => {
    const ended = new AbortController();
    const stop = () => ended.abort();
    // (A caller without types may pass null.)
    const stoppers = [closed.signal, callerSignal].filter((signal): signal is AbortSignal => Boolean(signal));
    for (const signal of stoppers) signal.addEventListener('abort', stop, { once: true });
    const unlisten = connection.onStateChange((state) => {
      if (state === 'unauthorized') ended.abort(connection.refusal);
    });
    // Nor under another user's login: a new login ends it as `unauthorized` does (before its socket is up).
    const stopUsing = connection.use({ attach: () => {}, reset: stop });
    // Unauthorized already: no socket comes until `reconnect()`, perhaps with the next login's token.
    if (stoppers.some((signal) => signal.aborted) || connection.state === 'unauthorized') ended.abort(connection.refusal);
    const send: SendRequest = async (document, variables) => {
      try {
        return await requestUntil(document, variables, ended.signal);
      } catch (error) {
        // The socket's token expired (its grace period): the retry goes out once it has a new one.
        if (isTokenRefusal(error)) void connection.refreshToken();
        throw error;
      }
    };
    try {
      return await run(send, ended.signal);
    } finally {
      unlisten();
      stopUsing();
      for (const signal of stoppers) signal.removeEventListener('abort', stop);
    }
  };

  const publish: TributaryClient['publish'] = (topic, payload, publishOptions = {}) =>
    untilEnded(publishOptions.signal, (send, ended) => publishWithRetry((variables) => send(TributaryPublishDocument, variables), topic, payload, publishOptions, ended));

  const broadcast: TributaryClient['broadcast'] = (channel, event, data, broadcastOptions = {}) =>
    untilEnded(broadcastOptions.signal, (send, ended) =>
      broadcastWithRetry((variables) => send(TributaryBroadcastDocument, variables), { channel, event, data: data ?? null }, broadcastOptions, ended),
    );

  return {
    ...documentWrites((run) => untilEnded(undefined, run)),
    get state() {
      return connection.state;
    },
    onStateChange: (listener) => connection.onStateChange(listener),
    subscribeEvents: (topic, eventOptions) => subscribeEvents(connection, topic, eventOptions),
    subscribeDocument: (service, id, documentOptions) => subscribeDocument(connection, service, id, documentOptions),
    liveModel: (model, modelOptions) => models.open(model, modelOptions),
    request: (document: Operation<unknown, Variables>, variables?: Variables) => requestUntil(document, variables ?? {}, closed.signal),
    publish,
    joinChannel: (name, channelOptions) => joinChannel(connection, name, channelOptions),
    broadcast,
    refreshToken: () => connection.refreshToken(),
    reconnect: () => connection.reconnect(),
    close() {
      closed.abort();
      models.closeAll();
      connection.close();
    },
  };
}
