/**
 * `client.broadcast(channel, event, data)`: a broadcast to a channel's members, over the socket,
 * retried as a publish is (`isRetryablePublishError`: UNAVAILABLE, RATE_LIMITED, the socket's
 * expired token, the socket gone before the answer) — but a broadcast carries no idempotency key:
 * a retry after UNAVAILABLE or a lost answer may reach a member twice (the server may have sent
 * the first one). Put an id of your own in `data` where a copy matters.
 */
import { backoffDelay, pause, type BackoffOptions } from './backoff.ts';
import { retryAfterOf, SessionEndedError } from './errors.ts';
import type { TributaryBroadcastMutation, TributaryBroadcastMutationVariables } from './generated.ts';
import { isRetryablePublishError, PUBLISH_RETRY } from './publish.ts';

export interface BroadcastOptions {
  /** Tries in all, the first included. @default 10 */
  readonly attempts?: number;
  /** The wait between tries: full jitter over [0, min(maxMs, initialMs × 2ⁿ)). @default { initialMs: 500, maxMs: 5000 } */
  readonly backoff?: BackoffOptions;
  /** Told of each failed try (`attempt`, from 1) that will be tried again. */
  readonly onRetry?: (error: unknown, attempt: number) => void;
  /** Ends the broadcast when it aborts (no further try): the call rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

type SendBroadcast = (variables: TributaryBroadcastMutationVariables) => Promise<TributaryBroadcastMutation>;

/** Broadcasts with retries (see the module); rejects as `publishWithRetry` does. */
export async function broadcastWithRetry(send: SendBroadcast, variables: TributaryBroadcastMutationVariables, options: BroadcastOptions, signal: AbortSignal): Promise<void> {
  const attempts = Number.isFinite(options.attempts) ? Math.max(1, Math.floor(options.attempts!)) : PUBLISH_RETRY.attempts;
  const backoff = { ...PUBLISH_RETRY.backoff, ...options.backoff };
  // The connection unauthorized: its error (with the server's reason) is the signal's reason.
  const ended = (): unknown => (options.signal?.aborted ? options.signal.reason : signal.reason instanceof SessionEndedError ? signal.reason : new SessionEndedError());
  if (signal.aborted) throw ended();
  // Copied once: every try sends the same message, whatever the caller does with its object meanwhile.
  const sent: TributaryBroadcastMutationVariables = { ...variables, data: variables.data === undefined ? null : structuredClone(variables.data) };
  for (let attempt = 1; ; attempt += 1) {
    try {
      await send(sent);
      return;
    } catch (error) {
      if (signal.aborted) throw ended();
      if (attempt >= attempts || !isRetryablePublishError(error)) throw error;
      options.onRetry?.(error, attempt);
      await pause(Math.max(backoffDelay(attempt - 1, backoff), retryAfterOf(error) ?? 0), signal);
      if (signal.aborted) throw ended();
    }
  }
}
