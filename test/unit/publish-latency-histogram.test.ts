/**
 * `tributary_publish_to_socket_seconds` is a Prometheus histogram read from the analytics counts at
 * scrape time: cumulative `_bucket{le}` on the analytics bounds (in s), `_sum` and `_count`. Its
 * point is windowed percentiles — `histogram_quantile` over the increase between two scrapes — so
 * a stall long past no longer reads as the latency of now, as the since-start p99 gauge did.
 */
import { describe, expect, it } from 'vitest';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { InstanceTotals } from '../../src/pipeline/analytics/instance-figures.ts';
import { LATENCY_BOUNDS_MS, latencyBucket } from '../../src/latency-histogram.ts';
import { createAnalyticsRecorder } from '../../src/pipeline/analytics/recorder.ts';
import { streamOf } from '../../src/pipeline/stream.ts';

const NAME = 'tributary_publish_to_socket_seconds';
const TOPIC = streamOf({ app: 'app', env: 'prod', tenant: 'acme' }, 'lat').key;

/** A scrape of `metrics`, parsed: the histogram's buckets by `le` (in order), its sum and count, and its TYPE line. */
async function scrape(metrics: Metrics): Promise<{ type: string | undefined; buckets: [string, number][]; sum: number | undefined; count: number | undefined }> {
  const text = await metrics.registry.metrics();
  const buckets: [string, number][] = [];
  let sum: number | undefined;
  let count: number | undefined;
  for (const line of text.split('\n')) {
    const bucket = new RegExp(`^${NAME}_bucket\\{le="([^"]+)"\\} (\\S+)$`).exec(line);
    if (bucket) buckets.push([bucket[1]!, Number(bucket[2])]);
    if (line.startsWith(`${NAME}_sum `)) sum = Number(line.split(' ')[1]);
    if (line.startsWith(`${NAME}_count `)) count = Number(line.split(' ')[1]);
  }
  return { type: new RegExp(`^# TYPE ${NAME} (\\S+)$`, 'm').exec(text)?.[1], buckets, sum, count };
}

/** Prometheus's `histogram_quantile` (linear interpolation inside the bucket), over cumulative buckets. */
function histogramQuantile(q: number, buckets: readonly [string, number][]): number {
  const total = buckets.at(-1)![1];
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, cumulative] of buckets) {
    const upper = le === '+Inf' ? Infinity : Number(le);
    if (cumulative >= rank) return upper === Infinity ? lower : lower + ((upper - lower) * (rank - below)) / (cumulative - below);
    lower = upper;
    below = cumulative;
  }
  return lower;
}

/** What Prometheus's `increase()` makes of two scrapes of a counter that did not restart. */
const increase = (before: readonly [string, number][], after: readonly [string, number][]): [string, number][] =>
  after.map(([le, value], index) => [le, value - before[index]![1]]);

describe('tributary_publish_to_socket_seconds', () => {
  it('is a histogram of the live deliveries the recorder counted, cumulative on the analytics bounds, in s', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const recorder = createAnalyticsRecorder();
    metrics.sample({ analytics: () => ({ ...recorder.figures.snapshot(), hotTopics: [] }) });
    recorder.delivered(TOPIC, 5, 10, 3);
    recorder.delivered(TOPIC, 1, 10, 2_000);
    // A replay is not live: a delivery without latency.
    recorder.delivered(TOPIC, 4, 10, undefined);

    const { type, buckets, count } = await scrape(metrics);
    expect(type).toBe('histogram');
    expect(buckets.map(([le]) => le)).toEqual([...LATENCY_BOUNDS_MS.map((bound) => String(bound / 1000)), '+Inf']);
    const at = (le: string) => buckets.find(([bound]) => bound === le)?.[1];
    expect([at('0.002'), at('0.003'), at('1.738'), at('2.172'), at('+Inf')]).toEqual([0, 5, 5, 6, 6]);
    expect(count).toBe(6);
  });

  it('sums the latencies, in s', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const totals = new InstanceTotals(true, Date.now);
    metrics.sample({ analytics: () => ({ ...totals.snapshot(), hotTopics: [] }) });
    // As the recorder counts a delivery: its bucket and its latency, once per subscriber.
    for (const [latencyMs, subscribers] of [
      [3, 5],
      [250, 2],
    ] as const) {
      totals.latency[latencyBucket(latencyMs)]! += subscribers;
      totals.latencySumMs += latencyMs * subscribers;
    }
    expect(await scrape(metrics)).toMatchObject({ sum: 0.515, count: 7 });
  });

  it('gives a window after a 2 s stall the p99 of that window, not of everything since the start', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const recorder = createAnalyticsRecorder();
    metrics.sample({ analytics: () => ({ ...recorder.figures.snapshot(), hotTopics: [] }) });
    // The review's run: 20 events to 5 subscribers held 2 s by a stalled instance…
    for (let event = 0; event < 20; event += 1) recorder.delivered(TOPIC, 5, 10, 2_000);
    const afterStall = (await scrape(metrics)).buckets;
    // …then 600 events to the same 5 delivered in 5 ms.
    for (let event = 0; event < 600; event += 1) recorder.delivered(TOPIC, 5, 10, 5);
    const now = (await scrape(metrics)).buckets;

    // Since the start the stall is over 1 % of the deliveries: its p99 is still the stall's.
    expect(histogramQuantile(0.99, now)).toBeGreaterThan(1.7);
    // Over the window since, it is the healthy deliveries' bucket, 5 ms.
    const window = increase(afterStall, now);
    expect(histogramQuantile(0.99, window)).toBeLessThanOrEqual(0.005);
    expect(histogramQuantile(0.5, window)).toBeLessThanOrEqual(0.005);
  });
});
