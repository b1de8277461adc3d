/**
 * Latency summaries and the formatting every report uses. Latencies go into Node's HDR histogram
 * (`perf_hooks.createHistogram()`), recorded in nanoseconds so that sub-millisecond times keep their
 * precision: a percentile read from it is within 0.1% of the recorded value (3 significant
 * figures), however many millions of samples a saturation step delivers.
 */
import type { RecordableHistogram } from 'node:perf_hooks';

/** Percentiles and max of one histogram, in µs. */
export interface Summary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * Records one latency given in ms. The histogram refuses values outside 1 … 2^53 − 1 ns (it
 * throws), so below 1 ns (clock skew between processes) counts as 1 ns and a nonsense value (a
 * frame whose `sentAt` could not be read) as the largest; NaN as the largest too.
 */
export function recordMillis(histogram: RecordableHistogram, millis: number): void {
  const nanos = Math.round(millis * 1e6);
  histogram.record(nanos >= 1 ? Math.min(nanos, Number.MAX_SAFE_INTEGER) : Number.isNaN(nanos) ? Number.MAX_SAFE_INTEGER : 1);
}

/** The histogram's summary in µs; undefined when nothing was recorded. */
export function summarize(histogram: RecordableHistogram): Summary | undefined {
  if (histogram.count === 0) return undefined;
  const micros = (nanos: number) => nanos / 1000;
  return {
    p50: micros(histogram.percentile(50)),
    p90: micros(histogram.percentile(90)),
    p99: micros(histogram.percentile(99)),
    max: micros(histogram.max),
  };
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
