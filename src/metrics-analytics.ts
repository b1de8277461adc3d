/**
 * The metrics read from analytics at scrape time (`metrics.ts` puts them on its registry): this
 * instance's delivery totals, its publish → socket latency histogram and its hot topics. Nothing
 * here is touched on the hot path: the recorder counts into its instance totals
 * (`pipeline/analytics/instance-figures.ts`) and these read them when `/metrics` is scraped.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LATENCY_BOUNDS_MS } from './latency-histogram.ts';

/** What analytics reports at scrape time (the shape of its instance figures, plus its top topics). */
export interface AnalyticsSample {
  readonly deliveries: number;
  readonly bytes: number;
  readonly resyncs: number;
  readonly topicsOverflowed: number;
  /** Minutes whose counts this instance pushed and the minute store lost before the workers wrote them (absent: 0). */
  readonly minutesLost?: number;
  readonly latency: {
    /** Live deliveries since the instance started, per bucket of `LATENCY_BOUNDS_MS` (not cumulative), the overflow bucket last. */
    readonly buckets: readonly number[];
    /** Their latencies added up, in ms. */
    readonly sumMs: number;
  };
  /** At most `HOT_TOPICS_IN_METRICS` entries. */
  readonly hotTopics: readonly { readonly app: string; readonly env: string; readonly tenant: string; readonly topic: string; readonly eventsPerSecond: number }[];
}

/** Topics in the hot-topic gauge: the one bounded exception to "no per-topic labels". */
export const HOT_TOPICS_IN_METRICS = 10;

export interface AnalyticsMetrics {
  /** Analytics totals of this instance (read at scrape time from its figures; no topic label). */
  readonly deliveries: Counter;
  readonly deliveredBytes: Counter;
  readonly resyncs: Counter;
  readonly analyticsTopicsOverflowed: Counter;
  /** Minutes of this instance's counts the minute store (Redis) lost before the workers wrote them. */
  readonly analyticsMinutesLost: Counter;
  /**
   * Publish → socket latency of this instance's live deliveries, a Prometheus histogram in s
   * (`_bucket{le}`, `_sum`, `_count`): windowed percentiles are `histogram_quantile` over `rate()`.
   */
  readonly publishToSocketSeconds: Histogram;
  /** The only per-topic series: this instance's top topics by events routed over the last full minute (at most 10). */
  readonly hotTopicEventsPerSecond: Gauge<'app' | 'env' | 'tenant' | 'topic'>;
}

/** The metrics of `samples` (every sampler's analytics, read at each scrape), on `registry`. */
export function createAnalyticsMetrics(registry: Registry, samples: () => readonly AnalyticsSample[]): AnalyticsMetrics {
  /** A counter whose value is read from analytics at scrape time. */
  const analyticsCounter = (name: string, help: string, read: (sample: AnalyticsSample) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(samples().reduce((sum, sample) => sum + read(sample), 0));
      },
    });
  return {
    deliveries: analyticsCounter('tributary_deliveries_total', 'Frames written to subscribers by this instance (one event to N subscribers counts N)', (sample) => sample.deliveries),
    deliveredBytes: analyticsCounter('tributary_delivered_bytes_total', 'Payload bytes of the frames written to subscribers by this instance', (sample) => sample.bytes),
    resyncs: analyticsCounter('tributary_resyncs_total', 'Subscribers this instance ended with RESYNC_REQUIRED', (sample) => sample.resyncs),
    analyticsTopicsOverflowed: analyticsCounter(
      'tributary_analytics_topics_overflowed_total',
      'Per-topic countings that went to the overflow topic because a minute already held ANALYTICS_MAX_TOPICS topics',
      (sample) => sample.topicsOverflowed,
    ),
    analyticsMinutesLost: analyticsCounter(
      'tributary_analytics_minutes_lost_total',
      "Minutes whose counts this instance pushed and the minute store lost before the workers wrote them (Redis restarted without persistence, flushed or evicted): those minutes' analytics are short",
      (sample) => sample.minutesLost ?? 0,
    ),
    publishToSocketSeconds: new CountedHistogram(
      {
        name: 'tributary_publish_to_socket_seconds',
        help: "Publish → socket latency of this instance's live deliveries, in s (counted since it started: use rate() over a window)",
        registers: [registry],
      },
      samples,
    ),
    hotTopicEventsPerSecond: new Gauge({
      name: 'tributary_hot_topic_events_per_second',
      help: `This instance's top ${HOT_TOPICS_IN_METRICS} topics by events routed over the last full minute (the only per-topic series)`,
      labelNames: ['app', 'env', 'tenant', 'topic'],
      registers: [registry],
      collect() {
        this.reset();
        const hot = samples().flatMap((sample) => sample.hotTopics).sort((a, b) => b.eventsPerSecond - a.eventsPerSecond).slice(0, HOT_TOPICS_IN_METRICS);
        for (const { app, env, tenant, topic, eventsPerSecond } of hot) this.set({ app, env, tenant, topic }, eventsPerSecond);
      },
    }),
  };
}

/** The histogram's `le` bounds in s: the analytics layout's own (every bound but the overflow bucket's). */
const BOUNDS_SECONDS: readonly number[] = LATENCY_BOUNDS_MS.map((bound) => bound / 1000);

/** One line of the export, as prom-client's registry renders it (`le` among the labels of a bucket). */
interface ExportedValue {
  readonly metricName: string;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly sharedLabels: Readonly<Record<string, string | number>>;
  readonly value: number;
}

/**
 * A Prometheus histogram whose counts are those analytics already keeps, read at scrape time.
 *
 * Why not `observe()` per delivery: the fan-out delivers millions of frames a second in the
 * benchmark, and the recorder already adds each live delivery to a fixed-bucket histogram that is
 * cumulative since the process started — exactly what a Prometheus histogram is. Reading it at
 * scrape time costs nothing on the hot path and gives the same bucket layout (exact to 8 ms, then
 * ≈ 25 % wide, to 120 s) as `topicStats` and the dashboard, so `histogram_quantile` over it is as
 * precise as they are. All 53 bounds are exported: ~55 series per instance, without labels.
 *
 * prom-client has no public way to set a histogram's counts, so its export is built here
 * (`getForPromString`); `observe` is never called.
 */
class CountedHistogram extends Histogram {
  readonly #name: string;
  readonly #help: string;
  readonly #samples: () => readonly AnalyticsSample[];

  constructor(configuration: { readonly name: string; readonly help: string; readonly registers: Registry[] }, samples: () => readonly AnalyticsSample[]) {
    super({ name: configuration.name, help: configuration.help, buckets: [...BOUNDS_SECONDS], registers: configuration.registers });
    this.#name = configuration.name;
    this.#help = configuration.help;
    this.#samples = samples;
  }

  /**
   * The export the registry renders (it prefers this to `get`, whose prom-client version reads
   * this and moves `sharedLabels` into `labels`), built from analytics' counts at each scrape.
   */
  getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: ExportedValue[] }> {
    const counts = new Array<number>(BOUNDS_SECONDS.length + 1).fill(0);
    let sumMs = 0;
    for (const sample of this.#samples()) {
      // Past the layout's last bucket (a longer array than this version's): counted as overflow.
      sample.latency.buckets.forEach((count, index) => (counts[Math.min(index, counts.length - 1)]! += count));
      sumMs += sample.latency.sumMs;
    }
    const line = (suffix: string, labels: ExportedValue['labels'], value: number): ExportedValue => ({ metricName: `${this.#name}${suffix}`, labels, sharedLabels: {}, value });
    const values: ExportedValue[] = [];
    let cumulative = 0;
    BOUNDS_SECONDS.forEach((bound, index) => {
      cumulative += counts[index]!;
      values.push(line('_bucket', { le: bound }, cumulative));
    });
    const total = cumulative + counts[BOUNDS_SECONDS.length]!;
    values.push(line('_bucket', { le: '+Inf' }, total), line('_sum', {}, sumMs / 1000), line('_count', {}, total));
    return Promise.resolve({ name: this.#name, help: this.#help, type: 'histogram', aggregator: 'sum', values });
  }
}
