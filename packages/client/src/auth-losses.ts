/**
 * Which token refusals at connect the connection retries rather than turning `unauthorized`
 * (`Connection`'s close handling): the losses of a socket since the last acknowledged one, and
 * what they say about the token the server refused.
 *
 * A 4403 refusing the very token the server just closed a socket for as expired (4419) is no bad
 * login: an auth library hands out its cached token until it has expired by the device's clock,
 * which may run behind the server's. Retried with backoff — each attempt asks `getToken` again —
 * until the library has a new one, instead of `unauthorized` for good.
 *
 * So is a 4403 for a token expired by the device's own clock after a socket lost otherwise (a
 * laptop waking: its socket died, 1006 or a pong timeout, and the token expired in its sleep —
 * the server never got to say 4419): the library refreshes it at the next `getToken`, asked
 * again at each attempt. A few times only: a library that keeps handing out an expired token
 * will not stop, and the client ends `unauthorized` as for any refused token.
 *
 * Servers now close a socket whose token has expired at `connection_init` (past the server's
 * clock tolerance) with 4419 before acknowledging it, where older ones said 4403. Not a socket
 * that expired while open: reconnecting at once would hand the same expired token over and over.
 * It is retried with backoff like the 4403s above — for good while it is the token just closed
 * as expired, a few times for another one — then `unauthorized`.
 *
 * Retried for good is not silent: an auth library whose refresh failed hands out its cached,
 * expired token again and again, and the client would show `reconnecting` for ever with no word
 * why. From the `EXPIRED_REFUSALS_TOLD`-th refusal in a row of a token as expired, the connection
 * tells the application (`expiredRefusals`: onError, every subscription's error) while it retries.
 */
import { closeDisposition, type CloseDisposition } from './connection-state.ts';
import { tokenExpiresAt } from './token.ts';

/** The server's close code for a token expired without a refresh (or already expired at `connection_init`). */
const TOKEN_EXPIRED = 4419;

/** Refusals retried for a token expired by the device's clock, or refused as expired at connect. */
const STALE_TOKEN_RETRIES = 5;

/**
 * Refusals in a row of an expired token (retried) from which the application is told: one may be
 * a clock a little behind the server's, or a library about to refresh; a second, backoff later,
 * is a token that will not change by itself.
 */
export const EXPIRED_REFUSALS_TOLD = 2;

export class AuthLosses {
  /** The token of the last socket the server closed as expired (4419), until a socket is acknowledged. */
  #expiredToken: string | undefined;
  /** A socket was lost otherwise than for its token (1006, 4499…) since the last acknowledgement. */
  #lostOtherwise = false;
  /** Refusals retried since then for a stale token. */
  #staleTokenRetries = 0;
  /** Refusals of an expired token retried since the last acknowledgement (any of the kinds above). */
  #expiredRefusals = 0;

  /** Refusals of an expired token retried in a row (since the last acknowledged socket or `reconnect()`). */
  get expiredRefusals(): number {
    return this.#expiredRefusals;
  }

  /** A socket was acknowledged, or the application reconnects: what came before says nothing any more. */
  forget(): void {
    this.#expiredToken = undefined;
    this.#lostOtherwise = false;
    this.#staleTokenRetries = 0;
    this.#expiredRefusals = 0;
  }

  /** The server closed a socket holding `token` as expired (4419, once acknowledged). */
  expired(token: string | undefined): void {
    this.#expiredToken = token;
  }

  /**
   * What to do after a socket holding `token` (acknowledged or not) closed with `code`; a close
   * retried for a reason other than its token counts as a socket lost otherwise.
   */
  dispositionOf(token: string | undefined, acknowledged: boolean, code: number): CloseDisposition {
    const disposition = this.#judge(token, acknowledged, code);
    if (closeDisposition(code) === 'retry') this.#lostOtherwise = true;
    // A token refusal (4403, or 4419 at connect) retried: its token was judged expired.
    else if (disposition === 'retry') this.#expiredRefusals += 1;
    return disposition;
  }

  #judge(token: string | undefined, acknowledged: boolean, code: number): CloseDisposition {
    const expiredAtConnect = code === TOKEN_EXPIRED && !acknowledged;
    if ((code !== 4403 && !expiredAtConnect) || token === undefined) return closeDisposition(code);
    if (token === this.#expiredToken) return 'retry';
    if (expiredAtConnect) {
      if (this.#staleTokenRetries >= STALE_TOKEN_RETRIES) return 'unauthorized';
      this.#staleTokenRetries += 1;
      return 'retry';
    }
    const expiresAt = tokenExpiresAt(token);
    if (this.#lostOtherwise && this.#staleTokenRetries < STALE_TOKEN_RETRIES && expiresAt !== undefined && expiresAt <= Date.now()) {
      this.#staleTokenRetries += 1;
      return 'retry';
    }
    return closeDisposition(code);
  }
}
