/**
 * The socket's life: connect, keep it (ping with a pong timeout), replace it when it dies (backoff
 * with full jitter), keep its token fresh, and tell the subscriptions when a new one is ready.
 *
 * Each socket is its own graphql-ws client with `retryAttempts: 0`: graphql-ws would resubscribe
 * with each subscription's ORIGINAL variables after a reconnect, skipping the events of the gap,
 * so the reconnect loop is ours and every subscription resumes from its own cursor on the new
 * socket (a `Session`).
 */
import { createClient as createGraphQLWsClient, type Client } from 'graphql-ws';
import { backoffDelay, type BackoffOptions } from './backoff.ts';
import { closeCodeOf, closeReasonOf, SessionEndedError, TokenExpiredError } from './errors.ts';
import { guardedWebSocket } from './guarded-websocket.ts';
import { callEach, type HandlerErrorReport } from './handler-errors.ts';
import { AuthLosses, EXPIRED_REFUSALS_TOLD } from './auth-losses.ts';
import { INITIAL_STATUS, nextStatus, type ConnectionEvent, type ConnectionState, type ConnectionStatus } from './connection-state.ts';
import { Session } from './session.ts';
import type { SessionUser } from './session-user.ts';
import { isExpiryNotice, noticedExpiresIn, noticedExpiry, TokenRefresh, unref, type GetToken } from './token-refresh.ts';
import { tokenExpiresAt, tokenGrants, tokenPrincipal } from './token.ts';
import { installWakeTriggers, isOnline } from './wake-triggers.ts';

export type { SessionUser } from './session-user.ts';

export interface ConnectionOptions {
  readonly url: string;
  readonly getToken: GetToken | undefined;
  readonly webSocketImpl: unknown;
  readonly backoff: BackoffOptions;
  readonly pingIntervalMs: number;
  readonly pongTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly refreshBeforeExpiryMs: number;
  /** @see ClientOptions.lazy */
  readonly lazy: boolean;
  /** @see ClientOptions.maxMessageBytes */
  readonly maxMessageBytes: number;
  readonly onError: (error: unknown) => void;
  /** What an application's handler threw (`handler-errors.ts`). */
  readonly reportHandlerError: HandlerErrorReport;
}

/** One socket attempt: its graphql-ws client and timers. */
interface Attempt {
  readonly client: Client;
  readonly controller: AbortController;
  session: Session | undefined;
  /** The token the server holds for it: the one sent in its `connection_init`, then each one handed over in-band (`refreshAuth`). */
  token: string | undefined;
  /** When it was acknowledged (ms since the epoch). */
  acknowledgedAt: number | undefined;
  connectTimer: ReturnType<typeof setTimeout> | undefined;
  pongTimer: ReturnType<typeof setTimeout> | undefined;
}

/** graphql-ws's code for a socket it terminated (we do so when a pong never came). */
const TERMINATED = 4499;

/**
 * A socket up this long (ms) before it closed was healthy: the backoff starts again after it. A
 * socket the server closes soon after acknowledging it (an error on every operation, a slow
 * consumer, an overloaded instance) counts as a failed attempt, or such a server would be asked
 * again within a second, forever.
 */
const STABLE_SOCKET_MS = 10_000;

/** The server's close code for a refresh that brought another subject, tenant, app or env. */
const PRINCIPAL_CHANGED = 4412;

export class Connection {
  readonly #options: ConnectionOptions;
  readonly #listeners = new Set<(state: ConnectionState) => void>();
  readonly #users = new Set<SessionUser>();
  readonly #tokens: TokenRefresh | undefined;
  readonly #removeWakeTriggers: () => void;
  #status: ConnectionStatus = INITIAL_STATUS;
  #attempt: Attempt | undefined;
  /** Failed attempts (and sockets closed soon after their acknowledgement) since the last healthy socket: the backoff's exponent. */
  #failures = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** The first attempt was made (at once, or at the first use of a lazy connection). */
  #started = false;
  /** Which token refusals at connect are retried (auth-losses.ts). */
  readonly #authLosses = new AuthLosses();
  /** Whose data the subscriptions hold (`tokenPrincipal`): the user of the last token sent; undefined while they hold nobody's. */
  #principal: string | undefined;
  /** Why the connection is `unauthorized` (the close code and the server's reason); undefined otherwise. */
  #refusal: SessionEndedError | undefined;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#tokens =
      options.getToken &&
      new TokenRefresh({
        getToken: options.getToken,
        leadMs: options.refreshBeforeExpiryMs,
        onError: options.onError,
        // The server holds the socket's new token: a 4403 after its expiry is judged against it.
        onHandedOver: (session, token) => {
          session.grants = tokenGrants(token);
          if (this.#attempt?.session === session) this.#attempt.token = token;
        },
      });
    this.#removeWakeTriggers = installWakeTriggers({
      wake: () => this.#wake(),
      offline: () => {
        if (this.#attempt?.session === undefined) this.#dispatch({ type: 'offline' });
      },
    });
    if (!options.lazy) this.#start();
  }

  get state(): ConnectionState {
    return this.#status.state;
  }

  /** While `unauthorized`: the error saying why (the close code, the server's reason). */
  get refusal(): SessionEndedError | undefined {
    return this.#status.state === 'unauthorized' ? this.#refusal : undefined;
  }

  /** Reports what an application's handler threw: the client's `onError`, or thrown again in a microtask. */
  reportHandlerError(error: unknown): void {
    this.#options.reportHandlerError(error);
  }

  /** Reports a problem the client recovers from by itself (a refusal it retries): the client's `onError`, if any. */
  reportError(error: unknown): void {
    this.#options.onError(error);
  }

  /** The acknowledged socket now, if any. */
  get session(): Session | undefined {
    return this.#attempt?.session;
  }

  /** A state listener counts as a use: a lazy connection starts. */
  onStateChange(listener: (state: ConnectionState) => void): () => void {
    this.#start();
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Runs `user.attach` on the current socket (if acknowledged) and on every later one. */
  use(user: SessionUser): () => void {
    this.#start();
    this.#users.add(user);
    const session = this.session;
    if (session) user.attach(session);
    return () => this.#users.delete(user);
  }

  /** A subscription is refetching its snapshot: the state says `resyncing` until the returned function is called. */
  beginResync(): () => void {
    this.#dispatch({ type: 'resync-started' });
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#dispatch({ type: 'resync-finished' });
    };
  }

  /** Drops the socket and connects again now — also out of `unauthorized` (after a new login, say). */
  reconnect(): void {
    if (this.#status.state === 'closed') return;
    this.#dropAttempt(true);
    this.#failures = 0;
    this.#authLosses.forget();
    this.#started = true;
    this.#dispatch({ type: 'reconnect' });
    this.#connect();
  }

  /** Hands the socket a fresh token from `getToken` now (otherwise done before it expires). */
  refreshToken(): Promise<void> {
    return this.#tokens?.refresh() ?? Promise.resolve();
  }

  close(): void {
    if (this.#status.state === 'closed') return;
    this.#dispatch({ type: 'close' });
    this.#removeWakeTriggers();
    this.#dropAttempt(true);
    // Waiting to reconnect there is no attempt to drop, only the backoff's timer: it must not keep Node up.
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#users.clear();
    this.#listeners.clear();
  }

  /** The first attempt, once (a lazy connection: at its first use). */
  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#connect();
  }

  #connect(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const { state } = this.#status;
    if (state === 'closed' || state === 'unauthorized' || this.#attempt) return;
    if (!isOnline()) {
      this.#dispatch({ type: 'offline' });
      return;
    }
    const options = this.#options;
    const controller = new AbortController();
    // Filled in below: the graphql-ws callbacks only run once the socket is being opened.
    const attempt = { controller, session: undefined, token: undefined, acknowledgedAt: undefined, connectTimer: undefined, pongTimer: undefined } as Omit<Attempt, 'client'> & { client: Client };
    let operations = 0;
    attempt.client = createGraphQLWsClient({
      url: options.url,
      // Unique per socket is all the protocol needs; a counter needs no randomness (graphql-ws
      // draws UUIDs from Math.random, which a test pinning it would make collide).
      generateID: () => String((operations += 1)),
      webSocketImpl: guardedWebSocket(options.webSocketImpl),
      lazy: false,
      retryAttempts: 0,
      keepAlive: options.pingIntervalMs,
      onNonLazyError: () => {},
      connectionParams: async () => {
        // An empty string is no token (not "Bearer "): the server then says how to send one.
        const token = (await options.getToken?.()) || undefined;
        attempt.token = token;
        if (attempt === this.#attempt) this.#adopt(token);
        return token === undefined ? {} : { authorization: `Bearer ${token}` };
      },
      on: {
        connected: () => this.#acknowledged(attempt),
        ping: (received, payload) => {
          if (!received) {
            // Our keepalive ping: a socket that does not answer within the timeout is dead (a
            // sleeping laptop, a NAT that forgot us) — TCP alone may not notice for minutes.
            clearTimeout(attempt.pongTimer);
            attempt.pongTimer = setTimeout(() => attempt.client.terminate(), options.pongTimeoutMs);
            unref(attempt.pongTimer);
          } else if (isExpiryNotice(payload)) {
            void this.#tokens?.notice(noticedExpiry(payload), noticedExpiresIn(payload));
          }
        },
        pong: (received) => {
          if (received) clearTimeout(attempt.pongTimer);
        },
        error: (error) => {
          // A socket error is followed by its close; only a failing getToken is worth reporting.
          if (error instanceof Error) options.onError(error);
        },
        closed: (event) => this.#closed(attempt, closeCodeOf(event) ?? TERMINATED, closeReasonOf(event)),
      },
    });
    this.#attempt = attempt;
    // An acknowledgement that never comes (a server that accepts TCP but never answers) counts as a failure.
    attempt.connectTimer = setTimeout(() => attempt.client.terminate(), options.connectTimeoutMs);
    unref(attempt.connectTimer);
  }

  #acknowledged(attempt: Attempt): void {
    if (attempt !== this.#attempt) return;
    clearTimeout(attempt.connectTimer);
    attempt.acknowledgedAt = Date.now();
    this.#authLosses.forget();
    const session = new Session(attempt.client, attempt.controller.signal, this.#options.reportHandlerError, this.#options.maxMessageBytes);
    session.grants = tokenGrants(attempt.token);
    attempt.session = session;
    this.#tokens?.start(session, attempt.token);
    // The users before the state listeners run: one a listener adds (a subscription started on
    // `connected`) is attached by `use` itself, and must not run twice on this socket.
    const users = [...this.#users];
    this.#dispatch({ type: 'acknowledged' });
    for (const user of users) {
      if (session.signal.aborted) break;
      if (this.#users.has(user)) user.attach(session);
    }
  }

  #closed(attempt: Attempt, code: number, reason: string | undefined): void {
    if (attempt !== this.#attempt) return;
    this.#dropAttempt(false, code, reason);
    if (this.#status.state === 'closed') return;
    // The token handed over belongs to someone else: what the subscriptions hold is the previous
    // user's, dropped now rather than left on show until the application calls reconnect().
    if (code === PRINCIPAL_CHANGED) this.#resetUsers();
    const disposition = this.#authLosses.dispositionOf(attempt.token, attempt.acknowledgedAt !== undefined, code);
    // Before the state listeners run: one may ask why (`refusal`).
    if (disposition === 'unauthorized') this.#refusal = new SessionEndedError(code, reason);
    this.#dispatch({ type: 'lost', code, disposition });
    // A state listener may have closed the client just now.
    if ((this.#status.state as ConnectionState) === 'closed') return;
    if (disposition === 'unauthorized') {
      // Otherwise what waits for a socket would look merely slow (a hook `loading` for good).
      const error = new SessionEndedError(code, reason);
      this.#tellUsers((user) => user.unauthorized?.(error));
      return;
    }
    if (disposition === 'new-token') {
      // The token expired without a refresh: a new socket at once, with a token from getToken.
      this.#authLosses.expired(attempt.token);
      this.#scheduleRetry(0);
      return;
    }
    if (attempt.acknowledgedAt !== undefined && Date.now() - attempt.acknowledgedAt >= STABLE_SOCKET_MS) this.#failures = 0;
    this.#scheduleRetry(backoffDelay(this.#failures, this.#options.backoff));
    this.#failures += 1;
    // getToken keeps returning a token the server refuses as expired: retried with the backoff
    // (auth-losses.ts), but said — `reconnecting` with no reason would look like a network fault.
    const refusals = this.#authLosses.expiredRefusals;
    if (refusals >= EXPIRED_REFUSALS_TOLD && attempt.token !== undefined) {
      const error = new TokenExpiredError(code, reason, tokenExpiresAt(attempt.token), refusals);
      this.#options.onError(error);
      this.#tellUsers((user) => user.tokenRefused?.(error));
    }
  }

  /**
   * A new socket's token names its user. Another one than the subscriptions hold data of (a new
   * login on this client, `reconnect()` after it) may not read what they received, and the server
   * would not say so — a subscription it may not read is silent. So every one drops what it holds
   * now, before this socket can be acknowledged, and starts afresh for the new user.
   */
  #adopt(token: string | undefined): void {
    const principal = tokenPrincipal(token);
    if (this.#principal !== undefined && this.#principal !== principal) this.#resetUsers();
    this.#principal = principal;
  }

  /** Every user drops what it holds (`SessionUser.reset`); they hold nobody's data after. */
  #resetUsers(): void {
    this.#principal = undefined;
    this.#tellUsers((user) => user.reset?.());
  }

  /** Calls every user; what one throws (an application's callback: onReset…) is reported and the others are still told. */
  #tellUsers(call: (user: SessionUser) => void): void {
    callEach(this.#users, call, this.#options.reportHandlerError);
  }

  #scheduleRetry(delay: number): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  /** The network is back or the page is visible: retry now instead of at the end of the backoff. */
  #wake(): void {
    if (this.#status.state === 'offline') this.#dispatch({ type: 'online' });
    if (!this.#started) return;
    if (this.#attempt === undefined && (this.#status.state === 'reconnecting' || this.#status.state === 'connecting')) this.#connect();
  }

  /**
   * Ends the current attempt: its session's signal aborts. `terminate` (ours to end: reconnect,
   * close) also closes its socket at once, without waiting for a close handshake a dead peer would
   * never answer; graphql-ws's `closed` event that follows is ignored (no longer the current attempt).
   */
  #dropAttempt(terminate: boolean, closeCode?: number, reason?: string): void {
    const attempt = this.#attempt;
    if (!attempt) return;
    this.#attempt = undefined;
    clearTimeout(attempt.connectTimer);
    clearTimeout(attempt.pongTimer);
    clearTimeout(this.#retryTimer);
    // Its operations end with the close code, when the socket was closed on us.
    attempt.controller.abort(closeCode === TERMINATED ? new SessionEndedError() : new SessionEndedError(closeCode, reason));
    this.#tokens?.stop(attempt.session);
    // Disposed, graphql-ws never reconnects by itself (it would after a 1000 close). Its promise
    // waits for a connection that may never come: nothing to wait for.
    void Promise.resolve(attempt.client.dispose()).catch(() => {});
    if (terminate) attempt.client.terminate();
  }

  #dispatch(event: ConnectionEvent): void {
    const before = this.#status.state;
    this.#status = nextStatus(this.#status, event);
    if (this.#status.state === before) return;
    // An application's listener that throws must neither keep the others from being told nor stop
    // the caller half-way (a reconnection never scheduled): reported like any handler's error.
    callEach(this.#listeners, (listener) => listener(this.#status.state), this.#options.reportHandlerError);
  }
}
