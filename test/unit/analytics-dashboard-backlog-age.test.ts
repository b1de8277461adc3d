/**
 * The dashboard's oldest pending webhook delivery is as old as it is when the dashboard is put
 * together, not as it was when its instance measured it: the age grows by the time since the
 * measurement (the sample's `measuredAt` when it has one, else its report's time). It ran up to a
 * tick behind (~5–10 s: a measurement every few seconds, a report every tick, a read any time after).
 */
import { describe, expect, it } from 'vitest';
import { emptyHistogram } from '../../src/latency-histogram.ts';
import { clusterDashboard } from '../../src/pipeline/dashboard/cluster-dashboard.ts';
import { buildReport, type InstanceLiveState } from '../../src/pipeline/dashboard/instance-report.ts';
import type { InstanceFiguresSnapshot } from '../../src/pipeline/analytics/instance-figures.ts';

const TICK_MS = 5_000;

function snapshot(at: number): InstanceFiguresSnapshot {
  return {
    enabled: true,
    since: 0,
    at,
    eventsBySource: { database: 0, sync: 0, socket: 0, system: 0 },
    deliveries: 0,
    bytes: 0,
    resyncs: 0,
    webhookAttempts: { delivered: 0, failed: 0, gone: 0, throttled: 0, refused: 0, dead: 0 },
    latency: { count: 0, p50Ms: null, p99Ms: null, buckets: emptyHistogram(), sumMs: 0 },
    topicsOverflowed: 0,
  };
}

function reportAt(instance: string, at: number, webhookBacklogs: InstanceLiveState['webhookBacklogs']) {
  const live: InstanceLiveState = { connections: 0, subscriptions: 0, slowConsumerCloses: 0, cdcReaders: [], outboxes: [], webhookBacklogs };
  return buildReport({ instance, role: 'workers', startedAt: 0, figures: snapshot(at), live, previous: undefined });
}

describe('the dashboard’s oldest pending webhook delivery', () => {
  it('adds the time since its report to the age measured, in the cluster and in the instance’s figures', () => {
    const report = reportAt('w1', 100_000, [{ endpoint: 'ep_a', pending: 3, oldestPendingSeconds: 10 }]);
    const dashboard = clusterDashboard([report], 103_500, TICK_MS);
    expect(dashboard.cluster.webhooks.oldestPendingSeconds).toBe(13.5);
    expect(dashboard.instances[0]?.figures.webhooks.oldestPendingSeconds).toBe(13.5);
  });

  it('counts from the measurement when the sample says when it was taken, and leaves an empty backlog without an age', () => {
    const measured = reportAt('w1', 100_000, [
      { endpoint: 'ep_a', pending: 3, oldestPendingSeconds: 10, measuredAt: 96_000 },
      { endpoint: 'ep_b', pending: 0, oldestPendingSeconds: null, measuredAt: 96_000 },
    ]);
    expect(clusterDashboard([measured], 101_000, TICK_MS).cluster.webhooks.oldestPendingSeconds).toBe(15);
    const empty = reportAt('w1', 100_000, [{ endpoint: 'ep_b', pending: 0, oldestPendingSeconds: null }]);
    expect(clusterDashboard([empty], 104_000, TICK_MS).cluster.webhooks.oldestPendingSeconds).toBeNull();
  });

  it('takes an endpoint’s backlog from the latest report naming it, aged from that report', () => {
    const older = reportAt('w1', 100_000, [{ endpoint: 'ep_a', pending: 5, oldestPendingSeconds: 30 }]);
    const newer = reportAt('w2', 102_000, [{ endpoint: 'ep_a', pending: 4, oldestPendingSeconds: 31 }]);
    expect(clusterDashboard([older, newer], 104_000, TICK_MS).cluster.webhooks.oldestPendingSeconds).toBe(33);
  });
});
