/**
 * One list of error codes for the whole server.
 *
 * Three channels carry them (STYLE §5):
 * - client-facing GraphQL errors, as `extensions.code` (mapped in `src/schema/errors.ts`), and the
 *   plain HTTP routes' errors as `{ error, code }` (`src/server/rest/json-response.ts`);
 * - masked internal errors, logged with their cause and shown to clients as INTERNAL_SERVER_ERROR;
 * - WebSocket close codes (`src/server/ws/close-codes.ts`).
 *
 * Library code throws `TributaryError`; it carries no GraphQL types so the pipeline stays
 * transport-agnostic.
 */
export const ErrorCode = {
  /** No token, or a token that failed verification. HTTP 401; WebSocket close 4403. */
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  /** A verified principal that may not perform the operation (e.g. admin-only). */
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  /** A revision check failed (the seed's 409); `extensions.currentRevision` says where it is. */
  CONFLICT: 'CONFLICT',
  /** Input that fails validation at the edge: malformed filters, limits, unknown fields. */
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  /** A cursor the log cannot resume from (unknown, expired, other epoch): refetch a snapshot. */
  RESYNC_REQUIRED: 'RESYNC_REQUIRED',
  /** A quota is exhausted — a connection's, a principal's, a webhook endpoint's pending admin deliveries: asking again later may succeed. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** The operation document is not valid GraphQL syntax. */
  GRAPHQL_PARSE_FAILED: 'GRAPHQL_PARSE_FAILED',
  /** An operation exceeds a complexity limit (depth, aliases, tokens). */
  QUERY_TOO_COMPLEX: 'QUERY_TOO_COMPLEX',
  /** A backing service (Redis, Postgres) is unreachable right now; retrying later may succeed. */
  UNAVAILABLE: 'UNAVAILABLE',
  /**
   * The operator's setup is wrong (a source database without `wal_level=logical`, a role without
   * replication rights, an invalid option): said at boot or in the admin answer, never retried.
   */
  MISCONFIGURED: 'MISCONFIGURED',
  /** An automatic persisted query's hash the server does not know: send the query with it (Apollo's APQ). */
  PERSISTED_QUERY_NOT_FOUND: 'PERSISTED_QUERY_NOT_FOUND',
  /** An operation served over the WebSocket only (a subscription; `refreshAuth`, which acts on its socket) was sent over HTTP. */
  WEBSOCKET_ONLY: 'WEBSOCKET_ONLY',
  /**
   * graphql-yoga's, for a request it cannot take as GraphQL over HTTP (a body that is not JSON, a
   * parameter it does not know); HTTP 400. Never thrown here: listed as a code clients meet.
   */
  BAD_REQUEST: 'BAD_REQUEST',
  /** graphql-yoga's, for a body over `HTTP_MAX_BODY_BYTES`; HTTP 413. Never thrown here either. */
  REQUEST_ENTITY_TOO_LARGE: 'REQUEST_ENTITY_TOO_LARGE',
  /** graphql-yoga's, for a document the schema does not validate (a field or argument it lacks). Never thrown here. */
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_VALIDATION_FAILED',
  /** graphql-yoga's, for several operations and no `operationName`. Never thrown here. */
  OPERATION_RESOLUTION_FAILURE: 'OPERATION_RESOLUTION_FAILURE',
  /** Something failed inside the server; details are logged, never sent. */
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface TributaryErrorOptions {
  /** Extra fields for the client, e.g. `{ currentRevision: 7 }`; must not contain secrets. */
  readonly details?: Readonly<Record<string, unknown>>;
  readonly cause?: unknown;
}

/** An error whose code and message are meant for the client. */
export class TributaryError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: TributaryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TributaryError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

/** The caller's input refused: BAD_USER_INPUT naming the field (`details.field`), with any further details. */
export function badUserInput(field: string, message: string, extra: Readonly<Record<string, unknown>> = {}): TributaryError {
  return new TributaryError(ErrorCode.BAD_USER_INPUT, message, { details: { ...extra, field } });
}

export function isTributaryError(error: unknown): error is TributaryError {
  return error instanceof TributaryError;
}

/**
 * A fault inside the server — a broken invariant, unexpected data from a peer (pgoutput, Redis):
 * never the caller's mistake. It is logged with its cause and `fault`, and masked for clients as
 * INTERNAL_SERVER_ERROR. `fault` is a stable name for logs and alerts, e.g. `WAL_PROTOCOL`.
 */
export class InternalError extends Error {
  readonly fault: string;

  constructor(fault: string, message: string, options: { readonly cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'InternalError';
    this.fault = fault;
  }
}

/** Whether a client may see this error's message and code (a TributaryError that is not internal). */
export function isClientFacing(error: unknown): error is TributaryError {
  return isTributaryError(error) && error.code !== ErrorCode.INTERNAL_SERVER_ERROR;
}

/** The stable name to log an error under: an InternalError's `fault`, a TributaryError's code. */
export function faultOf(error: unknown): string | undefined {
  if (error instanceof InternalError) return error.fault;
  return isTributaryError(error) ? error.code : undefined;
}

/** Postgres SQLSTATEs the code reacts to, by name (https://www.postgresql.org/docs/15/errcodes-appendix.html). */
export const SqlState = {
  UNIQUE_VIOLATION: '23505',
  FOREIGN_KEY_VIOLATION: '23503',
  SERIALIZATION_FAILURE: '40001',
  DEADLOCK_DETECTED: '40P01',
  UNDEFINED_TABLE: '42P01',
  /** A schema that does not exist (`SET search_path`, a qualified name). */
  INVALID_SCHEMA_NAME: '3F000',
  /** A database that does not exist (connecting to it). */
  INVALID_CATALOG_NAME: '3D000',
  DUPLICATE_OBJECT: '42710',
  INSUFFICIENT_PRIVILEGE: '42501',
  OBJECT_IN_USE: '55006',
  /** A lock not had within `lock_timeout` (or one `NOWAIT` did not get). */
  LOCK_NOT_AVAILABLE: '55P03',
  /** A write reached a standby, or a primary demoted by a failover. */
  READ_ONLY_SQL_TRANSACTION: '25006',
  /** The server is shutting down (`pg_ctl stop -m fast`, a terminated backend). */
  ADMIN_SHUTDOWN: '57P01',
  /** The server crashed and is restarting. */
  CRASH_SHUTDOWN: '57P02',
  /** The server is starting up or in recovery. */
  CANNOT_CONNECT_NOW: '57P03',
  TOO_MANY_CONNECTIONS: '53300',
  /** A statement cancelled, e.g. by `statement_timeout`. */
  QUERY_CANCELED: '57014',
} as const;

/** SQLSTATE classes (the first two characters) the code reacts to. */
export const SqlStateClass = {
  /** `08xxx`: the connection failed, was refused or was lost. */
  CONNECTION_EXCEPTION: '08',
  /** `22xxx`: a value that does not fit its type (a text that is no uuid, a number out of range). */
  DATA_EXCEPTION: '22',
  /** `23xxx`: a constraint refused the row (unique, foreign key, check, not null). */
  INTEGRITY_CONSTRAINT_VIOLATION: '23',
  /** `53xxx`: the server is out of disk, memory or connections. */
  INSUFFICIENT_RESOURCES: '53',
  /** `54xxx`: a value or statement past a limit of the server (a row too large). */
  PROGRAM_LIMIT_EXCEEDED: '54',
  /** `58xxx`: the server's own failure (I/O). */
  SYSTEM_ERROR: '58',
} as const;

export type SqlState = (typeof SqlState)[keyof typeof SqlState];

/** The SQLSTATE of an error thrown by `pg` or PGlite, when it has one. */
export function sqlStateOf(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = error.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
