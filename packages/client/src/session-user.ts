/**
 * What runs on every acknowledged socket of a `Connection` (a subscription, a request waiting for
 * a socket, a publish): told of each new socket, of a new login, and of an `unauthorized` connection.
 */
import type { SessionEndedError } from './errors.ts';
import type { Session } from './session.ts';

/** Something that runs on every acknowledged socket: a subscription, the token refresh. */
export interface SessionUser {
  attach(session: Session): void;
  /**
   * The client's user changed (a new login: another subject, tenant, app or env): drop everything
   * received for the previous one — what is shown, cursors, ids seen. Called before the new user's
   * socket can be acknowledged, so the next `attach` starts afresh.
   */
  reset?(): void;
  /**
   * The connection turned `unauthorized` (the server refused the token, 4403; or a refresh brought
   * another user, 4412): no socket comes until `reconnect()`. `error` carries the close code, for
   * what the subscription shows meanwhile (a hook's `error`) — it is not stopped.
   */
  unauthorized?(error: SessionEndedError): void;
  /**
   * The server refused the token `getToken` returns as expired, again (`TokenExpiredError`): the
   * connection retries with backoff, asking `getToken` each time, but nothing comes until it
   * returns a valid token. For what the subscription shows meanwhile — it is not stopped, and what
   * clears `unauthorized`'s error (served again) clears this one.
   */
  tokenRefused?(error: SessionEndedError): void;
}
