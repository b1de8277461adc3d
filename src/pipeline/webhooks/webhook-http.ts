/**
 * One webhook attempt over HTTP: POST the signed body, classify what the receiver did (issue 11
 * §4, §5, §9). The delivery engine decides what happens next; this layer only reports.
 *
 * - Nothing a receiver does makes `send` throw: a refused connection, a reset, silence, a redirect
 *   or a gigabyte of response all come back as an `AttemptResult`.
 * - One total timeout covers the wait for a connection, connect, headers and the part of the body
 *   we read; an attempt still queued for a connection at its timeout is failed then and never sent.
 * - Redirects are not followed: a 3xx is a failed attempt (following one would let a public URL
 *   point us at a private one, and the receiver should be configured with its real URL); its error
 *   names where the receiver pointed (its `Location`, without the query).
 * - Only the first `maxResponseExcerptBytes` of the response are kept for the attempt log; a body
 *   past a small drain limit is not read at all (the connection is closed instead of reused).
 * - Unless private targets are allowed, the address connected to is checked at connect time —
 *   the host's DNS answers inside the socket's own lookup, a literal IP before the socket is
 *   opened — so a name that re-resolves to 127.0.0.1 after the creation check (DNS rebinding)
 *   still cannot reach it.
 * - Host names are resolved with c-ares (webhook-dns.ts), never on the thread pool: one receiver
 *   whose DNS does not answer must not hold every other endpoint's connections.
 *
 * undici rather than `fetch`: it exposes the connector (the lookup hook above), per-origin
 * keep-alive pools, and its dispatch interface, on which an attempt takes the status and the start
 * of the body as they arrive — no response stream or abort signal per attempt (measured on the
 * drain: ~8 µs less server CPU per delivery than `request` with a signal and an async iterator).
 */
import { isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import packageJson from '../../../package.json' with { type: 'json' };
import { describeError, findCoded, MAX_ERROR_LENGTH, redirectError, RefusedTargetError } from './attempt-errors.ts';
import { forbiddenAddressReason } from './target-guard.ts';
import { createWebhookDns, type WebhookDns, type WebhookDnsOptions } from './webhook-dns.ts';

export interface AttemptResult {
  /**
   * `delivered`: a 2xx. `gone`: 410, the receiver asks to stop (disable the endpoint).
   * `throttled`: 429 or 503, retry after `retryAfterMs` when given. `refused`: not sent, the
   * target's address is one webhooks may not reach (its name resolves to a private address now).
   * `failed`: anything else — a non-2xx status, a redirect, a timeout, a connection error.
   */
  readonly outcome: 'delivered' | 'failed' | 'gone' | 'throttled' | 'refused';
  /** The HTTP status; null when no response arrived. */
  readonly status: number | null;
  /** From the start of the attempt to its result, in ms. */
  readonly durationMs: number;
  /** A short reason when no status explains the outcome (timeout, connection error, redirect and its target); else null. */
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
  /**
   * Cuts every attempt in flight (each ends failed: its receiver may or may not have had it; the
   * deliverer retries it at once and counts it as cut, not as its receiver's failure) and closes
   * every connection: a shutdown that cannot wait for them.
   */
  abort(): Promise<void>;
  /** `abort` was called: an attempt that failed since was cut, not refused by its receiver. */
  aborted(): boolean;
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
  /**
   * How receivers' names are resolved (nameservers, timeouts). @default the system's nameservers,
   * and its hosts file for names DNS does not know where private targets are allowed
   */
  readonly dns?: WebhookDnsOptions;
}

export const WEBHOOK_USER_AGENT = `Tributary-Webhooks/${packageJson.version}`;

/** Response bytes read at most, so a connection can be reused after a modest body. */
const DRAIN_LIMIT_BYTES = 64 * 1024;
/** undici's own connect timeout; the attempt's total timeout usually ends it first. */
const CONNECT_TIMEOUT_MS = 10_000;

export function createWebhookHttpClient(options: WebhookHttpClientOptions): WebhookHttpClient {
  const excerptBytes = options.maxResponseExcerptBytes ?? 1024;
  const now = options.now ?? Date.now;
  const dns = createWebhookDns({ hostsFallback: options.allowPrivateTargets, ...options.dns });
  const agent = new Agent({
    connections: options.connectionsPerOrigin ?? 32,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 4000,
    // The attempt's own timeout (AttemptHandler) is the one limit on the wait for headers and body:
    // undici's (300 s each) never came first, and each request re-armed its connection's timer
    // between them and the keep-alive's (a timer made and cleared twice a request).
    headersTimeout: 0,
    bodyTimeout: 0,
    connect: options.allowPrivateTargets ? { timeout: CONNECT_TIMEOUT_MS, lookup: lookupWith(dns, false) } : guardedConnector(dns),
  });
  let closing: Promise<void> | undefined;
  /** Attempts in flight were cut (`abort`). */
  let cut = false;
  const targets = new Map<string, Target | string>();
  const targetOf = (text: string): Target | string => {
    let target = targets.get(text);
    if (target === undefined) {
      target = parseTarget(text);
      if (targets.size >= TARGETS_KEPT) targets.clear();
      targets.set(text, target);
    }
    return target;
  };

  return {
    send(attempt) {
      const started = performance.now();
      if (closing !== undefined) return Promise.resolve(failedAttempt('webhook client closed', started));
      const target = targetOf(attempt.url);
      if (typeof target === 'string') return Promise.resolve(failedAttempt(target, started));
      return new Promise<AttemptResult>((resolve) => {
        const handler = new AttemptHandler({ target, started, excerptBytes, timeoutMs: attempt.timeoutMs, now, resolve });
        try {
          agent.dispatch({ origin: target.origin, path: target.path, method: 'POST', headers: outgoingHeaders(attempt.headers), body: attempt.body }, handler);
        } catch (error) {
          handler.onResponseError(undefined, error instanceof Error ? error : new Error(String(error)));
        }
      });
    },
    close() {
      closing ??= agent.close().finally(() => dns.close());
      return closing;
    },
    abort() {
      cut = true;
      dns.close();
      closing = agent.destroy(new Error('webhook client shut down'));
      return closing;
    },
    aborted: () => cut,
  };
}

/** Where an attempt goes, read from its URL once per URL. */
interface Target {
  readonly origin: string;
  readonly path: string;
  readonly hostname: string;
}

/** Parsed endpoint URLs kept by a client (a few per endpoint); cleared when it grows past this. */
const TARGETS_KEPT = 10_000;

/** The origin and path of a URL, or why it cannot be attempted. */
function parseTarget(text: string): Target | string {
  try {
    const url = new URL(text);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return `unsupported protocol ${url.protocol}`;
    return { origin: url.origin, path: `${url.pathname}${url.search}`, hostname: url.hostname };
  } catch {
    return 'invalid URL';
  }
}

function failedAttempt(error: string, started: number, outcome: 'failed' | 'refused' = 'failed'): AttemptResult {
  return { outcome, status: null, durationMs: Math.round(performance.now() - started), error, responseExcerpt: null, retryAfterMs: null };
}

interface AttemptHandlerOptions {
  readonly target: Target;
  /** `performance.now()` when the attempt began. */
  readonly started: number;
  readonly excerptBytes: number;
  readonly timeoutMs: number;
  readonly now: () => number;
  readonly resolve: (result: AttemptResult) => void;
}

/**
 * One attempt on undici's dispatch interface: the status, `Retry-After` and the start of the body
 * are taken as they arrive, with no response stream in between. The attempt settles once — at the
 * end of the response, after the drain limit (the connection is aborted, not reused), at an error,
 * or at the timeout, which also aborts a request still waiting for a connection when it gets one.
 */
class AttemptHandler implements Dispatcher.DispatchHandler {
  readonly #options: AttemptHandlerOptions;
  readonly #timer: NodeJS.Timeout;
  #controller: Dispatcher.DispatchController | undefined;
  #settled = false;
  #status: number | null = null;
  #retryAfter: string | undefined;
  #location: string | undefined;
  readonly #kept: Buffer[] = [];
  #keptBytes = 0;
  #readBytes = 0;

  constructor(options: AttemptHandlerOptions) {
    this.#options = options;
    this.#timer = setTimeout(() => {
      // Past the status, the answer stands with what arrived of the body.
      if (this.#status !== null) this.#answered();
      else this.#settle(failedAttempt(`timeout after ${options.timeoutMs} ms`, options.started));
      this.#controller?.abort(new Error('webhook attempt timed out'));
    }, options.timeoutMs);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#settled) controller.abort(new Error('webhook attempt timed out'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Readonly<Record<string, string | string[] | undefined>>): void {
    // 1xx answers are interim: the status that counts comes after them.
    if (statusCode < 200) return;
    this.#status = statusCode;
    const retryAfter = headers['retry-after'];
    this.#retryAfter = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
    const location = headers['location'];
    this.#location = Array.isArray(location) ? location[0] : location;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) return;
    this.#readBytes += chunk.length;
    const { excerptBytes } = this.#options;
    if (this.#keptBytes < excerptBytes) {
      const part = chunk.subarray(0, excerptBytes - this.#keptBytes);
      this.#kept.push(part);
      this.#keptBytes += part.length;
    }
    // Past the drain limit the rest is not read: the connection is closed instead of reused.
    if (this.#readBytes >= Math.max(excerptBytes, DRAIN_LIMIT_BYTES)) {
      this.#answered();
      controller.abort(new Error('webhook response not read past the drain limit'));
    }
  }

  onResponseEnd(): void {
    this.#answered();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    // The status is the receiver's answer; a body cut short after it does not change it.
    if (this.#status !== null) this.#answered();
    else {
      const refused = findCoded(error) instanceof RefusedTargetError;
      this.#settle(failedAttempt(describeError(error, this.#options.target.hostname), this.#options.started, refused ? 'refused' : 'failed'));
    }
  }

  #answered(): void {
    if (this.#settled || this.#status === null) return;
    // Postgres text cannot hold NUL: a binary answer is logged without it.
    const excerpt = this.#keptBytes === 0 ? null : Buffer.concat(this.#kept).toString('utf8').replaceAll('\u0000', '');
    const { started, now } = this.#options;
    this.#settle(classify(this.#status, this.#retryAfter, this.#location, excerpt, Math.round(performance.now() - started), now));
  }

  #settle(result: AttemptResult): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#options.resolve(result);
  }
}

function outgoingHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const result: Record<string, string> = { 'content-type': 'application/json', 'user-agent': WEBHOOK_USER_AGENT };
  // No array of entries per attempt: the signature's four headers, already lower-case, go as they are.
  for (const name in headers) result[name.toLowerCase()] = headers[name]!;
  return result;
}

function classify(
  status: number,
  retryAfter: string | undefined,
  location: string | undefined,
  responseExcerpt: string | null,
  durationMs: number,
  now: () => number,
): AttemptResult {
  const result = { status, durationMs, responseExcerpt, error: null, retryAfterMs: null };
  if (status >= 200 && status < 300) return { ...result, outcome: 'delivered' };
  if (status === 410) return { ...result, outcome: 'gone' };
  if (status === 429 || status === 503) {
    return { ...result, outcome: 'throttled', retryAfterMs: parseRetryAfter(retryAfter, now()) };
  }
  if (status >= 300 && status < 400) return { ...result, outcome: 'failed', error: redirectError(status, location) };
  return { ...result, outcome: 'failed' };
}

const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '\\d{2}:\\d{2}:\\d{2}';
/** RFC 9110 §5.6.7's three HTTP-date forms, all GMT: IMF-fixdate, RFC 850's and asctime's (which does not say GMT). */
const IMF_FIXDATE = new RegExp(`^${DAY}, \\d{2} ${MONTH} \\d{4} ${TIME} GMT$`);
const RFC_850_DATE = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \\d{2}-${MONTH}-\\d{2} ${TIME} GMT$`);
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} (?: \\d|\\d{2}) ${TIME} \\d{4}$`);

/**
 * RFC 9110 §10.2.3: delay-seconds or an HTTP-date, in ms from `nowMs`; null for anything else —
 * also the loose forms `Date.parse` would read (`3600.5` is the year 3600 to it), which would
 * hold the delivery, and its entity's later events, to the end of the retry window.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  let date = Number.NaN;
  if (IMF_FIXDATE.test(text) || RFC_850_DATE.test(text)) date = Date.parse(text);
  else if (ASCTIME_DATE.test(text)) date = Date.parse(`${text} GMT`);
  return Number.isNaN(date) ? null : Math.max(0, date - nowMs);
}

/**
 * A connector that refuses non-public addresses: a literal IP before any socket is opened, a host
 * name inside the socket's own DNS lookup (every address it resolves to must be public).
 */
function guardedConnector(dns: WebhookDns): buildConnector.connector {
  const connect = buildConnector({ timeout: CONNECT_TIMEOUT_MS, lookup: lookupWith(dns, true) });
  return (connectOptions, callback) => {
    if (isIP(connectOptions.hostname) !== 0) {
      const reason = forbiddenAddressReason(connectOptions.hostname);
      if (reason !== null) {
        const error = refusedTarget(connectOptions.hostname, ` is ${reason}`);
        queueMicrotask(() => callback(error, null));
        return;
      }
    }
    connect(connectOptions, callback);
  };
}

/** The sockets' lookup: the host's addresses from `dns`; when `guarded`, every one must be public. */
function lookupWith(dns: WebhookDns, guarded: boolean): LookupFunction {
  return (hostname, lookupOptions, callback) => {
    const family = lookupOptions.family === 'IPv4' ? 4 : lookupOptions.family === 'IPv6' ? 6 : (lookupOptions.family ?? 0);
    dns.resolve(hostname, family).then(
      (addresses) => {
        for (const { address } of guarded ? addresses : []) {
          const reason = forbiddenAddressReason(address);
          if (reason !== null) return callback(refusedTarget(hostname, ` resolves to ${address}, ${reason}`), '', 0);
        }
        const [first] = addresses;
        if (lookupOptions.all) return callback(null, [...addresses]);
        if (first === undefined) return callback(new RefusedTargetError(`refused target: ${hostname} has no address`), '', 0);
        callback(null, first.address, first.family);
      },
      (error: unknown) => callback(error as NodeJS.ErrnoException, '', 0),
    );
  };
}

/** What lifts an address refusal: the setting, where it must be set. */
const ALLOW_HINT = ' (WEBHOOK_ALLOW_PRIVATE_TARGETS=true on the processes that deliver allows it)';

/**
 * An attempt refused for its address (`host` and what about it, `rest`), as the attempt log and
 * the admin API show it: with the setting that allows it, since the process that refuses it is
 * the one that delivers (role `all` or `workers`), which a server allowed to create the endpoint
 * does not make so. A long host name is cut to keep the text within MAX_ERROR_LENGTH.
 */
function refusedTarget(host: string, rest: string): RefusedTargetError {
  const room = MAX_ERROR_LENGTH - `refused target: ${rest}${ALLOW_HINT}`.length;
  const shown = host.length <= room ? host : `${host.slice(0, Math.max(1, room - 1))}…`;
  return new RefusedTargetError(`refused target: ${shown}${rest}${ALLOW_HINT}`);
}
