import { ErrorCode, TributaryError } from '../errors.ts';
import { assertStorableText, hasControlCharacter } from './json-input.ts';

/**
 * The query parameters a database URL given to `setOutboxSource` or `setCdcSource` may carry.
 * pg copies every parameter into the connection's settings, over the options the server sets
 * itself, so anything else is refused:
 * - `sslrootcert`, `sslcert`, `sslkey` name files the server reads, synchronously, at every
 *   connect (a FIFO freezes the process, `/dev/zero` exhausts its memory; any readable file
 *   becomes a probe);
 * - `host`, `port`, `user`, `password` override the URL's own (the host shown to admins is not the
 *   one connected to: internal ports probed, with the error texts as answer);
 * - `options`, `statement_timeout`, `query_timeout`, `idle_in_transaction_session_timeout`, … undo
 *   the limits the readers' pools set (a poller stuck on a lock holds its partition).
 * `sslmode` chooses TLS without naming a file (the system's CAs verify the server);
 * `application_name` only labels the session in `pg_stat_activity`.
 */
const ACCEPTED_PARAMETERS: ReadonlySet<string> = new Set(['sslmode', 'application_name']);

/** The values pg understands (`no-verify`: TLS without checking the certificate, as pg spells it). */
const SSL_MODES: ReadonlySet<string> = new Set(['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify']);

/** Names echoed in an error are cut: the caller has the URL, the answer only has to point into it. */
const MAX_NAME = 40;

/** A DNS name or an IPv4 address, or an IPv6 address in brackets (as `URL` gives `hostname`). */
const HOST = /^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])$/;


/** Postgres keeps 63 bytes of an application name. */
const MAX_APPLICATION_NAME = 63;

/** A URL part percent-decoded, as pg decodes it; undefined when its encoding is broken. */
function percentDecoded(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}

/**
 * A source database URL, as it will be stored (as given, in a text column: no NUL) and parsed:
 * postgres:// or postgresql://, with no query parameter but those above. BAD_USER_INPUT naming
 * `databaseUrl` (and `details.parameter`) otherwise.
 */
export function parseDatabaseUrl(text: string): URL {
  assertStorableText('databaseUrl', text);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid('databaseUrl must be a postgres:// URL');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw invalid('databaseUrl must be a postgres:// URL');
  // pg decodes the host: `%2Ftmp` would connect to a Unix socket on this server's machine, where
  // logins are often trusted, and no host at all to its default socket. A name or an IP address only.
  if (!HOST.test(url.hostname)) throw invalid('databaseUrl must name its host: a DNS name or an IP address (no Unix socket path, no percent-encoding)');
  for (const part of [url.username, url.password, url.pathname]) {
    // pg decodes a part whose encoding is broken differently (it re-encodes it first, and `%00`
    // comes back a NUL, which ends a name in the startup packet and begins a setting of the
    // caller's): such a part is refused, not guessed at.
    const decoded = percentDecoded(part);
    if (decoded === undefined) throw invalid('databaseUrl has a % not followed by two hexadecimal digits: write a literal % as %25');
    if (hasControlCharacter(decoded)) throw invalid('databaseUrl must not hold control characters, encoded or not');
  }
  for (const [name, value] of url.searchParams) {
    const shown = name.length > MAX_NAME ? `${name.slice(0, MAX_NAME)}…` : name;
    if (!ACCEPTED_PARAMETERS.has(name)) {
      throw invalid(`databaseUrl must not set the connection parameter "${shown}"; it may set only ${[...ACCEPTED_PARAMETERS].join(' and ')}`, shown);
    }
    if (name === 'sslmode' && !SSL_MODES.has(value)) throw invalid(`databaseUrl's sslmode must be one of ${[...SSL_MODES].join(', ')}`, name);
    if (name === 'application_name' && (hasControlCharacter(value) || value.length > MAX_APPLICATION_NAME)) {
      throw invalid(`databaseUrl's application_name must be at most ${MAX_APPLICATION_NAME} characters without control characters`, name);
    }
  }
  return url;
}

function invalid(message: string, parameter?: string): TributaryError {
  return new TributaryError(ErrorCode.BAD_USER_INPUT, message, { details: parameter === undefined ? { field: 'databaseUrl' } : { field: 'databaseUrl', parameter } });
}

/** Where a database URL points, as the admin API shows it (CDC sources, outboxes alike): never the password. */
export interface DatabaseLocation {
  /** The host name, with the port when the URL gives one (`db:5433`). */
  readonly host: string;
  readonly database: string;
  readonly user: string;
}

export function databaseLocation(url: URL): DatabaseLocation {
  return {
    host: url.port ? `${url.hostname}:${url.port}` : url.hostname,
    // Checked by `parseDatabaseUrl` when saved; a URL saved before it is shown as written.
    database: percentDecoded(url.pathname.replace(/^\//, '')) ?? url.pathname.replace(/^\//, ''),
    user: percentDecoded(url.username) ?? url.username,
  };
}
