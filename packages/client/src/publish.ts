/**
 * `client.publish(topic, payload)`: a publish that is safe to retry, retried. Each publish carries
 * an idempotency key (a random UUID unless given), so a try whose answer was lost — the socket
 * went, the server answered UNAVAILABLE after the event went out — is tried again without
 * publishing twice: the server answers a retry with the first try's event.
 */
import { backoffDelay, pause, type BackoffOptions } from './backoff.ts';
import { isTokenRefusal, retryAfterOf, SessionEndedError, TributaryRequestError } from './errors.ts';
import type { TributaryEventFieldsFragment, TributaryPublishMutation, TributaryPublishMutationVariables } from './generated.ts';

export type PublishedEvent = TributaryEventFieldsFragment;

export interface PublishOptions {
  /** The event's `type`. @default 'message' (the server's) */
  readonly type?: string;
  /**
   * What the event is about (an order's id, say): webhook endpoints receive one entity's events in
   * the order they were published. 1–1,024 bytes (UTF-8). @default none: delivered side by side
   */
  readonly entity?: string;
  /**
   * The idempotency key (1–255 printable ASCII characters without spaces): pass your own, derived
   * from your data, to retry safely yourself — after `publish` gave up, or after a restart. @default a random UUID
   */
  readonly idempotencyKey?: string;
  /** Tries in all, the first included. @default 10 */
  readonly attempts?: number;
  /** The wait between tries: full jitter over [0, min(maxMs, initialMs × 2ⁿ)). @default { initialMs: 500, maxMs: 5000 } */
  readonly backoff?: BackoffOptions;
  /** Told of each failed try (`attempt`, from 1) that will be tried again, and the key every try carries. */
  readonly onRetry?: (error: unknown, attempt: number, idempotencyKey: string) => void;
  /**
   * Ends the publish when it aborts: no further try, and the call rejects with the signal's reason
   * (an `AbortError` unless given one), as `fetch` does. A try already sent may still place its
   * event: pass your own `idempotencyKey` when you may abort, and publish again with it to learn
   * which event that was.
   */
  readonly signal?: AbortSignal;
}

/** The publish's tries: 10 over up to ~30 s, longer than a server holds a key for a try that died (15 s). */
export const PUBLISH_RETRY = { attempts: 10, backoff: { initialMs: 500, maxMs: 5_000 } } as const;

/** Close codes after which the same publish cannot succeed: too big a message (1009), not authorized (4401, 4403, 4412). */
const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([1009, 4401, 4403, 4412]);

type SendPublish = (variables: TributaryPublishMutationVariables) => Promise<TributaryPublishMutation>;

/**
 * Whether a failed try may be tried again with the same key: the socket went before the answer
 * (but not for a reason that would end the retry the same way), the server was unavailable, the
 * connection's operations were at their limit, the socket's token had expired (UNAUTHENTICATED:
 * refused before it ran, until the socket is handed a new token), or a try with the key has not
 * placed its event yet.
 */
export function isRetryablePublishError(error: unknown): boolean {
  if (error instanceof SessionEndedError) return error.closeCode === undefined || !FINAL_CLOSE_CODES.has(error.closeCode);
  if (!(error instanceof TributaryRequestError)) return false;
  if (error.hasCode('UNAVAILABLE') || error.hasCode('RATE_LIMITED') || isTokenRefusal(error)) return true;
  return error.errors.some((item) => item.extensions?.['code'] === 'CONFLICT' && item.extensions['inFlight'] === true);
}

/**
 * Publishes with retries (see the module). Rejects with an error that is not retryable at once,
 * with the last error after `attempts` tries, and once `signal` aborts with the reason of the
 * caller's `options.signal` when that is what aborted, SessionEndedError otherwise (the client
 * closed, the connection turned unauthorized).
 */
export async function publishWithRetry(
  send: SendPublish,
  topic: string,
  payload: Readonly<Record<string, unknown>>,
  options: PublishOptions,
  signal: AbortSignal,
): Promise<PublishedEvent> {
  const attempts = Number.isFinite(options.attempts) ? Math.max(1, Math.floor(options.attempts!)) : PUBLISH_RETRY.attempts;
  const backoff = { ...PUBLISH_RETRY.backoff, ...options.backoff };
  // The connection unauthorized: its error (with the server's reason) is the signal's reason.
  const ended = (): unknown => (options.signal?.aborted ? options.signal.reason : signal.reason instanceof SessionEndedError ? signal.reason : new SessionEndedError());
  if (signal.aborted) throw ended();
  const idempotencyKey = options.idempotencyKey ?? randomKey();
  // Copied once: every try sends the same request, whatever the caller does with its object meanwhile.
  const variables: TributaryPublishMutationVariables = { topic, type: options.type ?? null, payload: structuredClone(payload), entity: options.entity ?? null, idempotencyKey };
  for (let attempt = 1; ; attempt += 1) {
    try {
      return answerOf((await send(variables)).publish, 'publish');
    } catch (error) {
      if (signal.aborted) throw ended();
      if (attempt >= attempts || !isRetryablePublishError(error)) throw error;
      options.onRetry?.(error, attempt, idempotencyKey);
      // A subject's rate limit says when its budget is whole again: no try before that.
      await pause(Math.max(backoffDelay(attempt - 1, backoff), retryAfterOf(error) ?? 0), signal);
      if (signal.aborted) throw ended();
    }
  }
}

/**
 * A mutation's answer. Several mutation fields in one request are each nullable: one refused is
 * null, its error in `errors` — and a result with errors is rejected before it gets here
 * (TributaryRequestError, `session.ts`). Null without an error is no answer: it is refused as one
 * too, never handed on as a value.
 */
export function answerOf<T>(value: T | null, field: string): T {
  if (value === null) throw new TributaryRequestError([{ message: `The server sent no answer for ${field}` }]);
  return value;
}

/**
 * A random UUID (v4). `crypto.randomUUID` exists only in secure contexts (HTTPS, localhost) in
 * browsers; `getRandomValues` everywhere.
 */
export function randomKey(): string {
  const { crypto } = globalThis;
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
