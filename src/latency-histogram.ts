/**
 * Publish → socket latency as counts in fixed, log-spaced buckets.
 *
 * Why fixed buckets rather than a sketch library (DDSketch, HdrHistogram): the same layout is
 * used by every instance, in Redis (one HINCRBY per bucket) and in Postgres (a `bigint[]` summed
 * element by element in SQL), so merging two histograms — two instances, sixty minutes into an
 * hour — is adding counts, with no decoding step anywhere. Latency is measured in whole
 * milliseconds (envelope timestamps are `Date.now()`), so the buckets are exact up to 8 ms and
 * then grow by about 25 %: a percentile is reported as its bucket's upper bound, never below the
 * true value and at most one bucket (≈ 25 %) above it.
 *
 * The layout is part of the stored data: never change `LATENCY_BOUNDS_MS`; a new layout needs a
 * new column.
 */

/** Largest bound, in ms; slower deliveries land in the overflow bucket and report this value. */
const MAX_BOUND_MS = 120_000;

/** Upper bounds (inclusive) of every bucket but the last, in ms; the last holds everything above. */
export const LATENCY_BOUNDS_MS: readonly number[] = buildBounds();

/** Buckets in a histogram: one per bound, plus the overflow bucket. */
export const LATENCY_BUCKETS = LATENCY_BOUNDS_MS.length + 1;

function buildBounds(): number[] {
  const bounds: number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  for (let bound = 8; bound < MAX_BOUND_MS; ) {
    bound = Math.min(MAX_BOUND_MS, Math.floor(bound * 1.25));
    bounds.push(bound);
  }
  return bounds;
}

/** The bucket a latency falls in (negative — clocks of two instances disagree — counts as 0). */
export function latencyBucket(latencyMs: number): number {
  if (!(latencyMs > 0)) return 0;
  // Binary search over ~50 bounds: a handful of comparisons.
  let low = 0;
  let high = LATENCY_BOUNDS_MS.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (LATENCY_BOUNDS_MS[middle]! < latencyMs) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** A new histogram with every count at zero. */
export function emptyHistogram(): number[] {
  return new Array<number>(LATENCY_BUCKETS).fill(0);
}

/** Adds `source` into `target` (same layout), count by count. */
export function mergeHistogram(target: number[], source: readonly number[]): void {
  const length = Math.min(target.length, source.length);
  for (let index = 0; index < length; index += 1) target[index]! += source[index]!;
}

/** The samples a histogram holds. */
export function histogramCount(counts: readonly number[]): number {
  let total = 0;
  for (const count of counts) total += count;
  return total;
}

/**
 * The `q`-quantile (0 < q ≤ 1) as the upper bound of the bucket it falls in, in ms; `null` for an
 * empty histogram.
 */
export function histogramQuantile(counts: readonly number[], q: number): number | null {
  const total = histogramCount(counts);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let index = 0; index < counts.length; index += 1) {
    seen += counts[index]!;
    if (seen >= rank) return LATENCY_BOUNDS_MS[Math.min(index, LATENCY_BOUNDS_MS.length - 1)]!;
  }
  return MAX_BOUND_MS;
}
