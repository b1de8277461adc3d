/**
 * Errors the client reports. A GraphQL error keeps the server's `extensions.code` (the server's
 * stable codes: RESYNC_REQUIRED, FORBIDDEN, BAD_USER_INPUT, UNAUTHENTICATED…).
 */

export interface GraphQLErrorLike {
  readonly message: string;
  readonly extensions?: Readonly<Record<string, unknown>>;
}

/**
 * The server answered an operation with errors. `code` is the first error's `extensions.code`.
 * `data` is what it answered beside them: in a request of several mutation fields, those that ran
 * keep their answers (one refused is null) — an event published, an endpoint created with its
 * once-shown secret — so a caller reads them there instead of sending the request again.
 */
export class TributaryRequestError extends Error {
  readonly code: string | undefined;
  readonly errors: readonly GraphQLErrorLike[];
  /** The answer's `data` beside its errors; undefined when there was none (null or absent). */
  readonly data: Readonly<Record<string, unknown>> | undefined;

  constructor(errors: readonly GraphQLErrorLike[], data?: Readonly<Record<string, unknown>> | null) {
    super(errors.map((error) => error.message).join('; ') || 'GraphQL error');
    this.name = 'TributaryRequestError';
    this.errors = errors;
    this.data = data ?? undefined;
    const code = errors[0]?.extensions?.['code'];
    this.code = typeof code === 'string' ? code : undefined;
  }

  /** Whether any of the errors has this `extensions.code`. */
  hasCode(code: string): boolean {
    return this.errors.some((error) => error.extensions?.['code'] === code);
  }
}

/**
 * The socket an operation ran on went away (it resumes on the next one), or the client closed; or
 * the connection is `unauthorized` — then `reason` says why, in the server's words.
 */
export class SessionEndedError extends Error {
  /**
   * The socket's close code when the server or the network closed it (1009: a message too big;
   * 4401, 4403, 4412: not authorized), undefined when the client ended it or it is not known.
   */
  readonly closeCode: number | undefined;
  /**
   * The close frame's reason as the server wrote it — for a refused token (4403) what is wrong
   * with it: "Forbidden: No token: send …", "Forbidden: Invalid token: …" — undefined when it gave
   * none. Also in `message`.
   */
  readonly reason: string | undefined;

  constructor(closeCode?: number, reason?: string) {
    const said = reason ? `: ${reason}` : '';
    super(closeCode === undefined ? `The connection ended${said}` : `The connection ended (close code ${closeCode}${said})`);
    this.name = 'SessionEndedError';
    this.closeCode = closeCode;
    this.reason = reason || undefined;
  }
}

/**
 * The server keeps refusing, as expired, the token `getToken` returns (an auth library whose
 * refresh failed hands out its cached token): `refusals` times in a row, each closing the new
 * socket (`closeCode` 4419, or 4403 from older servers). The client goes on retrying with backoff,
 * asking `getToken` each time, and connects once it returns a valid token; meanwhile this is what
 * the client's `onError` and every subscription are told (a live model's or hook's `error`,
 * `onRetry`). Not `unauthorized`: nothing waits for `reconnect()`.
 */
export class TokenExpiredError extends SessionEndedError {
  /** The refused token's `exp` in ms since the epoch; undefined when it has none or cannot be read. */
  readonly expiresAt: number | undefined;
  /** Refusals of it in a row so far. */
  readonly refusals: number;

  constructor(closeCode: number, reason: string | undefined, expiresAt: number | undefined, refusals: number) {
    super(closeCode, reason);
    this.name = 'TokenExpiredError';
    this.expiresAt = expiresAt;
    this.refusals = refusals;
    const ago = expiresAt === undefined ? 0 : Math.round((Date.now() - expiresAt) / 1000);
    const when = ago >= 0 ? `${ago} s ago by this device's clock` : `in ${-ago} s by this device's clock, which may run behind the server's`;
    const exp = expiresAt === undefined ? 'no readable exp' : `exp ${new Date(expiresAt).toISOString()}, ${when}`;
    const said = reason ? `: ${reason}` : '';
    this.message =
      `The token getToken returned is expired (${exp}): the server refused it ${refusals} times in a row (close code ${closeCode}${said}). ` +
      'The client keeps retrying with backoff, asking getToken each time, until it returns a valid token';
  }
}

/** The close code a CloseEvent (or anything shaped like one) carries; undefined for anything else. */
export function closeCodeOf(event: unknown): number | undefined {
  const code = typeof event === 'object' && event !== null ? (event as { code?: unknown }).code : undefined;
  return typeof code === 'number' ? code : undefined;
}

/** The reason a CloseEvent (or anything shaped like one) carries; undefined when empty or none. */
export function closeReasonOf(event: unknown): string | undefined {
  const reason = typeof event === 'object' && event !== null ? (event as { reason?: unknown }).reason : undefined;
  return typeof reason === 'string' && reason !== '' ? reason : undefined;
}

/** Whether `value` looks like a list of GraphQL errors (what graphql-ws hands an `error` sink). */
export function isGraphQLErrorList(value: unknown): value is GraphQLErrorLike[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'object' && item !== null && typeof (item as { message?: unknown }).message === 'string');
}

/**
 * Codes of a refusal the same request would meet again: its input (the topic, model, filter), the
 * token's permissions, or the document against the server's schema (GRAPHQL_VALIDATION_FAILED is
 * graphql-yoga's). Not here, so retried with backoff: INTERNAL_SERVER_ERROR (a server bug, an
 * unclassified database error: the next try may pass), UNAVAILABLE, RATE_LIMITED, MISCONFIGURED
 * (the operator's setup, which can be fixed while the client runs), UNAUTHENTICATED (an operation
 * refused for the socket's expired token; a bad token closes the socket instead), codes this
 * client does not expect (CONFLICT, PERSISTED_QUERY_NOT_FOUND, WEBSOCKET_ONLY), unknown codes and none.
 */
export const PERMANENT_CODES: readonly string[] = [
  'BAD_USER_INPUT',
  'FORBIDDEN',
  'NOT_FOUND',
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'QUERY_TOO_COMPLEX',
];

/** Whether `error` is the server's refusal a retry would meet again (`PERMANENT_CODES`): the subscription stops. */
export function isPermanentRefusal(error: unknown): boolean {
  return error instanceof TributaryRequestError && PERMANENT_CODES.some((code) => error.hasCode(code));
}

export function isResyncRequired(error: unknown): boolean {
  return error instanceof TributaryRequestError && error.hasCode('RESYNC_REQUIRED');
}

/**
 * The server refused an operation for the socket's token: on an acknowledged socket, one that has
 * expired (its grace period, `WS_TOKEN_EXPIRY_GRACE_MS`), which runs only `refreshAuth` until it
 * is handed a new token — a bad token closes the socket instead.
 */
export function isTokenRefusal(error: unknown): boolean {
  return error instanceof TributaryRequestError && error.hasCode('UNAUTHENTICATED');
}

/**
 * How long the server asked to wait before trying again (`extensions.retryAfterMs` of a
 * RATE_LIMITED refusal: when the subject's budget is whole again), in ms; undefined when it did not say.
 */
export function retryAfterOf(error: unknown): number | undefined {
  if (!(error instanceof TributaryRequestError)) return undefined;
  let longest: number | undefined;
  for (const each of error.errors) {
    const wait = each.extensions?.['retryAfterMs'];
    if (typeof wait === 'number' && Number.isFinite(wait) && wait > 0) longest = Math.max(longest ?? 0, wait);
  }
  return longest;
}

/**
 * The server ended the subscription because the socket's refreshed token may no longer read it
 * (FORBIDDEN, `extensions.reason: PERMISSION_REVOKED`): what it delivered must not stay on show.
 */
export function isPermissionRevoked(error: unknown): boolean {
  return error instanceof TributaryRequestError && error.errors.some((each) => each.extensions?.['code'] === 'FORBIDDEN' && each.extensions['reason'] === 'PERMISSION_REVOKED');
}

/** The server's close code for a message larger than its `WS_MAX_PAYLOAD_BYTES` (RFC 6455 "message too big"). */
export const MESSAGE_TOO_BIG = 1009;

/**
 * An operation whose message is too big for the server: it stops for good (BAD_USER_INPUT, so a
 * permanent refusal), instead of closing the socket — and every other subscription with it — again
 * on every reconnection. Raised before sending, when the `subscribe` frame (its UTF-8 bytes) is
 * over the client's `maxMessageBytes`; or after the server closed a socket with 1009 and this
 * subscription's was the largest frame it had not answered yet (`closeCode` 1009 then).
 * `extensions.reason` is `MESSAGE_TOO_LARGE`.
 */
export class MessageTooLargeError extends TributaryRequestError {
  /** The frame's UTF-8 bytes (with an id of up to 20 characters). */
  readonly bytes: number;
  /** 1009 when the server closed the socket for it; undefined when the client refused to send it. */
  readonly closeCode: number | undefined;

  constructor(bytes: number, limit: number | undefined, closeCode?: number) {
    const message =
      limit === undefined
        ? `The server closed the socket for a message too big (close code ${closeCode}): this subscription's, ${bytes} bytes, is not sent again`
        : `The message is ${bytes} bytes, over maxMessageBytes (${limit}): not sent`;
    super([{ message, extensions: { code: 'BAD_USER_INPUT', reason: 'MESSAGE_TOO_LARGE', bytes, ...(limit !== undefined && { maxBytes: limit }), ...(closeCode !== undefined && { closeCode }) } }]);
    this.name = 'MessageTooLargeError';
    this.bytes = bytes;
    this.closeCode = closeCode;
  }
}

/** Whether `error` says an operation's message was too big to send (`MessageTooLargeError`). */
export function isMessageTooLarge(error: unknown): error is MessageTooLargeError {
  return error instanceof MessageTooLargeError;
}
