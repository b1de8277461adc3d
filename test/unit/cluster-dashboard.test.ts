import { describe, expect, it } from 'vitest';
import { emptyHistogram, latencyBucket } from '../../src/pipeline/analytics/latency-histogram.ts';
import { clusterDashboard } from '../../src/pipeline/dashboard/cluster-dashboard.ts';
import { createClusterFigures } from '../../src/pipeline/dashboard/cluster-figures.ts';
import { buildReport, zeroCounts, type InstanceReport, type ReportCounts } from '../../src/pipeline/dashboard/instance-report.ts';
import { createMemoryReportStore } from '../../src/pipeline/dashboard/report-store.ts';
import type { InstanceFiguresSnapshot } from '../../src/pipeline/analytics/instance-figures.ts';

function counts(overrides: Partial<ReportCounts> & { latencyMs?: number[] } = {}): ReportCounts {
  const latencyBuckets = emptyHistogram();
  for (const ms of overrides.latencyMs ?? []) latencyBuckets[latencyBucket(ms)]! += 1;
  return { ...zeroCounts(), ...overrides, latencyBuckets };
}

function report(instance: string, at: number, interval: ReportCounts, extra: Partial<InstanceReport> = {}): InstanceReport {
  return {
    instance,
    role: 'all',
    startedAt: 0,
    at,
    intervalMs: 1000,
    connections: 0,
    subscriptions: 0,
    cdcReaders: [],
    outboxes: [],
    webhookBacklogs: [],
    interval,
    totals: interval,
    countsEnabled: true,
    ...extra,
  };
}

function snapshot(at: number, deliveries: number, resyncs = 0): InstanceFiguresSnapshot {
  return {
    enabled: true,
    since: 0,
    at,
    eventsBySource: { database: 0, sync: 0, socket: deliveries, system: 0 },
    deliveries,
    bytes: deliveries * 100,
    resyncs,
    webhookAttempts: { delivered: 0, failed: 0, gone: 0, throttled: 0, refused: 0, dead: 0 },
    latency: { count: 0, p50Ms: null, p99Ms: null, buckets: emptyHistogram() },
    topicsOverflowed: 0,
  };
}

const LIVE = { connections: 3, subscriptions: 4, slowConsumerCloses: 0, cdcReaders: [], outboxes: [], webhookBacklogs: [] };

describe('cluster dashboard', () => {
  it('reports what happened since the previous report, and nothing for a first report', () => {
    const first = buildReport({ instance: 'a', role: 'all', startedAt: 0, figures: snapshot(1000, 50), live: LIVE, previous: undefined });
    expect(first.interval.deliveries).toBe(0);
    expect(first.intervalMs).toBe(0);
    const second = buildReport({ instance: 'a', role: 'all', startedAt: 0, figures: snapshot(3000, 80), live: LIVE, previous: { totals: first.totals, at: first.at } });
    expect(second.interval.deliveries).toBe(30);
    expect(second.intervalMs).toBe(2000);
    expect(second.totals.deliveries).toBe(80);
  });

  it('sums instances’ rates and sockets, and merges their latency histograms', () => {
    const view = clusterDashboard(
      [
        report('a', 10_000, counts({ deliveries: 100, latencyMs: [1, 1, 1] }), { connections: 2 }),
        report('b', 10_100, counts({ deliveries: 300, latencyMs: [200] }), { connections: 5, intervalMs: 2000 }),
      ],
      10_200,
    );
    expect(view.cluster.connections).toBe(7);
    // 100 in 1 s + 300 in 2 s.
    expect(view.cluster.deliveriesPerSecond).toBeCloseTo(250, 6);
    expect(view.cluster.latencyP50Ms).toBe(1);
    expect(view.cluster.latencyP99Ms).toBeGreaterThanOrEqual(200);
    expect(view.instances.map((instance) => [instance.instance, instance.figures.deliveriesPerSecond])).toEqual([
      ['b', 150],
      ['a', 100],
    ]);
  });

  it('takes a shared thing once — an endpoint’s backlog, a CDC source — from the latest report naming it', () => {
    const backlog = (pending: number) => [{ endpoint: 'ep1', pending, oldestPendingSeconds: pending }];
    const view = clusterDashboard(
      [
        report('old', 1000, zeroCounts(), { webhookBacklogs: backlog(10), cdcReaders: [{ source: 's', lagBytes: 1, retainedWalBytes: 2 }] }),
        report('new', 2000, zeroCounts(), { webhookBacklogs: backlog(4), cdcReaders: [{ source: 's', lagBytes: 9, retainedWalBytes: 9 }] }),
      ],
      2000,
    );
    expect(view.cluster.webhooks.pending).toBe(4);
    expect(view.cluster.cdc).toEqual([{ source: 's', lagBytes: 9, retainedWalBytes: 9 }]);
  });

  it('counts a failure rate only when there were attempts', () => {
    const none = clusterDashboard([report('a', 1000, zeroCounts())], 1000);
    expect(none.cluster.webhooks.failureRate).toBeNull();
    const some = clusterDashboard([report('a', 1000, counts({ webhookAttempts: { delivered: 3, failed: 1, gone: 0, throttled: 0, refused: 0, dead: 0 } }))], 1000);
    expect(some.cluster.webhooks.failureRate).toBe(0.25);
  });

  it('gives the alert rules the cluster’s sockets and the resyncs within the window', async () => {
    let now = 100_000;
    const store = createMemoryReportStore({ ttlMs: 60_000, now: () => now });
    const figures = createClusterFigures({ store, now: () => now });
    expect(await figures.read(10_000)).toBeUndefined();
    const put = (instance: string, at: number, resyncs: number, connections: number) =>
      store.put({ ...report(instance, at, zeroCounts(), { connections }), totals: { ...zeroCounts(), resyncs } });
    await put('a', now, 5, 1);
    await put('b', now, 0, 2);
    expect(await figures.read(10_000)).toEqual({ connections: 3, resyncs: 0 });
    now += 5_000;
    await put('a', now, 12, 1);
    await put('b', now, 3, 2);
    expect(await figures.read(10_000)).toEqual({ connections: 3, resyncs: 10 });
    // Later, the first counts fell out of the window.
    now += 10_000;
    await put('a', now, 13, 1);
    await put('b', now, 3, 2);
    expect(await figures.read(10_000)).toEqual({ connections: 3, resyncs: 1 });
  });
});
