import { describe, expect, it } from 'vitest';
import { emptyHistogram, latencyBucket } from '../../src/latency-histogram.ts';
import { clusterDashboard } from '../../src/pipeline/dashboard/cluster-dashboard.ts';
import { createLogger } from '../../src/logger.ts';
import { NO_STREAKS, step } from '../../src/pipeline/alerts/alert-engine.ts';
import { clusterRules } from '../../src/pipeline/alerts/rules/cluster-rules.ts';
import { InstanceTotals } from '../../src/pipeline/analytics/instance-figures.ts';
import { createClusterFigures } from '../../src/pipeline/dashboard/cluster-figures.ts';
import { startDashboardReporter } from '../../src/pipeline/dashboard/dashboard-reporter.ts';
import { createWindowedCount } from '../../src/pipeline/dashboard/windowed-count.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { buildReport, zeroCounts, type InstanceReport, type ReportCounts } from '../../src/pipeline/dashboard/instance-report.ts';
import { createMemoryReportStore } from '../../src/pipeline/dashboard/report-store.ts';
import { instancesByRole } from '../../src/pipeline/dashboard/instance-presence.ts';
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
    latency: { count: 0, p50Ms: null, p99Ms: null, buckets: emptyHistogram(), sumMs: 0 },
    topicsOverflowed: 0,
  };
}

const LIVE = { connections: 3, subscriptions: 4, slowConsumerCloses: 0, cdcReaders: [], outboxes: [], webhookBacklogs: [] };
const OPERATORS = { app: 'ops', env: 'prod', tenant: undefined };
const WINDOW_MS = 300_000;
/** The reports' interval in the dashboards put together here. */
const TICK_MS = 1_000;
const logger = createLogger({ level: 'silent' });

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
      TICK_MS,
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
      TICK_MS,
    );
    expect(view.cluster.webhooks.pending).toBe(4);
    expect(view.cluster.cdc).toEqual([{ source: 's', lagBytes: 9, retainedWalBytes: 9 }]);
  });

  it('reads the backlogs unknown, not 0, without a live report of a process that measures them — a server’s, a crashed workers process’s past a tick and a half', () => {
    const backlog = [{ endpoint: 'ep1', pending: 3, oldestPendingSeconds: 7 }];
    const server = report('s', 10_000, zeroCounts(), { role: 'server' });
    const unknown = { pending: null, oldestPendingSeconds: null };
    const alone = clusterDashboard([server], 10_000, TICK_MS);
    expect(alone.cluster.webhooks).toMatchObject(unknown);
    expect(alone.cluster.outboxes).toBeNull();
    expect(alone.instances[0]?.figures.webhooks).toMatchObject(unknown);
    // A workers process measuring an empty queue: 0 is a measurement.
    const idle = clusterDashboard([server, report('w', 10_000, zeroCounts(), { role: 'workers' })], 10_000, TICK_MS);
    expect(idle.cluster.webhooks).toMatchObject({ pending: 0, oldestPendingSeconds: null });
    expect(idle.cluster.outboxes).toEqual([]);
    // Killed right after a report: its measurement stands for a tick and a half, then nothing does.
    const killed = report('w', 10_000, zeroCounts(), { role: 'workers', webhookBacklogs: backlog });
    expect(clusterDashboard([killed, { ...server, at: 11_500 }], 11_500, TICK_MS).cluster.webhooks.pending).toBe(3);
    expect(clusterDashboard([killed, { ...server, at: 11_600 }], 11_600, TICK_MS).cluster.webhooks).toMatchObject(unknown);
  });

  it('keeps the last report of a workers process that stopped cleanly for the warning only: out of the list, the cluster and the present counts', async () => {
    let now = 100_000;
    const store = createMemoryReportStore({ ttlMs: 60_000, now: () => now });
    const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 3_600_000 }, publish: () => {} });
    const start = (role: string) =>
      startDashboardReporter({
        role,
        figures: new InstanceTotals(true, () => now),
        live: () => Promise.resolve({ ...LIVE, webhookBacklogs: [{ endpoint: 'ep1', pending: 2, oldestPendingSeconds: 1 }] }),
        store,
        router: createEventRouter({ log, logger }),
        operatorScope: OPERATORS,
        tickMs: TICK_MS,
        resyncWindowMs: WINDOW_MS,
        now: () => now,
        logger,
      });
    const server = start('server');
    const workers = start('workers');
    try {
      await server.report();
      await workers.report();
      expect(clusterDashboard(await store.all(), now, TICK_MS).cluster.webhooks.pending).toBe(2);
      now += 400;
      await workers.close();
      const view = clusterDashboard(await store.all(), now, TICK_MS);
      expect(view.instances.map((instance) => instance.instance)).toEqual([server.instance]);
      expect(view.cluster.connections).toBe(3);
      expect(view.cluster.webhooks.pending).toBeNull();
      expect(view.warnings).toEqual([`no workers process has reported since ${new Date(100_000).toISOString()}: outbox routing, webhook delivery and alerts are stopped`]);
      expect(instancesByRole(await store.all(), now, TICK_MS)).toEqual({ server: 1 });
      expect(await createClusterFigures({ store, now: () => now, tickMs: TICK_MS, logger }).read(WINDOW_MS)).toMatchObject({ connections: 3 });
      // Kept the store's TTL from its stop, then the warning knows no time.
      now += 60_001;
      await server.report();
      expect(clusterDashboard(await store.all(), now, TICK_MS).warnings).toEqual([
        'no workers process has reported in the last 10 minutes: outbox routing, webhook delivery and alerts are stopped',
      ]);
    } finally {
      await server.close();
      await log.close();
    }
  });

  it('takes a server’s report away at once when it stops cleanly', async () => {
    const store = createMemoryReportStore({ ttlMs: 60_000, now: () => 100_000 });
    const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 3_600_000 }, publish: () => {} });
    const server = startDashboardReporter({
      role: 'server',
      figures: new InstanceTotals(true, () => 100_000),
      live: () => Promise.resolve(LIVE),
      store,
      router: createEventRouter({ log, logger }),
      operatorScope: OPERATORS,
      tickMs: TICK_MS,
      resyncWindowMs: WINDOW_MS,
      now: () => 100_000,
      logger,
    });
    await server.report();
    await server.close();
    await log.close();
    expect(await store.all()).toEqual([]);
  });

  it('counts a failure rate only when there were attempts', () => {
    const none = clusterDashboard([report('a', 1000, zeroCounts())], 1000, TICK_MS);
    expect(none.cluster.webhooks.failureRate).toBeNull();
    const some = clusterDashboard([report('a', 1000, counts({ webhookAttempts: { delivered: 3, failed: 1, gone: 0, throttled: 0, refused: 0, dead: 0 } }))], 1000, TICK_MS);
    expect(some.cluster.webhooks.failureRate).toBe(0.25);
  });

  it('gives the alert rules the cluster’s sockets and the resyncs each instance counted over the window, unknown when one counts over no such window', async () => {
    const now = 100_000;
    const store = createMemoryReportStore({ ttlMs: 60_000, now: () => now });
    const lines: { level: number; msg: string }[] = [];
    const said = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) } });
    const figures = createClusterFigures({ store, now: () => now, tickMs: 5_000, logger: said });
    expect(await figures.read(10_000)).toBeUndefined();
    const put = (instance: string, connections: number, resyncWindow?: { windowMs: number; resyncs: number }) =>
      store.put({ ...report(instance, now, zeroCounts(), { connections }), ...(resyncWindow && { resyncWindow }) });
    await put('a', 1, { windowMs: 10_000, resyncs: 7 });
    await put('b', 2, { windowMs: 10_000, resyncs: 3 });
    expect(await figures.read(10_000)).toEqual({ connections: 3, resyncs: 10 });
    const [, storm] = clusterRules(figures, OPERATORS, { maxConnections: 10, maxResyncs: 5 });
    expect((await storm!.read({ windowMs: 10_000, watched: [] }))[0]?.verdict).toEqual({ kind: 'bad', severity: 'warning', value: 10, message: '10 resyncs in the window (limit 5)' });
    // An instance counting over another window (ALERTS_WINDOW_SECONDS changing in a deploy), or of
    // a version that does not count: the storm is unknown, neither good nor bad.
    await put('b', 2, { windowMs: 60_000, resyncs: 3 });
    expect(await figures.read(10_000)).toEqual({ connections: 3, resyncs: null });
    await put('b', 2);
    expect(await figures.read(10_000)).toEqual({ connections: 3, resyncs: null });
    expect((await storm!.read({ windowMs: 10_000, watched: [] }))[0]?.verdict).toMatchObject({ kind: 'unknown' });
    // Said once (a warning), and once more when every instance counts over the window again.
    await put('b', 2, { windowMs: 10_000, resyncs: 3 });
    expect(await figures.read(10_000)).toEqual({ connections: 3, resyncs: 10 });
    expect(lines.map((line) => [line.level, line.msg])).toEqual([
      [40, 'instances count their resyncs over another window (ALERTS_WINDOW_SECONDS) or not at all: the resync storm alert reads unknown'],
      [30, 'every instance counts its resyncs over the alerts window again'],
    ]);
  });

  it('counts the resyncs over the window the same whichever process reads them: one that just took over sees a storm under way, one that last read hours ago sees only the window', async () => {
    let now = 10_000_000;
    const store = createMemoryReportStore({ ttlMs: 15_000, now: () => now });
    const totals = new InstanceTotals(true, () => now);
    const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 3_600_000 }, publish: () => {} });
    const reporter = startDashboardReporter({
      role: 'server',
      figures: totals,
      live: () => Promise.resolve(LIVE),
      store,
      router: createEventRouter({ log, logger }),
      operatorScope: OPERATORS,
      tickMs: 5_000,
      resyncWindowMs: WINDOW_MS,
      now: () => now,
      logger,
    });
    /** `ticks` reports, `perTick` resyncs answered before each. */
    const run = async (ticks: number, perTick: number) => {
      for (let tick = 0; tick < ticks; tick += 1) {
        now += 5_000;
        totals.resyncs += perTick;
        await reporter.report();
      }
    };
    try {
      const early = createClusterFigures({ store, now: () => now, tickMs: 5_000, logger });
      await run(1, 0);
      expect((await early.read(WINDOW_MS))?.resyncs).toBe(0);
      // A storm for an hour, 20 resyncs a second: 6,000 in a 5-minute window. `early` reads no more.
      await run(720, 100);
      const tookOver = createClusterFigures({ store, now: () => now, tickMs: 5_000, logger });
      expect((await tookOver.read(WINDOW_MS))?.resyncs).toBe(6_000);
      const [, storm] = clusterRules(tookOver, OPERATORS, { maxConnections: 10_000, maxResyncs: 1_000 });
      expect((await storm!.read({ windowMs: WINDOW_MS, watched: [] }))[0]?.verdict).toMatchObject({ kind: 'bad', value: 6_000 });
      // The storm ends: 0.2 a second for two hours, 60 in a window — whoever reads, however long ago it last did.
      await run(1_440, 1);
      expect((await tookOver.read(WINDOW_MS))?.resyncs).toBe(60);
      expect((await early.read(WINDOW_MS))?.resyncs).toBe(60);
    } finally {
      await reporter.close();
      await log.close();
    }
  });

  it('counts the sockets of a crashed instance beside its replacement’s for no longer than one tick and a half: the connections alert does not fire', async () => {
    let now = 1_000_000;
    const tickMs = 5_000;
    // Reports kept three ticks, as startDashboard keeps them.
    const store = createMemoryReportStore({ ttlMs: 3 * tickMs, now: () => now });
    const figures = createClusterFigures({ store, now: () => now, tickMs, logger });
    const [connections] = clusterRules(figures, OPERATORS, { maxConnections: 10_000, maxResyncs: 1_000 });
    const put = (instance: string, sockets: number) => store.put(report(instance, now, zeroCounts(), { connections: sockets }));
    await put('a', 6_000);
    await put('b', 0);
    // `a` crashes just after reporting (no remove()); its 6,000 clients reconnect to `b`.
    let streaks = NO_STREAKS;
    const verdicts: unknown[] = [];
    for (let evaluation = 0; evaluation < 3; evaluation += 1) {
      now += 4_000;
      await put('b', 6_000);
      const [reading] = await connections!.read({ windowMs: WINDOW_MS, watched: [] });
      const next = step(streaks, undefined, reading!.verdict, { fireAfter: 2, resolveAfter: 3 });
      expect(next.transition).toBeUndefined();
      streaks = next.streaks;
      verdicts.push(reading!.verdict);
    }
    // Counted twice once (4 s after its last report), then no more: `a` has missed a tick and a half.
    expect(verdicts).toEqual([
      { kind: 'bad', severity: 'warning', value: 12_000, message: '12000 open connections (limit 10000)' },
      { kind: 'good', value: 6_000, message: 'back within limit: 6000 open connections (limit 10000)' },
      { kind: 'good', value: 6_000, message: 'back within limit: 6000 open connections (limit 10000)' },
    ]);
    // The dashboard: the cluster is its live instances, the list keeps `a` until its report expires.
    now = 1_000_000 + 8_000;
    const view = clusterDashboard(await store.all(), now, tickMs);
    expect(view.cluster.connections).toBe(6_000);
    expect(view.instances.map((instance) => instance.instance).sort()).toEqual(['a', 'b']);
  });

  it('counts an instance’s resyncs over the window from its own samples, from its start when younger than the window, in bounded memory', () => {
    const window = createWindowedCount(10_000);
    expect(window.add(1_000, 4)).toBe(4);
    expect(window.add(6_000, 9)).toBe(9);
    // The window began at 1,000: the total then is the baseline.
    expect(window.add(11_000, 10)).toBe(6);
    expect(window.add(16_000, 10)).toBe(1);
    expect(window.add(30_000, 12)).toBe(2);
    // A day's window sampled every second: a sample is kept a thousandth of the window (86.4 s)
    // after the last kept, so the baseline is older than the window's start by up to 87 s.
    const daily = createWindowedCount(86_400_000);
    let grown = 0;
    for (let second = 1; second <= 2 * 86_400; second += 1) grown = daily.add(second * 1_000, second);
    expect(grown).toBeGreaterThanOrEqual(86_400);
    expect(grown).toBeLessThanOrEqual(86_400 + 87);
  });
});
