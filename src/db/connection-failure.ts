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

/** SQLSTATE class `28xxx`: the login was refused (a wrong password, a user pg_hba.conf does not let in). */
const INVALID_AUTHORIZATION_CLASS = '28';

/**
 * What a process that could not connect to DATABASE_URL at start says: the host and port it
 * tried, the URL without its password, and what to check — where a request gets "unavailable
 * right now; retry shortly" (`unavailableIfDisconnected`), which at start sends an operator to
 * wait for a database whose URL is wrong. The driver's error is the cause (printed below it).
 * UNAVAILABLE when the database may come (refused, silent, starting), MISCONFIGURED otherwise (a
 * name that does not resolve, a login refused, a database that does not exist).
 */
export function databaseConnectFailure(url: string, error: unknown): TributaryError {
  const cause = error instanceof TributaryError && error.code === ErrorCode.UNAVAILABLE && error.cause !== undefined ? error.cause : error;
  const hint = connectHint(cause);
  const message = `Could not connect to the database at DATABASE_URL ${hostAndPort(url)} (${maskPassword(url)})${hint === undefined ? '' : `: ${hint}`}`;
  return new TributaryError(isDatabaseOutage(cause) ? ErrorCode.UNAVAILABLE : ErrorCode.MISCONFIGURED, message, { cause });
}

/** What to check, by the driver's error (its SQLSTATE or Node's code); undefined when the cause says it best. */
function connectHint(error: unknown): string | undefined {
  const found = codedError(error);
  const code = sqlStateOf(found);
  if (code === 'ECONNREFUSED') return 'the connection was refused — is Postgres running there, and are the host and port right?';
  if (code === 'ENOTFOUND') return 'the host name does not resolve — is it spelt right?';
  if (code === 'EAI_AGAIN') return 'the host name could not be resolved now (DNS did not answer)';
  if (code === SqlState.INVALID_CATALOG_NAME) return 'that database does not exist — create it, or fix its name in the URL';
  if (code?.length === 5 && code.startsWith(INVALID_AUTHORIZATION_CLASS)) return 'the login was refused — check the user name and password in the URL';
  if (code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || (found instanceof Error && /timeout/i.test(found.message))) {
    return 'no answer — is the host right, and does a firewall let this machine reach that port?';
  }
  return undefined;
}

/** The error that carries a code: `error`, or the first of an AggregateError's (every address of a name refused). */
function codedError(error: unknown): unknown {
  if (error instanceof AggregateError) return error.errors.find((inner) => sqlStateOf(inner) !== undefined) ?? error.errors[0];
  return error;
}

/** `host:port` of a Postgres URL, with libpq's defaults (a `host` parameter names a socket folder or a host). */
function hostAndPort(url: string): string {
  try {
    const parsed = new URL(url);
    const host = parsed.hostname !== '' ? parsed.hostname : (parsed.searchParams.get('host') ?? 'localhost');
    return `${host}:${parsed.port !== '' ? parsed.port : (parsed.searchParams.get('port') ?? '5432')}`;
  } catch {
    return '(a URL that does not parse)';
  }
}

/** `scheme://user:password@host` → `scheme://user:***@host`; a password given as `?password=` too. */
function maskPassword(url: string): string {
  // To the authority's last `@` (a password may hold `@`: pg splits there, as WHATWG URLs do).
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s/?#]*@/i, '$1:***@').replace(/([?&]password=)[^&]*/i, '$1***');
}
