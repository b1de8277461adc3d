import { describe, expect, it } from 'vitest';
import { backoffDelay, backoffWindow } from '../../src/backoff.ts';

/** A seeded generator (mulberry32): the same "random" clients on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('backoff schedule', () => {
  it('doubles its window from 1 s up to 30 s', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20, 1000].map((attempt) => backoffWindow(attempt))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    expect(backoffWindow(2, { initialMs: 100, maxMs: 300 })).toBe(300);
  });

  it('draws each delay from the whole window (full jitter): 0 at the bottom, never the window itself', () => {
    expect(backoffDelay(3, {}, () => 0)).toBe(0);
    expect(backoffDelay(3, {}, () => 0.999999)).toBe(7999);
    expect(backoffDelay(3, {}, () => 0.5)).toBe(4000);
  });

  it('spreads 5,000 clients’ first retries evenly over the whole first window', () => {
    const random = seeded(1);
    const delays = Array.from({ length: 5000 }, () => backoffDelay(0, {}, random));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(1000);
    // Ten 100 ms buckets: each holds about a tenth (uniform), none a crowd.
    const buckets = Array.from({ length: 10 }, () => 0);
    for (const delay of delays) buckets[Math.floor(delay / 100)]! += 1;
    for (const count of buckets) {
      expect(count).toBeGreaterThan(400);
      expect(count).toBeLessThan(600);
    }
  });

  it('after a restart that takes 5 s, 5,000 clients come back spread over several seconds, not within one', () => {
    const random = seeded(2);
    const DOWN_MS = 5000;
    // Each client retries (attempt 0, 1, 2…) until the server is back; an attempt before DOWN_MS fails.
    const arrivals = Array.from({ length: 5000 }, () => {
      let at = 0;
      for (let attempt = 0; ; attempt += 1) {
        at += backoffDelay(attempt, {}, random);
        if (at >= DOWN_MS) return at;
      }
    });
    const perSecond = new Map<number, number>();
    for (const at of arrivals) perSecond.set(Math.floor(at / 1000), (perSecond.get(Math.floor(at / 1000)) ?? 0) + 1);
    // The busiest second takes well under half of them; they span at least five seconds.
    expect(Math.max(...perSecond.values())).toBeLessThan(2500);
    expect(Math.max(...arrivals) - Math.min(...arrivals)).toBeGreaterThan(5000);
  });
});
