/**
 * Summaries of latency samples and the formatting every report uses. Pure functions, no I/O.
 * Percentiles use the nearest-rank method: p99 of 5,000 samples is the 4,950th smallest, an
 * observed value (no interpolation that would invent a latency nobody saw).
 */

export interface Summary {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Summarizes samples (any unit; the summary is in the same unit). Throws on no samples. */
export function summarize(samples: ArrayLike<number>): Summary {
  const count = samples.length;
  if (count === 0) throw new Error('summarize: no samples');
  const sorted = Float64Array.from(samples).sort();
  let total = 0;
  for (const value of sorted) total += value;
  return {
    count,
    mean: total / count,
    p50: percentileOfSorted(sorted, 50),
    p90: percentileOfSorted(sorted, 90),
    p99: percentileOfSorted(sorted, 99),
    max: sorted[count - 1] ?? Number.NaN,
  };
}

/** Nearest-rank percentile (0 < p ≤ 100) of ascending samples. */
export function percentileOfSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** Median of a few values (e.g. one metric across rounds); the mean of the middle two when even. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const upper = sorted[middle] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[middle - 1] ?? Number.NaN) + upper) / 2;
}

/** Spread of values around their median, as a fraction: (max − min) / median. */
export function relativeSpread(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const m = median(values);
  return m === 0 ? 0 : (Math.max(...values) - Math.min(...values)) / m;
}

/** A duration given in µs: `850 µs`, `12.3 µs`, `1.42 ms`, `2.05 s`. */
export function formatMicros(micros: number): string {
  if (!Number.isFinite(micros)) return '—';
  if (micros >= 1_000_000) return `${(micros / 1_000_000).toFixed(2)} s`;
  if (micros >= 1000) return `${(micros / 1000).toFixed(2)} ms`;
  if (micros >= 100) return `${micros.toFixed(0)} µs`;
  return `${micros.toFixed(1)} µs`;
}

/** A duration given in ms, for wall times: `850 ms`, `12.4 s`, `2m 05s`. */
export function formatMillis(millis: number): string {
  if (millis < 1000) return `${millis.toFixed(0)} ms`;
  if (millis < 60_000) return `${(millis / 1000).toFixed(1)} s`;
  const seconds = Math.round(millis / 1000);
  return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, '0')}s`;
}

/** A rate: `12,345/s`. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '—';
  return `${Math.round(perSecond).toLocaleString('en-US')}/s`;
}

/** A ratio: `0.62×`. */
export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio)) return '—';
  return `${ratio.toFixed(2)}×`;
}

/** A fraction as a percentage: `3.1%`. */
export function formatPercent(fraction: number): string {
  if (!Number.isFinite(fraction)) return '—';
  return `${(fraction * 100).toFixed(1)}%`;
}
