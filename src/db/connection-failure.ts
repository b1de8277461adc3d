import { ErrorCode, SqlState, SqlStateClass, sqlStateOf, TributaryError } from '../errors.ts';

/** Socket errors that mean the database could not be reached or the connection was lost. */
const NETWORK_ERRORS: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EAI_AGAIN',
]);

/** SQLSTATEs of a server that is going away, coming back or full: retrying later may succeed. */
const TRANSIENT_STATES: ReadonlySet<string> = new Set([
  SqlState.ADMIN_SHUTDOWN,
  SqlState.CRASH_SHUTDOWN,
  SqlState.CANNOT_CONNECT_NOW,
  SqlState.TOO_MANY_CONNECTIONS,
]);

/**
 * What `pg` throws without a code when the connection dies or never comes: "Connection
 * terminated unexpectedly", "Connection terminated due to connection timeout", "timeout exceeded
 * when trying to connect", "Client has encountered a connection error and is not queryable", and
 * a statement not answered within the pool's `query_timeout` ("Query read timeout").
 */
const PG_CONNECTION_MESSAGE = /^Connection terminated|^timeout exceeded when trying to connect|connection error and is not queryable|^Query read timeout$/;

/** `pg`'s message for a statement not answered within `query_timeout` (the connection is then unusable). */
const PG_QUERY_TIMEOUT_MESSAGE = 'Query read timeout';

/**
 * Whether `error` (or the driver's error it wraps, as `unavailableIfDisconnected` does) is a
 * statement that timed out client-side: still in progress on its connection, which must be given up.
 */
export function isQueryTimeout(error: unknown): error is Error {
  for (let at: unknown = error; at instanceof Error; at = at.cause) {
    if (at.message === PG_QUERY_TIMEOUT_MESSAGE && sqlStateOf(at) === undefined) return true;
  }
  return false;
}

/** Whether `error` says the database is unreachable right now (not that the statement is wrong). */
export function isConnectionFailure(error: unknown): boolean {
  if (error instanceof AggregateError && error.errors.some(isConnectionFailure)) return true;
  const state = sqlStateOf(error);
  if (state !== undefined && (NETWORK_ERRORS.has(state) || TRANSIENT_STATES.has(state))) return true;
  if (state !== undefined && state.length === 5 && state.startsWith(SqlStateClass.CONNECTION_EXCEPTION)) return true;
  return error instanceof Error && state === undefined && PG_CONNECTION_MESSAGE.test(error.message);
}

/** Out of disk or memory, or failing its I/O: the server's state, not the statement's. */
const SERVER_STATE_CLASSES: readonly string[] = [SqlStateClass.INSUFFICIENT_RESOURCES, SqlStateClass.SYSTEM_ERROR];

/**
 * Whether `error` says the database cannot take statements right now, whatever they are: it is
 * unreachable (`isConnectionFailure`), read-only for the moment (a failover landed on a standby
 * or a demoted primary), or out of disk, memory or I/O. Reads may still work then, so a caller
 * that would otherwise take the failure as a refusal of what it writes must retry instead. The
 * CDC readers ask `isConnectionFailure` alone: they read, and tell an unreachable source apart.
 */
export function isDatabaseOutage(error: unknown): boolean {
  if (isConnectionFailure(error)) return true;
  const state = sqlStateOf(error);
  if (state === undefined || state.length !== 5) return false;
  return state === SqlState.READ_ONLY_SQL_TRANSACTION || SERVER_STATE_CLASSES.some((stateClass) => state.startsWith(stateClass));
}

/**
 * A database outage (`isDatabaseOutage`) as the client-facing UNAVAILABLE ("retry shortly"), with
 * the driver's error as its cause for the logs; any other error is returned as it is.
 */
export function unavailableIfDisconnected(error: unknown): unknown {
  if (!isDatabaseOutage(error)) return error;
  return new TributaryError(ErrorCode.UNAVAILABLE, 'The database is unavailable right now; retry shortly', { cause: error });
}
