import { describe, expect, it } from 'vitest';
import {
  emptyHistogram,
  histogramCount,
  histogramQuantile,
  LATENCY_BOUNDS_MS,
  LATENCY_BUCKETS,
  latencyBucket,
  mergeHistogram,
} from '../../src/latency-histogram.ts';
import { createAnalyticsRecorder, UNCOUNTED_TOPICS } from '../../src/pipeline/analytics/recorder.ts';
import { statsRowsOf } from '../../src/pipeline/analytics/stats-store.ts';
import { decodeField, encodeCounts, OTHER_TOPIC_KEY, OVERFLOW_TOPIC, type TopicCounts } from '../../src/pipeline/analytics/topic-counts.ts';
import { streamOf } from '../../src/pipeline/stream.ts';

const MINUTE = 60_000;

const topicKey = (app: string, tenant: string | undefined, topic: string) => streamOf({ app, env: 'prod', tenant }, topic).key;
/** The overflow row of app's environment `prod`. */
const overflowOf = (app: string) => topicKey(app, undefined, OVERFLOW_TOPIC);

function clock(start: number) {
  let time = start;
  return { now: () => time, advance: (ms: number) => void (time += ms) };
}

describe('latency histogram', () => {
  it('has exact buckets up to 8 ms, then bounds growing by at most 25 %, up to 120 s', () => {
    expect(LATENCY_BOUNDS_MS.slice(0, 9)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    for (let index = 9; index < LATENCY_BOUNDS_MS.length; index += 1) {
      const ratio = LATENCY_BOUNDS_MS[index]! / LATENCY_BOUNDS_MS[index - 1]!;
      expect(ratio).toBeGreaterThan(1);
      expect(ratio).toBeLessThanOrEqual(1.25);
    }
    expect(LATENCY_BOUNDS_MS.at(-1)).toBe(120_000);
    expect(LATENCY_BUCKETS).toBe(LATENCY_BOUNDS_MS.length + 1);
  });

  it('puts a latency in the first bucket whose bound holds it; negative counts as 0, beyond 120 s overflows', () => {
    expect(latencyBucket(-5)).toBe(0);
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(3)).toBe(3);
    const index = latencyBucket(100);
    expect(LATENCY_BOUNDS_MS[index]).toBeGreaterThanOrEqual(100);
    expect(LATENCY_BOUNDS_MS[index - 1]).toBeLessThan(100);
    expect(latencyBucket(500_000)).toBe(LATENCY_BUCKETS - 1);
  });

  it('reports a percentile as its bucket upper bound: never below the true value, within one bucket above', () => {
    const counts = emptyHistogram();
    for (let ms = 1; ms <= 100; ms += 1) counts[latencyBucket(ms)]! += 1;
    expect(histogramCount(counts)).toBe(100);
    const p50 = histogramQuantile(counts, 0.5)!;
    const p99 = histogramQuantile(counts, 0.99)!;
    expect(p50).toBeGreaterThanOrEqual(50);
    expect(p50).toBeLessThanOrEqual(50 * 1.25);
    expect(p99).toBeGreaterThanOrEqual(99);
    expect(p99).toBeLessThanOrEqual(99 * 1.25);
    expect(histogramQuantile(emptyHistogram(), 0.5)).toBeNull();
  });

  it('merges by adding counts: the merge of two halves answers like the whole', () => {
    const whole = emptyHistogram();
    const first = emptyHistogram();
    const second = emptyHistogram();
    for (let ms = 0; ms < 1000; ms += 7) {
      whole[latencyBucket(ms)]! += 1;
      (ms % 2 === 0 ? first : second)[latencyBucket(ms)]! += 1;
    }
    mergeHistogram(first, second);
    expect(first).toEqual(whole);
    expect(histogramQuantile(first, 0.99)).toBe(histogramQuantile(whole, 0.99));
  });
});

describe('topic counts encoding', () => {
  it('decodes what it encodes, latency included, and skips topics the filter refuses', () => {
    const latency = emptyHistogram();
    latency[4] = 3;
    const counts: TopicCounts = {
      eventsDatabase: 1, eventsSync: 0, eventsSocket: 5, eventsSystem: 0,
      deliveries: 10, bytes: 2000, webhookDelivered: 2, webhookFailed: 1, resyncs: 1, latency,
    };
    const fields: (string | number)[] = [];
    encodeCounts('shop:prod:|orders', counts, fields);
    encodeCounts('shop:prod:|other', counts, fields);
    const topics = new Map<string, TopicCounts>();
    for (let index = 0; index < fields.length; index += 2) {
      decodeField(topics, fields[index] as string, fields[index + 1] as number, (key) => key.endsWith('|orders'));
    }
    expect([...topics.keys()]).toEqual(['shop:prod:|orders']);
    expect(topics.get('shop:prod:|orders')).toEqual(counts);
  });
});

describe('analytics recorder', () => {
  it('counts per topic into the current minute and drains each minute once', () => {
    const time = clock(10 * MINUTE + 5_000);
    const recorder = createAnalyticsRecorder({ now: time.now });
    recorder.routed('a|orders', 'socket');
    recorder.routed('a|orders', 'database');
    recorder.delivered('a|orders', 3, 100, 12);
    recorder.delivered('a|orders', 2, 100, undefined);
    recorder.resync('a|orders');
    recorder.webhookAttempt('a|orders', 'delivered');
    recorder.webhookAttempt('a|orders', 'throttled');
    time.advance(MINUTE);
    recorder.routed('a|orders', 'sync');

    const drained = recorder.drain();
    expect(drained.map((minute) => minute.minute)).toEqual([10 * MINUTE, 11 * MINUTE]);
    const first = drained[0]!.topics.get('a|orders')!;
    expect(first).toMatchObject({ eventsSocket: 1, eventsDatabase: 1, deliveries: 5, bytes: 500, resyncs: 1, webhookDelivered: 1, webhookFailed: 1 });
    expect(first.latency![latencyBucket(12)]).toBe(3);
    expect(histogramCount(first.latency!)).toBe(3);
    expect(drained[1]!.topics.get('a|orders')).toMatchObject({ eventsSync: 1 });
    expect(recorder.drain()).toEqual([]);

    const figures = recorder.figures.snapshot();
    expect(figures).toMatchObject({
      enabled: true,
      eventsBySource: { socket: 1, database: 1, sync: 1, system: 0 },
      deliveries: 5,
      bytes: 500,
      resyncs: 1,
      webhookAttempts: { delivered: 1, throttled: 1, failed: 0 },
      topicsOverflowed: 0,
    });
    expect(figures.latency.count).toBe(3);
  });

  it('never counts Tributary’s periodic topics (analytics.minutes, system.dashboard), neither per topic nor in the instance’s totals', () => {
    const recorder = createAnalyticsRecorder();
    for (const topic of ['analytics.minutes', 'system.dashboard']) {
      const key = topicKey('ops', undefined, topic);
      recorder.routed(key, 'system');
      recorder.delivered(key, 3, 100, 5);
      recorder.resync(key);
      recorder.webhookAttempt(key, 'failed');
    }
    expect(UNCOUNTED_TOPICS).toEqual(['analytics.minutes', 'system.dashboard']);
    expect(recorder.drain()).toEqual([]);
    const figures = recorder.figures.snapshot();
    expect(figures).toMatchObject({ eventsBySource: { system: 0 }, deliveries: 0, bytes: 0, resyncs: 0, webhookAttempts: { failed: 0 } });
    expect(figures.latency.count).toBe(0);
  });

  it('counts Tributary’s topics whose events an application causes: alerts, endpoint notices, the gateway’s', () => {
    const recorder = createAnalyticsRecorder();
    const topics = ['system.alerts', 'webhooks.endpoints', 'gateway.connected', 'webhooks.test'];
    for (const topic of topics) recorder.routed(topicKey('ops', undefined, topic), 'system');
    expect([...recorder.drain()[0]!.topics.keys()]).toEqual(topics.map((topic) => topicKey('ops', undefined, topic)));
    expect(recorder.figures.snapshot().eventsBySource.system).toBe(topics.length);
  });

  it('admits at most the bound of topics per minute; the rest is counted under its environment’s overflow row', () => {
    const time = clock(0);
    const recorder = createAnalyticsRecorder({ now: time.now, maxTopicsPerMinute: 100 });
    // Four environments of two tenants each, in turn: none takes more than its share, the minute fills up.
    const keyOf = (index: number, prefix: string) => topicKey(`app${index % 4}`, `tenant${index % 8}`, `${prefix}${index}`);
    for (let index = 0; index < 1000; index += 1) recorder.routed(keyOf(index, 't'), 'socket');
    // Still bounded after a drain within the same minute: the minute remembers what it admitted.
    const first = recorder.drain()[0]!.topics;
    expect(first.size).toBe(104);
    for (let app = 0; app < 4; app += 1) expect(first.get(overflowOf(`app${app}`))!.eventsSocket).toBe(225);
    for (let index = 0; index < 1000; index += 1) recorder.routed(keyOf(index, 'u'), 'socket');
    const [minute] = recorder.drain();
    expect([...minute!.topics.keys()].sort()).toEqual([0, 1, 2, 3].map((app) => overflowOf(`app${app}`)));
    expect(minute!.topics.get(overflowOf('app0'))!.eventsSocket).toBe(250);
    expect(recorder.figures.snapshot().topicsOverflowed).toBe(1900);
    expect(recorder.heldTopics()).toBeLessThanOrEqual(104);
    // A new minute admits new topics again.
    time.advance(MINUTE);
    recorder.routed(topicKey('app0', 'tenant0', 'fresh'), 'socket');
    expect([...recorder.drain().at(-1)!.topics.keys()]).toEqual([topicKey('app0', 'tenant0', 'fresh')]);
  });

  it('lets no environment or tenant take the whole bound: another application’s and another tenant’s topics are still admitted', () => {
    const time = clock(60_000 * 1000);
    const recorder = createAnalyticsRecorder({ maxTopicsPerMinute: 10, now: time.now });
    for (let index = 0; index < 10; index += 1) recorder.routed(topicKey('appA', 'noisy', `spam.${index}`), 'socket');
    for (let index = 0; index < 500; index += 1) recorder.routed(topicKey('appB', 'victim', 'orders'), 'database');
    for (let index = 0; index < 3; index += 1) recorder.routed(topicKey('appA', 'quiet', 'orders'), 'socket');
    const rows = recorder.drain().flatMap((minute) => statsRowsOf(minute.topics));
    const row = (app: string, tenant: string, topic: string) => rows.find((each) => each.app === app && each.tenant === tenant && each.topic === topic);
    expect(row('appB', 'victim', 'orders')?.counts.eventsDatabase).toBe(500);
    expect(row('appA', 'quiet', 'orders')?.counts.eventsSocket).toBe(3);
    // The noisy tenant keeps half the bound; the rest of its flood stays in its own environment.
    expect(rows.filter((each) => each.tenant === 'noisy')).toHaveLength(5);
    expect(row('appA', '', '~other')).toMatchObject({ env: 'prod', counts: { eventsSocket: 5 } });
    expect(rows.some((each) => each.app === '')).toBe(false);
    // The overflow row is no topic of the Prometheus gauge.
    time.advance(MINUTE);
    recorder.drain();
    expect(recorder.topTopics(20).map((entry) => entry.topicKey)).not.toContain(overflowOf('appA'));
  });

  it('bounds the overflow rows too: past as many as the topics, the rest goes to the row of no environment', () => {
    const recorder = createAnalyticsRecorder({ maxTopicsPerMinute: 2, now: () => 0 });
    for (let app = 0; app < 10; app += 1) {
      recorder.routed(topicKey(`app${app}`, undefined, 'a'), 'socket');
      recorder.routed(topicKey(`app${app}`, undefined, 'b'), 'socket');
    }
    const topics = recorder.drain()[0]!.topics;
    expect([...topics.keys()].sort()).toEqual(
      [topicKey('app0', undefined, 'a'), topicKey('app1', undefined, 'a'), overflowOf('app0'), overflowOf('app1'), OTHER_TOPIC_KEY].sort(),
    );
    expect(topics.get(OTHER_TOPIC_KEY)!.eventsSocket).toBe(16);
  });

  it('ranks the last full minute’s topics by events per second', () => {
    const time = clock(0);
    const recorder = createAnalyticsRecorder({ now: time.now });
    for (let index = 0; index < 120; index += 1) recorder.routed('s|hot', 'socket');
    for (let index = 0; index < 60; index += 1) recorder.routed('s|warm', 'socket');
    recorder.routed('s|cold', 'socket');
    recorder.drain();
    expect(recorder.topTopics(2)).toEqual([]);
    time.advance(MINUTE);
    recorder.drain();
    expect(recorder.topTopics(2)).toEqual([
      { topicKey: 's|hot', eventsPerSecond: 2 },
      { topicKey: 's|warm', eventsPerSecond: 1 },
    ]);
  });
});
