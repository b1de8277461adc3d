import { SqlState, SqlStateClass, sqlStateOf } from '../errors.ts';

/**
 * Socket errors of a database that is there but cannot be reached now (down, restarting, behind a
 * firewall dropping packets): worth retrying, nothing in the request to fix. ENOTFOUND is not one:
 * a host name that does not resolve is almost always a typo in the URL (EAI_AGAIN is the resolver's
 * own temporary failure).
 */
const UNREACHABLE_ERRNOS: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'EPIPE', 'EAI_AGAIN']);

/** Server answers that say "not now": shutting down, starting up, out of connections. */
const UNAVAILABLE_STATES: ReadonlySet<string> = new Set<string>([SqlState.ADMIN_SHUTDOWN, SqlState.CRASH_SHUTDOWN, SqlState.CANNOT_CONNECT_NOW, SqlState.TOO_MANY_CONNECTIONS]);

/** pg's and pg-pool's own errors for a connection or statement that took too long, or a lost connection (no code). */
const UNAVAILABLE_MESSAGES = [/^timeout expired$/, /^timeout exceeded when trying to connect$/, /^Connection terminated/, /^Query read timeout$/];

/**
 * Whether a database error means it cannot be reached now, rather than that the request is wrong
 * (bad credentials, no such database, no privilege): UNAVAILABLE, to be retried, not BAD_USER_INPUT.
 * Looks into an AggregateError (a host name with several addresses: one error per address tried)
 * and the `cause` chain (pg-pool wraps a connect timeout).
 */
export function isDatabaseUnreachable(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 4) return false;
  const code = sqlStateOf(error);
  if (code !== undefined && (UNREACHABLE_ERRNOS.has(code) || UNAVAILABLE_STATES.has(code) || (/^[0-9A-Z]{5}$/.test(code) && code.startsWith(SqlStateClass.CONNECTION_EXCEPTION)))) return true;
  if (UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(error.message))) return true;
  if (error instanceof AggregateError && error.errors.some((inner) => isDatabaseUnreachable(inner, depth + 1))) return true;
  return isDatabaseUnreachable(error.cause, depth + 1);
}
