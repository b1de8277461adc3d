/**
 * When a failed webhook attempt is tried again (issue 11 §5). Pure: the clock and the randomness
 * come in as arguments.
 *
 * Two phases. First the seed's curve (000, "Webhook Delivery via BullMQ"):
 * `min(1000·2^attempt + jitter, 60 s)` — 1 s, 2 s, 4 s … 60 s — which rides out a receiver's
 * restart or a blip. Then a slow tail, about hourly, for an outage that lasts: a receiver down for
 * a weekend still gets everything once it is back, as Stripe's 3 days and Svix's ~28 h promise.
 * When the next attempt would fall after the retry window, there is none: the delivery is
 * dead-lettered.
 *
 * Jitter is added, never subtracted, so a receiver that asked for a pause (Retry-After) or a tail
 * interval is never called back earlier than that, and many deliveries failing at once do not
 * come back in one burst — but at the fast curve's cap, which the seed's formula applies after the
 * jitter (retries 7 and 8 wait 60 s exactly). A pause the receiver asked for is waited out however
 * long, within the window: one that reaches past it leaves a last attempt as the window closes.
 */
import { InternalError } from '../../errors.ts';

export interface RetryPolicy {
  /**
   * How long after the first attempt retries may happen, in ms; an attempt that would fall later
   * is not made and the delivery is dead-lettered. @default 259_200_000 (3 days)
   */
  readonly windowMs: number;
  /** How many retries follow the fast curve before the tail. @default 8 */
  readonly fastAttempts: number;
  /** The fast curve's cap, in ms. @default 60_000 */
  readonly maxFastDelayMs: number;
  /** The tail's interval, in ms (plus up to 10% jitter). @default 3_600_000 */
  readonly tailIntervalMs: number;
  /** The fast curve's first delay, in ms (`WEBHOOK_RETRY_BASE_MS`). @default 1000 (the seed's) */
  readonly fastBaseMs?: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  windowMs: 3 * 24 * 60 * 60 * 1000,
  fastAttempts: 8,
  maxFastDelayMs: 60_000,
  tailIntervalMs: 60 * 60 * 1000,
});

/** The fast curve's first delay, in ms (the seed's 1000), unless the policy sets its own. */
const FAST_BASE_MS = 1000;
/** Jitter: up to this share of the fast delay, and of the tail interval. */
const FAST_JITTER = 0.2;
const TAIL_JITTER = 0.1;

export interface RetryDelayInput {
  /** Attempts made so far, the failed one included (1 after the first attempt). */
  readonly attemptsMade: number;
  /** The receiver's `Retry-After`, in ms, when it sent one (429, 503). */
  readonly retryAfterMs?: number | null;
  readonly policy: RetryPolicy;
  /** Uniform in [0, 1). @default Math.random */
  readonly random?: () => number;
}

/**
 * The pause before the next attempt, in ms: retry n (n = attemptsMade) waits
 * `min(fastBaseMs·2^(n−1) + jitter, maxFastDelayMs)` while n ≤ fastAttempts, then
 * `tailIntervalMs + jitter`; a Retry-After makes it longer, never shorter.
 */
export function retryDelayMs(input: RetryDelayInput): number {
  return Math.round(withRetryAfter(curveDelayMs(input), input.retryAfterMs));
}

/** The curve's own pause (jitter included), before any Retry-After. */
function curveDelayMs(input: RetryDelayInput): number {
  const { attemptsMade, policy, random = Math.random } = input;
  if (!Number.isSafeInteger(attemptsMade) || attemptsMade < 1) {
    throw new InternalError('WEBHOOK_RETRY', `attemptsMade must be a whole number ≥ 1, not ${attemptsMade}`);
  }
  if (attemptsMade <= policy.fastAttempts) {
    // The exponent is capped so 2^n stays a finite number whatever fastAttempts is.
    const base = (policy.fastBaseMs ?? FAST_BASE_MS) * 2 ** Math.min(attemptsMade - 1, 40);
    return Math.min(base + random() * FAST_JITTER * base, policy.maxFastDelayMs);
  }
  return policy.tailIntervalMs + random() * TAIL_JITTER * policy.tailIntervalMs;
}

/** `delay`, or the receiver's Retry-After when that is longer (one that is absent, not positive or not finite is ignored). */
function withRetryAfter(delay: number, retryAfterMs: number | null | undefined): number {
  if (retryAfterMs === undefined || retryAfterMs === null || !Number.isFinite(retryAfterMs) || retryAfterMs <= 0) return delay;
  return Math.max(delay, retryAfterMs);
}

export interface NextAttemptInput extends RetryDelayInput {
  /** When the delivery's first attempt was made: the retry window starts there. */
  readonly firstAttemptAt: Date;
  /** When the failed attempt ended. */
  readonly now: Date;
}

/**
 * When to try again, or null when the curve's next attempt would fall outside the retry window
 * (→ dead letter). A Retry-After that reaches past the window moves the next attempt to the
 * window's end: the receiver's pause is waited out as far as the window allows, and it gets a last
 * attempt then.
 */
export function nextAttemptAt(input: NextAttemptInput): Date | null {
  const now = input.now.getTime();
  const deadline = input.firstAttemptAt.getTime() + input.policy.windowMs;
  const curve = curveDelayMs(input);
  if (now + Math.round(curve) > deadline) return null;
  return new Date(Math.min(now + Math.round(withRetryAfter(curve, input.retryAfterMs)), deadline));
}
