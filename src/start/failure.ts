/**
 * What a process that could not start prints: the error and, line by line, what caused it. A
 * client-facing message ("The database is unavailable right now; retry shortly") says nothing an
 * operator can act on; its cause does (`connect ECONNREFUSED 10.0.0.5:5432`). The first connection
 * to DATABASE_URL says more itself (`databaseConnectFailure`): where it tried and what to check.
 */

/** Causes followed at most, against a chain that loops. */
const MAX_CAUSES = 8;

/**
 * `error`'s stack (or, with `{ stack: false }`, its message), then one `caused by:` line per error
 * in its `cause` chain (an AggregateError's message is the messages of the errors it holds).
 * Credentials in a URL (`postgres://user:secret@…`) are masked wherever they appear.
 */
export function describeFailure(error: unknown, options: { readonly stack?: boolean } = {}): string {
  const head = error instanceof Error ? (options.stack === false ? error.message : (error.stack ?? error.message)) : String(error);
  const lines = [head];
  const seen = new Set<unknown>([error]);
  let cause = error instanceof Error ? error.cause : undefined;
  while (cause !== undefined && cause !== null && !seen.has(cause) && seen.size <= MAX_CAUSES) {
    seen.add(cause);
    lines.push(`caused by: ${summary(cause)}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return maskCredentials(lines.join('\n'));
}

/**
 * What `main` prints when the process cannot start: an expected failure — a misconfiguration, a
 * database refusing the login, a port taken (a TributaryError, or a pg or Node system error: they
 * carry a string `code`) — as its message and causes, without a stack an operator cannot act on
 * (nine lines of pg-protocol frames for a wrong password); anything else, a bug, with its stack.
 */
export function startFailureText(error: unknown): string {
  const expected = error instanceof Error && typeof (error as { readonly code?: unknown }).code === 'string';
  return describeFailure(error, { stack: !expected });
}

function summary(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // Node's connection attempt to every address of a name ("localhost": ::1 and 127.0.0.1) fails
  // as one AggregateError with an empty message: the addresses are in the errors it holds.
  const message = error instanceof AggregateError && error.errors.length > 0 ? error.errors.map((inner) => (inner instanceof Error ? inner.message : String(inner))).join('; ') : error.message;
  return `${error.name}: ${message}`;
}

/** `scheme://user:password@host` → `scheme://user:***@host`. */
function maskCredentials(text: string): string {
  // To the authority's last `@`: a password may hold `@` (pg splits there, as WHATWG URLs do).
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s/?#]*@/gi, '$1:***@');
}
