import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_POLICY, nextAttemptAt, retryDelayMs } from '../../src/pipeline/webhooks/retry-schedule.ts';

/** The fast curve's first delay as a policy's own (`WEBHOOK_RETRY_BASE_MS`), 1 s when the policy has none. */
describe('retry schedule: the first delay a policy sets', () => {
  const noJitter = () => 0;
  const delays = (fastBaseMs: number | undefined, random = noJitter) =>
    [1, 2, 3, 4].map((attemptsMade) => retryDelayMs({ attemptsMade, policy: { ...DEFAULT_RETRY_POLICY, ...(fastBaseMs !== undefined && { fastBaseMs }) }, random }));

  it('doubles from the policy’s fastBaseMs, with the same jitter and cap', () => {
    expect(delays(undefined)).toEqual([1000, 2000, 4000, 8000]);
    expect(delays(100)).toEqual([100, 200, 400, 800]);
    expect(delays(100, () => 0.5)).toEqual([110, 220, 440, 880]);
    expect(delays(40_000)).toEqual([40_000, 60_000, 60_000, 60_000]);
  });

  it('still dead-letters by the window, and a Retry-After still wins', () => {
    const policy = { ...DEFAULT_RETRY_POLICY, windowMs: 1000, fastBaseMs: 100 };
    const firstAttemptAt = new Date('2026-01-01T00:00:00Z');
    expect(nextAttemptAt({ attemptsMade: 1, policy, random: noJitter, firstAttemptAt, now: firstAttemptAt })).toEqual(new Date(firstAttemptAt.getTime() + 100));
    expect(nextAttemptAt({ attemptsMade: 4, policy, random: noJitter, firstAttemptAt, now: new Date(firstAttemptAt.getTime() + 300) })).toBeNull();
    expect(retryDelayMs({ attemptsMade: 2, policy, random: noJitter, retryAfterMs: 3000 })).toBe(3000);
  });
});
