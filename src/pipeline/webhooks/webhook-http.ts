/**
 * One webhook attempt over HTTP: POST the signed body, classify what the receiver did (issue 11
 * §4, §5, §9). The delivery engine decides what happens next; this layer only reports.
 *
 * - Nothing a receiver does makes `send` throw: a refused connection, a reset, silence, a redirect
 *   or a gigabyte of response all come back as an `AttemptResult`.
 * - One total timeout covers connect, headers and the part of the body we read.
 * - Redirects are not followed: a 3xx is a failed attempt (following one would let a public URL
 *   point us at a private one, and the receiver should be configured with its real URL).
 * - Only the first `maxResponseExcerptBytes` of the response are kept for the attempt log; a body
 *   past a small drain limit is not read at all (the connection is closed instead of reused).
 * - Unless private targets are allowed, the address connected to is checked at connect time —
 *   the host's DNS answers inside the socket's own lookup, a literal IP before the socket is
 *   opened — so a name that re-resolves to 127.0.0.1 after the creation check (DNS rebinding)
 *   still cannot reach it.
 *
 * undici rather than `fetch`: it exposes the connector (the lookup hook above), per-origin
 * keep-alive pools and a streaming body we can stop reading.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import packageJson from '../../../package.json' with { type: 'json' };
import { forbiddenAddressReason } from './target-guard.ts';

export interface AttemptResult {
  /**
   * `delivered`: a 2xx. `gone`: 410, the receiver asks to stop (disable the endpoint).
   * `throttled`: 429 or 503, retry after `retryAfterMs` when given. `failed`: anything else — a
   * non-2xx status, a redirect, a refused target, a timeout, a connection error.
   */
  readonly outcome: 'delivered' | 'failed' | 'gone' | 'throttled';
  /** The HTTP status; null when no response arrived. */
  readonly status: number | null;
  /** From the start of the attempt to its result, in ms. */
  readonly durationMs: number;
  /** A short reason when no status explains the outcome (timeout, connection error, redirect); else null. */
  readonly error: string | null;
  /** The start of the response body, UTF-8, capped; null without a response body. */
  readonly responseExcerpt: string | null;
  /** The receiver's `Retry-After`, in ms (0 for a date already past); null when absent or unreadable. */
  readonly retryAfterMs: number | null;
}

export interface WebhookRequest {
  readonly url: string;
  /** The signature headers and any endpoint headers; names are sent lower-case. */
  readonly headers: Readonly<Record<string, string>>;
  /** The exact body that was signed. */
  readonly body: string;
  /** Total time allowed for the attempt, in ms (connect, send, headers and the excerpt). */
  readonly timeoutMs: number;
}

export interface WebhookHttpClient {
  send(request: WebhookRequest): Promise<AttemptResult>;
  /** Waits for attempts in flight, then closes every connection. Idempotent. */
  close(): Promise<void>;
}

export interface WebhookHttpClientOptions {
  /** Allow loopback, private and other non-public addresses (`WEBHOOK_ALLOW_PRIVATE_TARGETS`). */
  readonly allowPrivateTargets: boolean;
  /** How much of a response body is kept for the attempt log, in bytes. @default 1024 */
  readonly maxResponseExcerptBytes?: number;
  /** Open connections per origin (scheme, host, port); further requests queue. @default 32 */
  readonly connectionsPerOrigin?: number;
  /** How long an idle keep-alive connection stays open, in ms (a receiver's hint may shorten it). @default 4000 */
  readonly keepAliveTimeoutMs?: number;
  /** The clock for `Retry-After` dates, in ms since the epoch. @default Date.now */
  readonly now?: () => number;
}

export const WEBHOOK_USER_AGENT = `Tributary-Webhooks/${packageJson.version}`;

/** Response bytes read at most, so a connection can be reused after a modest body. */
const DRAIN_LIMIT_BYTES = 64 * 1024;
/** undici's own connect timeout; the attempt's total timeout usually ends it first. */
const CONNECT_TIMEOUT_MS = 10_000;
const MAX_ERROR_LENGTH = 200;

/** A connection refused because of where it would go; its message is the attempt's error. */
class RefusedTargetError extends Error {
  readonly code = 'ERR_WEBHOOK_TARGET_REFUSED';
}

export function createWebhookHttpClient(options: WebhookHttpClientOptions): WebhookHttpClient {
  const excerptBytes = options.maxResponseExcerptBytes ?? 1024;
  const now = options.now ?? Date.now;
  const agent = new Agent({
    connections: options.connectionsPerOrigin ?? 32,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 4000,
    connect: options.allowPrivateTargets ? { timeout: CONNECT_TIMEOUT_MS } : guardedConnector(),
  });
  let closing: Promise<void> | undefined;

  return {
    async send(attempt) {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      const failed = (error: string): AttemptResult => ({
        outcome: 'failed',
        status: null,
        durationMs: elapsed(),
        error,
        responseExcerpt: null,
        retryAfterMs: null,
      });
      if (closing !== undefined) return failed('webhook client closed');
      let url: URL;
      try {
        url = new URL(attempt.url);
      } catch {
        return failed('invalid URL');
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return failed(`unsupported protocol ${url.protocol}`);

      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), attempt.timeoutMs);
      try {
        const response = await request(url, {
          dispatcher: agent,
          method: 'POST',
          headers: outgoingHeaders(attempt.headers),
          body: attempt.body,
          signal: controller.signal,
        });
        // The status is the receiver's answer; a body cut short after it does not change it.
        const responseExcerpt = await readExcerpt(response.body, excerptBytes);
        return classify(response.statusCode, response.headers['retry-after'], responseExcerpt, elapsed(), now);
      } catch (error) {
        return failed(controller.signal.aborted ? `timeout after ${attempt.timeoutMs} ms` : describeError(error, url));
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      closing ??= agent.close();
      return closing;
    },
  };
}

function outgoingHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const result: Record<string, string> = { 'content-type': 'application/json', 'user-agent': WEBHOOK_USER_AGENT };
  for (const [name, value] of Object.entries(headers)) result[name.toLowerCase()] = value;
  return result;
}

function classify(
  status: number,
  retryAfterHeader: string | string[] | undefined,
  responseExcerpt: string | null,
  durationMs: number,
  now: () => number,
): AttemptResult {
  const result = { status, durationMs, responseExcerpt, error: null, retryAfterMs: null };
  if (status >= 200 && status < 300) return { ...result, outcome: 'delivered' };
  if (status === 410) return { ...result, outcome: 'gone' };
  if (status === 429 || status === 503) {
    const header = Array.isArray(retryAfterHeader) ? retryAfterHeader[0] : retryAfterHeader;
    return { ...result, outcome: 'throttled', retryAfterMs: parseRetryAfter(header, now()) };
  }
  if (status >= 300 && status < 400) return { ...result, outcome: 'failed', error: `redirect not followed: ${status}` };
  return { ...result, outcome: 'failed' };
}

/** RFC 9110 §10.2.3: delay-seconds or an HTTP-date. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - nowMs);
}

/**
 * Reads the body up to the drain limit, keeping the first `capBytes`. Stopping early destroys the
 * body, which closes that connection rather than reading a huge answer to the end.
 */
async function readExcerpt(body: AsyncIterable<Buffer>, capBytes: number): Promise<string | null> {
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let readBytes = 0;
  try {
    for await (const chunk of body) {
      readBytes += chunk.length;
      if (keptBytes < capBytes) {
        const part = chunk.subarray(0, capBytes - keptBytes);
        kept.push(part);
        keptBytes += part.length;
      }
      if (readBytes >= Math.max(capBytes, DRAIN_LIMIT_BYTES)) break;
    }
  } catch {
    // Cut short (reset, timeout): what arrived is still worth logging.
  }
  if (keptBytes === 0) return null;
  // Postgres text cannot hold NUL; a binary answer is logged without it.
  return Buffer.concat(kept).toString('utf8').replaceAll('\u0000', '');
}

/**
 * A connector that refuses non-public addresses: a literal IP before any socket is opened, a host
 * name inside the socket's own DNS lookup (every address it resolves to must be public).
 */
function guardedConnector(): buildConnector.connector {
  const connect = buildConnector({ timeout: CONNECT_TIMEOUT_MS, lookup: guardedLookup });
  return (connectOptions, callback) => {
    if (isIP(connectOptions.hostname) !== 0) {
      const reason = forbiddenAddressReason(connectOptions.hostname);
      if (reason !== null) {
        const error = new RefusedTargetError(`refused target: ${connectOptions.hostname} is ${reason}`);
        queueMicrotask(() => callback(error, null));
        return;
      }
    }
    connect(connectOptions, callback);
  };
}

const guardedLookup: LookupFunction = (hostname, lookupOptions, callback) => {
  dnsLookup(hostname, { family: lookupOptions.family, hints: lookupOptions.hints, all: true }, (error, addresses) => {
    if (error) return callback(error, '', 0);
    for (const { address } of addresses) {
      const reason = forbiddenAddressReason(address);
      if (reason !== null) {
        return callback(new RefusedTargetError(`refused target: ${hostname} resolves to ${address}, ${reason}`), '', 0);
      }
    }
    const first: LookupAddress | undefined = addresses[0];
    if (lookupOptions.all) return callback(null, addresses);
    if (first === undefined) return callback(new RefusedTargetError(`refused target: ${hostname} has no address`), '', 0);
    callback(null, first.address, first.family);
  });
};

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
function describeError(error: unknown, url: URL): string {
  const found = findCoded(error);
  if (found instanceof RefusedTargetError) return found.message;
  const code = typeof found?.code === 'string' ? found.code : undefined;
  if (code === 'ENOTFOUND' || code === 'ENODATA') return `DNS: ${url.hostname} not found`;
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
function findCoded(error: unknown): (Error & { code?: unknown }) | undefined {
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
