/**
 * `client.publish(topic, payload)`: a publish that is safe to retry, retried. Each publish carries
 * an idempotency key (a random UUID unless given), so a try whose answer was lost — the socket
 * went, the server answered UNAVAILABLE after the event went out — is tried again without
 * publishing twice: the server answers a retry with the first try's event.
 */
import { backoffDelay, pause, type BackoffOptions } from './backoff.ts';
import { SessionEndedError, TributaryRequestError } from './errors.ts';
import type { TributaryPublishMutation, TributaryPublishMutationVariables } from './generated.ts';

export type PublishedEvent = TributaryPublishMutation['publish'];

export interface PublishOptions {
  /** The event's `type`. @default 'message' (the server's) */
  readonly type?: string;
  /** The idempotency key (1–255 printable ASCII characters): pass your own to make retries across restarts safe too. @default a random UUID */
  readonly idempotencyKey?: string;
  /** Tries in all, the first included. @default 5 */
  readonly attempts?: number;
  /** The wait between tries: full jitter over [0, min(maxMs, initialMs × 2ⁿ)). @default { initialMs: 250, maxMs: 5000 } */
  readonly backoff?: BackoffOptions;
  /** Told of each failed try that will be retried (for logging). */
  readonly onRetry?: (error: unknown, attempt: number) => void;
}

type Request = (variables: TributaryPublishMutationVariables) => Promise<TributaryPublishMutation>;

/**
 * Whether a failed try may be retried with the same key: the socket went before the answer, the
 * server was unavailable, or a try with the key has not placed its event yet.
 */
export function isRetryablePublishError(error: unknown): boolean {
  if (error instanceof SessionEndedError) return true;
  if (!(error instanceof TributaryRequestError)) return false;
  return error.hasCode('UNAVAILABLE') || error.errors.some((item) => item.extensions?.['code'] === 'CONFLICT' && item.extensions['inFlight'] === true);
}

/** Publishes with retries (see the module); rejects with the last error, or at once with one that is not retryable or when `signal` aborts. */
export async function publishWithRetry(
  request: Request,
  topic: string,
  payload: Readonly<Record<string, unknown>>,
  options: PublishOptions,
  signal: AbortSignal,
): Promise<PublishedEvent> {
  const attempts = Math.max(1, options.attempts ?? 5);
  const variables: TributaryPublishMutationVariables = {
    topic,
    type: options.type ?? null,
    payload,
    idempotencyKey: options.idempotencyKey ?? randomKey(),
  };
  for (let attempt = 1; ; attempt += 1) {
    try {
      return (await request(variables)).publish;
    } catch (error) {
      if (attempt >= attempts || signal.aborted || !isRetryablePublishError(error)) throw error;
      options.onRetry?.(error, attempt);
      await pause(backoffDelay(attempt - 1, options.backoff ?? { initialMs: 250, maxMs: 5_000 }), signal);
      if (signal.aborted) throw error;
    }
  }
}

/**
 * A random UUID (v4). `crypto.randomUUID` exists only in secure contexts (HTTPS, localhost) in
 * browsers; `getRandomValues` everywhere.
 */
function randomKey(): string {
  const { crypto } = globalThis;
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
