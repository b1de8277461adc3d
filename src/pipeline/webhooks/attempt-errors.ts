/**
 * What a failed webhook attempt's log says: a short reason a person can act on, and never a secret
 * — the host, not the URL with its query; a redirect's target without credentials, query or
 * fragment — within `MAX_ERROR_LENGTH` characters. The HTTP client (`webhook-http.ts`) attempts;
 * this names what went wrong.
 */

/** An attempt's error is at most this long. */
export const MAX_ERROR_LENGTH = 200;

/** A connection refused because of where it would go; its message is the attempt's error. */
export class RefusedTargetError extends Error {
  readonly code = 'ERR_WEBHOOK_TARGET_REFUSED';
}

/**
 * `redirect not followed: 301 to https://example.com/new`, or without `to …` when there is no
 * `Location`. The target is named without credentials, query or fragment — a redirect from http to
 * https repeats the endpoint's own query, and any token in it — and is cut to keep the text within
 * MAX_ERROR_LENGTH.
 */
export function redirectError(status: number, location: string | undefined): string {
  const error = `redirect not followed: ${status}`;
  const target = location === undefined ? '' : secretFreeLocation(location.trim());
  if (target === '') return error;
  const room = MAX_ERROR_LENGTH - `${error} to `.length;
  return `${error} to ${target.length <= room ? target : `${target.slice(0, room - 1)}…`}`;
}

/** Resolves a relative `Location`; never shown. */
const RELATIVE_BASE = 'http://relative.invalid';

/**
 * A `Location` as a URL parser reads it — absolute, scheme-relative (`//host/…`) or a path — without
 * its user info, query (`?…` says there was one) and fragment; empty when it is no URL at all.
 */
function secretFreeLocation(location: string): string {
  let url: URL;
  try {
    url = new URL(location, RELATIVE_BASE);
  } catch {
    return '';
  }
  const rest = `${url.pathname}${url.search === '' ? '' : '?…'}`;
  if (URL.canParse(location)) return `${url.protocol}//${url.host}${rest}`;
  return location.startsWith('//') ? `//${url.host}${rest}` : rest;
}

const ERROR_TEXT: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the receiver',
  EPIPE: 'connection closed by the receiver while sending',
  UND_ERR_SOCKET: 'connection closed by the receiver',
  UND_ERR_CONNECT_TIMEOUT: 'connect timeout',
  UND_ERR_HEADERS_TIMEOUT: 'timeout waiting for response headers',
  UND_ERR_BODY_TIMEOUT: 'timeout reading the response',
  ETIMEDOUT: 'connect timeout',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EAI_AGAIN: 'DNS lookup failed for now',
  UND_ERR_INFO: 'invalid response from the receiver',
  HPE_INVALID_CONSTANT: 'invalid HTTP response from the receiver',
};

/** A short, secret-free reason (the host, never the URL with its query). */
export function describeError(error: unknown, hostname: string): string {
  const found = findCoded(error);
  if (found instanceof RefusedTargetError) return found.message;
  const code = typeof found?.code === 'string' ? found.code : undefined;
  if (code === 'ENOTFOUND' || code === 'ENODATA') return `DNS: ${hostname} not found`;
  if (code !== undefined && code in ERROR_TEXT) return ERROR_TEXT[code] ?? code;
  const message = found instanceof Error ? found.message : String(error);
  if (code !== undefined && (code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('ERR_SSL'))) {
    return truncate(`TLS: ${message}`);
  }
  return truncate(code === undefined ? message : `${code}: ${message}`);
}

/**
 * The error that says what happened: ours, or the first with a `code` through `cause` and an
 * AggregateError's `errors` (Node connecting to every address of a host).
 */
export function findCoded(error: unknown): (Error & { code?: unknown }) | undefined {
  const queue: unknown[] = [error];
  for (let steps = 0; steps < 10 && queue.length > 0; steps += 1) {
    const candidate = queue.shift();
    if (!(candidate instanceof Error)) continue;
    if (candidate instanceof RefusedTargetError) return candidate;
    if (typeof (candidate as { code?: unknown }).code === 'string' && !(candidate instanceof AggregateError)) return candidate;
    if (candidate instanceof AggregateError) queue.push(...(candidate.errors as unknown[]));
    if (candidate.cause !== undefined) queue.push(candidate.cause);
  }
  return error instanceof Error ? error : undefined;
}

function truncate(text: string): string {
  return text.length <= MAX_ERROR_LENGTH ? text : `${text.slice(0, MAX_ERROR_LENGTH - 1)}…`;
}
