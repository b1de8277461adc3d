/**
 * A latency histogram for more samples than are worth keeping (a saturation step delivers
 * millions of messages): buckets 1% wide on a log scale from 1 µs to ~17 minutes, so a
 * percentile read from it is within 1% of the nearest-rank one `stats.ts` computes from raw
 * samples. Count, mean and max are exact. Pure, no I/O.
 */
import type { Summary } from './stats.ts';

/** Bucket i holds values in (GROWTH^(i-1), GROWTH^i] µs; bucket 0 everything ≤ 1 µs (and clock skew below 0). */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = 2800; // 1.01^2800 µs ≈ 1.2e12 µs: nothing a benchmark waits for is longer

export interface LatencyHistogram {
  /** Adds one latency, in µs. */
  record(micros: number): void;
  readonly count: number;
  /** Count, mean, p50/p90/p99 (bucket upper bounds: at most 1% above the true value) and max, in µs; undefined when empty. */
  summary(): HistogramSummary | undefined;
}

/** The same summary the sample-based statistics give, so reports take either. */
export type HistogramSummary = Summary;

export function createLatencyHistogram(): LatencyHistogram {
  const buckets = new Uint32Array(BUCKETS);
  let count = 0;
  let total = 0;
  let max = Number.NEGATIVE_INFINITY;

  const percentile = (p: number): number => {
    const rank = Math.min(count, Math.max(1, Math.ceil((p / 100) * count)));
    let seen = 0;
    for (let index = 0; index < BUCKETS; index += 1) {
      seen += buckets[index] ?? 0;
      // The bucket's upper bound, but never above the largest value actually seen.
      if (seen >= rank) return Math.min(GROWTH ** index, max);
    }
    return max;
  };

  return {
    record(micros) {
      const index = micros <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(micros) / LOG_GROWTH));
      buckets[index] = (buckets[index] ?? 0) + 1;
      count += 1;
      total += micros;
      if (micros > max) max = micros;
    },
    get count() {
      return count;
    },
    summary() {
      if (count === 0) return undefined;
      return { count, mean: total / count, p50: percentile(50), p90: percentile(90), p99: percentile(99), max };
    },
  };
}
