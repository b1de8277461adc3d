/**
 * Keeps a live socket's token fresh (issue 13 §2): before the token expires — or at once when the
 * server sends its `TOKEN_EXPIRING` ping — ask `getToken` for the current one and, only when it
 * differs from the socket's, hand it over in-band with the `refreshAuth` mutation on that same
 * socket. Subscriptions go on untouched (the server keeps them; none loses or repeats an event).
 * One refresh at a time per socket (single flight), one `getToken` call per refresh: the server's
 * notice is not followed when the refresh of the token it names is planned already (`notice`).
 * A refresh that fails is reported and retried later; if
 * the token expires meanwhile the server closes with 4419 and the connection reconnects with a
 * token from `getToken`.
 */
import { TributaryRefreshAuthDocument } from './generated.ts';
import type { Session } from './session.ts';
import { tokenExpiresAt, tokenRefreshDelay } from './token.ts';

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

/** How long before the token's end by the server's clock a planned refresh must come for a notice to be left to it, in ms (a quarter of what is left, when less). */
const NOTICE_MARGIN_MS = 5_000;

export class TokenRefresh {
  readonly #options: TokenRefreshOptions;
  #session: Session | undefined;
  #token: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When `#timer` fires (ms since the epoch): the planned refresh of the socket's token. */
  #dueAt: number | undefined;
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

  /**
   * The server's expiry notice (`TOKEN_EXPIRING`) for the token expiring at `expiresAt` (its
   * `tokenExpiresAt`): a refresh now, unless the notice is about another token than the socket's
   * (one handed over since: the server notices the new token before it answers the handover), or
   * the socket's token has a refresh planned that is not overdue (its `exp` read: `leadMs` before
   * it, at most half its life). The server arms its notice again at every handover, so a token
   * living less than its notice period (WS_TOKEN_EXPIRY_NOTICE_MS, 60 s by default) was noticed
   * right after each handover and replaced at once, again and again. A token whose expiry the
   * client cannot read, or a plan overdue (a throttled background tab), follows the notice. So does
   * a plan that would come too late by the server's clock: `expiresInMs` (the notice's, from a
   * server that sends it) is how long the token has left as the server counts, which a device
   * clock behind the server's cannot tell — its plan, made by that clock, may fall after the
   * server closes the socket.
   */
  notice(expiresAt: number | undefined, expiresInMs?: number): Promise<void> {
    const held = this.#token === undefined ? undefined : tokenExpiresAt(this.#token);
    if (expiresAt !== undefined && held !== undefined) {
      // The notice says an ISO instant and `exp` is in seconds: the same token within a second.
      if (Math.abs(held - expiresAt) >= 1000) return Promise.resolve();
      if (this.#dueAt !== undefined && this.#dueAt > Date.now() && this.#plannedInTime(expiresInMs)) return Promise.resolve();
    }
    return this.refresh();
  }

  /** The planned refresh comes a margin before the token's end as the server counts it (unknown: trusted). */
  #plannedInTime(expiresInMs: number | undefined): boolean {
    if (expiresInMs === undefined || this.#dueAt === undefined) return true;
    return this.#dueAt <= Date.now() + expiresInMs - Math.min(NOTICE_MARGIN_MS, expiresInMs / 4);
  }

  stop(session?: Session): void {
    if (session !== undefined && session !== this.#session) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dueAt = undefined;
    this.#session = undefined;
  }

  async #run(): Promise<void> {
    const session = this.#session;
    if (!session) return;
    clearTimeout(this.#timer);
    this.#dueAt = undefined;
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
    this.#dueAt = undefined;
    if (delay === undefined || this.#session === undefined) return;
    // setTimeout's largest delay is 2³¹−1 ms; a token living longer is looked at again then.
    const capped = Math.min(delay, 2 ** 31 - 1);
    this.#dueAt = Date.now() + capped;
    this.#timer = setTimeout(() => void this.refresh(), capped);
    unref(this.#timer);
  }
}

/** Node: a pending refresh must not keep the process alive. Browsers' timers have no unref. */
export function unref(timer: ReturnType<typeof setTimeout>): void {
  (timer as { unref?: () => void }).unref?.();
}

/** The server's ping announcing the socket's token is about to expire (`{ reason: 'TOKEN_EXPIRING', tokenExpiresAt }`). */
export function isExpiryNotice(payload: unknown): boolean {
  return typeof payload === 'object' && payload !== null && (payload as { reason?: unknown }).reason === 'TOKEN_EXPIRING';
}

/** How long the token an expiry notice is about has left by the server's clock (`expiresInMs`); undefined from a server that does not say. */
export function noticedExpiresIn(payload: unknown): number | undefined {
  const ms = typeof payload === 'object' && payload !== null ? (payload as { expiresInMs?: unknown }).expiresInMs : undefined;
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/** The expiry an expiry notice names (`tokenExpiresAt`, ISO 8601) in ms since the epoch; undefined when it names none. */
export function noticedExpiry(payload: unknown): number | undefined {
  const at = typeof payload === 'object' && payload !== null ? (payload as { tokenExpiresAt?: unknown }).tokenExpiresAt : undefined;
  const ms = typeof at === 'string' ? Date.parse(at) : Number.NaN;
  return Number.isFinite(ms) ? ms : undefined;
}
