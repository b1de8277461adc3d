import { describe, expect, it } from 'vitest';
import { InternalError } from '../../src/errors.ts';
import { DEFAULT_RETRY_POLICY, nextAttemptAt, retryDelayMs } from '../../src/pipeline/webhooks/retry-schedule.ts';
import type { RetryPolicy } from '../../src/pipeline/webhooks/retry-schedule.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const policy = DEFAULT_RETRY_POLICY;
const noJitter = () => 0;
const fullJitter = () => 0.999_999;

function delays(attempts: readonly number[], random: () => number, retryAfterMs?: number | null): number[] {
  return attempts.map((attemptsMade) => retryDelayMs({ attemptsMade, policy, random, retryAfterMs }));
}

describe('retry schedule', () => {
  it('defaults: a 3-day window, 8 fast retries capped at 60 s, then hourly', () => {
    expect(DEFAULT_RETRY_POLICY).toEqual({ windowMs: 3 * 24 * HOUR, fastAttempts: 8, maxFastDelayMs: MINUTE, tailIntervalMs: HOUR });
  });

  it('follows the seed curve min(1000·2^attempt + jitter, 60 s) for the fast retries', () => {
    expect(delays([1, 2, 3, 4, 5, 6, 7, 8], noJitter)).toEqual([1, 2, 4, 8, 16, 32, 60, 60].map((s) => s * SECOND));
  });

  it('adds up to 20% jitter to a fast retry, never more than the cap, never less than the curve', () => {
    expect(delays([1, 5, 6, 7], fullJitter)).toEqual([1200, 19_200, 38_400, 60_000]);
    expect(delays([3], () => 0.5)).toEqual([4400]);
  });

  it('then retries every tail interval, plus up to 10% jitter', () => {
    expect(delays([9, 10, 50], noJitter)).toEqual([HOUR, HOUR, HOUR]);
    expect(delays([9], () => 0.5)).toEqual([HOUR + 3 * MINUTE]);
    expect(delays([9], fullJitter)).toEqual([HOUR + 6 * MINUTE]);
  });

  it('a Retry-After longer than the computed delay wins; a shorter one does not shorten it', () => {
    expect(delays([1], noJitter, 30 * SECOND)).toEqual([30 * SECOND]);
    expect(delays([6], noJitter, 5 * SECOND)).toEqual([32 * SECOND]);
  });

  it('a Retry-After is honoured however long, and ignored when absent or nonsensical', () => {
    expect(delays([1], noJitter, 5 * HOUR)).toEqual([5 * HOUR]);
    expect(delays([9], () => 0.5, 50 * MINUTE)).toEqual([HOUR + 3 * MINUTE]);
    for (const retryAfterMs of [null, undefined, 0, -5000, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(delays([2], noJitter, retryAfterMs)).toEqual([2 * SECOND]);
    }
  });

  it('the next attempt is the failed attempt’s end plus the delay', () => {
    const firstAttemptAt = new Date('2030-01-01T00:00:00Z');
    const now = new Date('2030-01-01T00:00:07Z');
    expect(nextAttemptAt({ firstAttemptAt, now, attemptsMade: 3, policy, random: noJitter })).toEqual(new Date('2030-01-01T00:00:11Z'));
    expect(nextAttemptAt({ firstAttemptAt, now, attemptsMade: 1, policy, random: noJitter, retryAfterMs: 120 * SECOND })).toEqual(
      new Date('2030-01-01T00:02:07Z'),
    );
  });

  it('waits out a Retry-After within the window: one reaching past it leaves a last attempt as the window closes', () => {
    const firstAttemptAt = new Date('2030-01-01T00:00:00Z');
    const deadline = firstAttemptAt.getTime() + policy.windowMs;
    const at = (ms: number) => new Date(ms);
    expect(nextAttemptAt({ firstAttemptAt, now: at(firstAttemptAt.getTime() + 7 * SECOND), attemptsMade: 1, policy, random: noJitter, retryAfterMs: 5 * HOUR })).toEqual(
      at(firstAttemptAt.getTime() + 7 * SECOND + 5 * HOUR),
    );
    // Two hours left: the hourly tail fits, the asked-for week does not — the last attempt at the window's end.
    expect(nextAttemptAt({ firstAttemptAt, now: at(deadline - 2 * HOUR), attemptsMade: 40, policy, random: noJitter, retryAfterMs: 7 * 24 * HOUR })).toEqual(at(deadline));
    // Half an hour left: not even the tail fits, with or without a Retry-After — a dead letter.
    expect(nextAttemptAt({ firstAttemptAt, now: at(deadline - 30 * MINUTE), attemptsMade: 40, policy, random: noJitter, retryAfterMs: 7 * 24 * HOUR })).toBeNull();
  });

  it('returns null once the next attempt would fall after the window (dead letter), and a date at its very edge', () => {
    const firstAttemptAt = new Date('2030-01-01T00:00:00Z');
    const deadline = firstAttemptAt.getTime() + policy.windowMs;
    const at = (ms: number) => new Date(ms);
    expect(nextAttemptAt({ firstAttemptAt, now: at(deadline - HOUR), attemptsMade: 40, policy, random: noJitter })).toEqual(at(deadline));
    expect(nextAttemptAt({ firstAttemptAt, now: at(deadline - HOUR + 1), attemptsMade: 40, policy, random: noJitter })).toBeNull();
    expect(nextAttemptAt({ firstAttemptAt, now: at(deadline + 1), attemptsMade: 1, policy, random: noJitter })).toBeNull();
  });

  it('a receiver that never succeeds gets 80 attempts over the 3 days: 1 + 8 fast + 71 hourly', () => {
    const firstAttemptAt = new Date('2030-01-01T00:00:00Z');
    const attemptTimes = [firstAttemptAt.getTime()];
    for (let attemptsMade = 1; attemptsMade <= 1000; attemptsMade += 1) {
      const now = new Date(attemptTimes.at(-1) ?? 0);
      const next = nextAttemptAt({ firstAttemptAt, now, attemptsMade, policy, random: noJitter });
      if (next === null) break;
      attemptTimes.push(next.getTime());
    }
    expect(attemptTimes).toHaveLength(80);
    const offsets = attemptTimes.map((time) => (time - firstAttemptAt.getTime()) / SECOND);
    expect(offsets.slice(0, 10)).toEqual([0, 1, 3, 7, 15, 31, 63, 123, 183, 3783]);
    expect(offsets.at(-1)).toBe(183 + 71 * 3600);
    expect((offsets.at(-1) ?? Infinity) * SECOND).toBeLessThanOrEqual(policy.windowMs);
  });

  it('a shortened policy (as tests and operators configure it) dead-letters accordingly', () => {
    const short: RetryPolicy = { windowMs: 10 * SECOND, fastAttempts: 2, maxFastDelayMs: 3 * SECOND, tailIntervalMs: 5 * SECOND };
    const firstAttemptAt = new Date(0);
    expect(retryDelayMs({ attemptsMade: 3, policy: short, random: noJitter })).toBe(5 * SECOND);
    expect(nextAttemptAt({ firstAttemptAt, now: new Date(3 * SECOND), attemptsMade: 3, policy: short, random: noJitter })).toEqual(
      new Date(8 * SECOND),
    );
    expect(nextAttemptAt({ firstAttemptAt, now: new Date(8 * SECOND), attemptsMade: 4, policy: short, random: noJitter })).toBeNull();
    expect(retryDelayMs({ attemptsMade: 1, policy: { ...short, fastAttempts: 0 }, random: noJitter })).toBe(5 * SECOND);
  });

  it('refuses an attempt count below 1 as a broken invariant', () => {
    for (const attemptsMade of [0, -1, 1.5, Number.NaN]) {
      expect(() => retryDelayMs({ attemptsMade, policy })).toThrow(InternalError);
    }
  });

  it('uses Math.random by default and stays within the jitter bounds', () => {
    for (let run = 0; run < 50; run += 1) {
      const delay = retryDelayMs({ attemptsMade: 4, policy });
      expect(delay).toBeGreaterThanOrEqual(8 * SECOND);
      expect(delay).toBeLessThanOrEqual(9600);
    }
  });
});
