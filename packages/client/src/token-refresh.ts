/**
 * Keeps a live socket's token fresh (issue 13 §2): before the token expires — or at once when the
 * server sends its `TOKEN_EXPIRING` ping — ask `getToken` for the current one and, only when it
 * differs from the socket's, hand it over in-band with the `refreshAuth` mutation on that same
 * socket. Subscriptions go on untouched (the server keeps them; none loses or repeats an event).
 * One refresh at a time per socket (single flight). A refresh that fails is reported and retried later; if
 * the token expires meanwhile the server closes with 4419 and the connection reconnects with a
 * token from `getToken`.
 */
import { TributaryRefreshAuthDocument } from './generated.ts';
import type { Session } from './session.ts';
import { tokenRefreshDelay } from './token.ts';

export type GetToken = () => string | null | undefined | Promise<string | null | undefined>;

export interface TokenRefreshOptions {
  readonly getToken: GetToken;
  /** @see ClientOptions.refreshBeforeExpiryMs */
  readonly leadMs: number;
  readonly onError: (error: unknown) => void;
  /** The server took `token` for `session` (its `refreshAuth` succeeded): the socket's token now. */
  readonly onHandedOver?: (session: Session, token: string) => void;
}

/** When `getToken` still gives the socket's token (or just gave a new one), ask again no sooner than this (ms). */
const UNCHANGED_RETRY_MS = 5_000;

export class TokenRefresh {
  readonly #options: TokenRefreshOptions;
  #session: Session | undefined;
  #token: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The refresh running now, and the socket it runs for. */
  #inFlight: { readonly session: Session | undefined; readonly done: Promise<void> } | undefined;

  constructor(options: TokenRefreshOptions) {
    this.#options = options;
  }

  /** A socket was acknowledged with `token` (the one `getToken` gave for its `connection_init`). */
  start(session: Session, token: string | undefined): void {
    this.#session = session;
    this.#token = token;
    this.#arm(tokenRefreshDelay(token, Date.now(), this.#options.leadMs));
    session.signal.addEventListener('abort', () => this.stop(session), { once: true });
  }

  /**
   * Refreshes now (the server's expiry notice); joins a refresh already running for the same
   * socket. One still running for a socket gone since would end without handing anything to the
   * current one (it drops its answer on the session mismatch): the current socket gets its own.
   */
  refresh(): Promise<void> {
    const current = this.#inFlight;
    if (current !== undefined && current.session === this.#session) return current.done;
    const flight = {
      session: this.#session,
      done: this.#run().finally(() => {
        if (this.#inFlight === flight) this.#inFlight = undefined;
      }),
    };
    this.#inFlight = flight;
    return flight.done;
  }

  stop(session?: Session): void {
    if (session !== undefined && session !== this.#session) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#session = undefined;
  }

  async #run(): Promise<void> {
    const session = this.#session;
    if (!session) return;
    clearTimeout(this.#timer);
    let token: string | undefined;
    try {
      token = (await this.#options.getToken()) ?? undefined;
    } catch (error) {
      this.#options.onError(error);
      if (session === this.#session) this.#arm(UNCHANGED_RETRY_MS);
      return;
    }
    if (session !== this.#session) return;
    if (token === undefined || token === this.#token) {
      // Nothing new to hand over yet: ask again later, and rely on 4419 if it never comes.
      this.#arm(UNCHANGED_RETRY_MS);
      return;
    }
    try {
      await session.execute(TributaryRefreshAuthDocument, { token });
    } catch (error) {
      if (session !== this.#session) return;
      this.#options.onError(error);
      this.#arm(UNCHANGED_RETRY_MS);
      return;
    }
    if (session !== this.#session) return;
    this.#token = token;
    this.#options.onHandedOver?.(session, token);
    // Never again at once after a handover: a token that looks expired by a skewed device clock
    // (and carries no `iat` to correct it) would otherwise be replaced in a tight loop.
    const delay = tokenRefreshDelay(token, Date.now(), this.#options.leadMs);
    this.#arm(delay === undefined ? undefined : Math.max(delay, UNCHANGED_RETRY_MS));
  }

  #arm(delay: number | undefined): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (delay === undefined || this.#session === undefined) return;
    // setTimeout's largest delay is 2³¹−1 ms; a token living longer is looked at again then.
    this.#timer = setTimeout(() => void this.refresh(), Math.min(delay, 2 ** 31 - 1));
    unref(this.#timer);
  }
}

/** Node: a pending refresh must not keep the process alive. Browsers' timers have no unref. */
export function unref(timer: ReturnType<typeof setTimeout>): void {
  (timer as { unref?: () => void }).unref?.();
}

/** The server's ping announcing the socket's token is about to expire (`{ reason: 'TOKEN_EXPIRING' }`). */
export function isExpiryNotice(payload: unknown): boolean {
  return typeof payload === 'object' && payload !== null && (payload as { reason?: unknown }).reason === 'TOKEN_EXPIRING';
}
