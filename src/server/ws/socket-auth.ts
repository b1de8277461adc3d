import { Kind, OperationTypeNode, parse, type DocumentNode } from 'graphql';
import type { SubscribePayload } from 'graphql-ws';
import type { Principal } from '../../auth/principal.ts';
import { isExpiredTokenError, type TokenVerifier } from '../../auth/token-verifier.ts';
import { ErrorCode, isClientFacing, isTributaryError, TributaryError } from '../../errors.ts';
import { CloseCode } from './close-codes.ts';

export interface SocketAuthOptions {
  readonly verifier: TokenVerifier;
  /** @see Limits.tokenExpiryGraceMs */
  readonly graceMs: number;
  /** @see Limits.tokenExpiryNoticeMs */
  readonly noticeMs: number;
  /** Tells the client its token expires soon: the payload of a `ping`. */
  readonly notify: (payload: Readonly<Record<string, unknown>>) => void;
  /** The token expired (and its grace period passed) without a refresh. */
  readonly expired: () => void;
  /**
   * The `Authorization` header of the socket's upgrade request: its token when `connection_init`
   * carries none (seed 004's `Authorization: Bearer` on the WebSocket request; services only, as
   * browsers cannot set it). @default none
   */
  readonly upgradeAuthorization?: string | undefined;
}

/** How a socket whose `connection_init` was not accepted is closed; `unexpected`: a fault to log. */
export interface InitRefusal {
  readonly code: CloseCode;
  readonly reason: string;
  readonly unexpected: boolean;
}

/** What a refresh did: the socket's new expiry. */
export type RefreshResult = { readonly kind: 'refreshed'; readonly principal: Principal } | { readonly kind: 'principal-changed' };

/**
 * The refusal of a socket that sent no token, naming both places one may go; with "Forbidden: "
 * it fits a close frame's 123 bytes of reason (HTTP's says "send Authorization: Bearer").
 */
const NO_TOKEN = 'No token: send {"authorization":"Bearer <token>"} in connection_init or an Authorization header on the upgrade';

/** setTimeout's largest delay; a later moment is re-armed when this one fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The principal of one socket over its life (issue 13 §2): verified at `connection_init`,
 * replaced by a refreshed token of the same subject, tenant, app and env, and the two timers its
 * expiry sets — a notice `noticeMs` before it (a `ping` whose payload says
 * `{ reason: "TOKEN_EXPIRING", tokenExpiresAt, expiresInMs }`), and the close `graceMs` after it.
 */
export class SocketAuth {
  readonly #options: SocketAuthOptions;
  #principal: Principal | undefined;
  #noticeTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  /** The upgrade request's `Authorization`, until `connection_init` has been verified. */
  #upgradeAuthorization: string | undefined;
  /** The token of `connection_init` came from the upgrade request's header: said in a refusal. */
  #fromUpgrade = false;
  /** The last refresh asked for: the next one starts once it has settled. */
  #refreshes: Promise<unknown> = Promise.resolve();
  #disposed = false;

  constructor(options: SocketAuthOptions) {
    this.#options = options;
    this.#upgradeAuthorization = options.upgradeAuthorization;
  }

  /** Set once `connection_init` was verified. */
  get principal(): Principal | undefined {
    return this.#principal;
  }

  /**
   * Verifies the `connection_init` payload's authorization (GraphiQL and some clients send it
   * capitalized), or, when it has none, the upgrade request's `Authorization` header.
   *
   * `connection_init`'s wins when both are sent, and a refused one is not retried with the header:
   * it is what the protocol and graphql-ws clients authenticate with, obtained again at every
   * connect (`connectionParams`), where the header was fixed when the client made its socket and
   * may be the token that just expired — or one a proxy in front added for itself.
   * @throws TributaryError UNAUTHENTICATED
   */
  async verifyInit(payload: Readonly<Record<string, unknown>> | undefined): Promise<Principal> {
    const key = payload && Object.keys(payload).find((name) => name.toLowerCase() === 'authorization');
    const value = key === undefined ? undefined : payload?.[key];
    if (value !== undefined && typeof value !== 'string') {
      throw new TributaryError(ErrorCode.UNAUTHENTICATED, '"authorization" must be a string "Bearer <token>"');
    }
    // A blank value is no token, in either place.
    const fromInit = value?.trim() === '' ? undefined : value;
    const fromUpgrade = this.#upgradeAuthorization?.trim() === '' ? undefined : this.#upgradeAuthorization;
    // Kept no longer than needed: a socket lives for hours, its upgrade's token is spent here.
    this.#upgradeAuthorization = undefined;
    this.#fromUpgrade = fromInit === undefined && fromUpgrade !== undefined;
    const authorization = fromInit ?? fromUpgrade;
    // Development mode takes no token at all: only a verifying server says where one goes.
    if (authorization === undefined && this.#options.verifier.mode === 'jwt') throw new TributaryError(ErrorCode.UNAUTHENTICATED, NO_TOKEN);
    return this.#options.verifier.verify(authorization);
  }

  /**
   * Adopts the socket's principal and arms its timers; false when its token has already expired
   * (past `exp`, the verifier's clock tolerance and the grace): the caller closes with 4419.
   */
  start(principal: Principal): boolean {
    this.#principal = principal;
    this.#arm(principal);
    const until = this.#validUntil(principal);
    return until === undefined || until + this.#options.graceMs > Date.now();
  }

  /**
   * How a `connection_init` whose verification failed closes the socket: 1013 when the token
   * could not be checked yet (UNAVAILABLE: retried), 4419 for an expired token (retried with a
   * fresh one), 4403 for any other refusal of the token. A fault inside the server (a bug in the
   * verifier, an INTERNAL_SERVER_ERROR) is not a refusal: 4500 "Internal server error", as
   * graphql-ws's own server closes when its `onConnect` throws, `unexpected` so the caller logs
   * it; `@tributary/client` retries it with backoff, where 4403 would stop it as unauthorized.
   */
  initRefusal(error: unknown): InitRefusal {
    if (isTributaryError(error) && error.code === ErrorCode.UNAVAILABLE) {
      return { code: CloseCode.TryAgainLater, reason: `Try again later: ${error.message}`, unexpected: false };
    }
    if (isExpiredTokenError(error)) return { code: CloseCode.TokenExpired, reason: 'Token expired: reconnect with a new token', unexpected: false };
    if (isClientFacing(error)) {
      const source = this.#fromUpgrade ? ' (upgrade Authorization header)' : '';
      return { code: CloseCode.Forbidden, reason: `Forbidden: ${error.message}${source}`, unexpected: false };
    }
    return { code: CloseCode.InternalServerError, reason: 'Internal server error', unexpected: true };
  }

  /** The last moment the token is accepted: its `exp` plus the verifier's clock tolerance. */
  #validUntil(principal: Principal): number | undefined {
    return principal.expiresAt === undefined ? undefined : principal.expiresAt + this.#options.verifier.clockToleranceMs;
  }

  /**
   * Verifies a new token (`Bearer` optional). Another subject, tenant, app or env is
   * `principal-changed` (the caller closes the socket); otherwise it becomes the socket's principal
   * and the expiry moves. `applied` runs next, before any later refresh starts (the caller checks
   * its operations against the new principal there); its value is the answer.
   *
   * Refreshes run one at a time, in the order they were asked for — `refreshAuth` mutations and
   * ping refreshes alike: verified concurrently, an older token whose key must first be fetched
   * would land after a newer one and give the socket back what the newer one dropped.
   * @throws TributaryError UNAUTHENTICATED for a token that fails verification.
   */
  refresh<T>(token: string, applied: (result: RefreshResult) => T): Promise<T> {
    const run = this.#refreshes.then(async () => applied(await this.#verifyAndAdopt(token)));
    this.#refreshes = run.catch(() => undefined);
    return run;
  }

  async #verifyAndAdopt(token: string): Promise<RefreshResult> {
    const next = await this.#options.verifier.verify(/^bearer /i.test(token) ? token : `Bearer ${token}`);
    const current = this.#principal;
    if (this.#disposed || !current) throw new TributaryError(ErrorCode.UNAUTHENTICATED, 'The socket is closing');
    if (next.subject !== current.subject || next.tenant !== current.tenant || next.app !== current.app || next.env !== current.env) {
      return { kind: 'principal-changed' };
    }
    this.#principal = next;
    this.#arm(next);
    return { kind: 'refreshed', principal: next };
  }

  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#noticeTimer);
    clearTimeout(this.#expiryTimer);
  }

  #arm(principal: Principal): void {
    clearTimeout(this.#noticeTimer);
    clearTimeout(this.#expiryTimer);
    const { expiresAt } = principal;
    if (this.#disposed || expiresAt === undefined) return;
    const { noticeMs, graceMs } = this.#options;
    if (noticeMs > 0 && expiresAt > Date.now()) {
      this.#noticeTimer = this.#at(expiresAt - noticeMs, () => {
        // `expiresInMs` by this server's clock: a client whose clock is behind cannot tell it from `tokenExpiresAt`.
        this.#options.notify({ reason: 'TOKEN_EXPIRING', tokenExpiresAt: new Date(expiresAt).toISOString(), expiresInMs: Math.max(0, expiresAt - Date.now()) });
      });
    }
    this.#expiryTimer = this.#at(expiresAt + this.#options.verifier.clockToleranceMs + graceMs, () => this.#options.expired());
  }

  /** Runs `run` at `when` (ms since the epoch), at once when it has passed. */
  #at(when: number, run: () => void): NodeJS.Timeout {
    const remaining = when - Date.now();
    const timer = setTimeout(() => {
      if (Date.now() >= when) run();
      else if (this.#noticeTimer === timer) this.#noticeTimer = this.#at(when, run);
      else this.#expiryTimer = this.#at(when, run);
    }, Math.max(0, Math.min(remaining, MAX_TIMER_MS)));
    timer.unref();
    return timer;
  }
}

/**
 * Past its token's expiry (during the verifier's clock tolerance and `WS_TOKEN_EXPIRY_GRACE_MS`)
 * a socket may run its own refresh only: the refusal of any other operation (UNAUTHENTICATED),
 * else undefined.
 */
export function expiredFor(principal: Principal, payload: SubscribePayload): TributaryError | undefined {
  if (principal.expiresAt === undefined || principal.expiresAt > Date.now() || onlyRefreshesAuth(payload)) return undefined;
  return new TributaryError(ErrorCode.UNAUTHENTICATED, 'Token expired: send refreshAuth with a new token first');
}

/**
 * Whether an operation does nothing but `refreshAuth` (a mutation whose only root fields are
 * `refreshAuth` and `__typename`): what a socket whose token has expired may still run during its
 * grace period. A query it cannot read (unparsable, or a persisted query sent by hash) is not one.
 */
function onlyRefreshesAuth(payload: SubscribePayload): boolean {
  let document: DocumentNode;
  try {
    document = parse(payload.query);
  } catch {
    return false;
  }
  const operations = document.definitions.filter((definition) => definition.kind === Kind.OPERATION_DEFINITION);
  const operation = payload.operationName == null ? (operations.length === 1 ? operations[0] : undefined) : operations.find((candidate) => candidate.name?.value === payload.operationName);
  if (operation?.operation !== OperationTypeNode.MUTATION) return false;
  const fields = operation.selectionSet.selections;
  return fields.length > 0 && fields.every((field) => field.kind === Kind.FIELD && (field.name.value === 'refreshAuth' || field.name.value === '__typename')) && fields.some((field) => field.kind === Kind.FIELD && field.name.value === 'refreshAuth');
}
