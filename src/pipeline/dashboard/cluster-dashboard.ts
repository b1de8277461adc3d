/**
 * The dashboard: every instance's latest report, and the cluster they make together. Counts
 * (events, deliveries, webhook outcomes…) are summed over instances, as are sockets and
 * subscriptions; latency percentiles come from the instances' histograms added together;
 * figures several processes measure of one shared thing — a webhook endpoint's backlog (each
 * workers process reads the same table), an outbox, a CDC source (its leader reports it) — are
 * taken once, from the latest report naming them. Pure.
 *
 * Only the workers roles measure backlogs (`runsWorkersJobs`): with no live report of one, the
 * backlog figures are unknown — null, not the 0 that summing no measurement gives — while the queue
 * grows with nothing to work it off (every workers process stopped or killed).
 *
 * The cluster is made of the live reports only (`liveReports`); the instance list shows every
 * report the store keeps but those of instances that stopped cleanly (kept for the warnings):
 * present ones (three ticks), then gone ones (`instance-presence.ts`), marked so, with their last
 * report time. An age measured (the oldest pending webhook delivery) is
 * shown as of the dashboard's time: the age measured plus the time since the measurement — it ran
 * up to a tick or two behind (a measurement every few seconds, a report every tick, a read later).
 */
import type { EventSource } from '../events/envelope.ts';
import { histogramCount, histogramQuantile } from '../../latency-histogram.ts';
import { addCounts, zeroCounts, type InstanceLiveState, type InstanceReport, type ReportCounts, type WebhookBacklog } from './instance-report.ts';
import { clusterWarnings, isPresent, runsWorkersJobs, type PresenceOptions } from './instance-presence.ts';

export interface SourceRate {
  readonly source: EventSource;
  readonly perSecond: number;
}

export interface DashboardFigures {
  readonly connections: number;
  readonly subscriptions: number;
  readonly eventsPerSecond: number;
  readonly eventsPerSecondBySource: readonly SourceRate[];
  /** Frames written to subscribers (one event to N subscribers counts N). */
  readonly deliveriesPerSecond: number;
  readonly bytesPerSecond: number;
  /** Publish → socket over the last interval; null without deliveries. */
  readonly latencyP50Ms: number | null;
  readonly latencyP99Ms: number | null;
  readonly webhooks: {
    readonly deliveredPerSecond: number;
    readonly failedPerSecond: number;
    /** Failed attempts ÷ attempts over the last interval; null without attempts. */
    readonly failureRate: number | null;
    /** Every endpoint's pending deliveries; null when no report of a process that measures them (`runsWorkersJobs`) counts. */
    readonly pending: number | null;
    /** Null when none is pending, or when `pending` is unknown. */
    readonly oldestPendingSeconds: number | null;
  };
  readonly cdc: InstanceLiveState['cdcReaders'];
  /** Null when no report of a process that measures them (`runsWorkersJobs`) counts: not "no outbox". */
  readonly outboxes: readonly { readonly outbox: string; readonly pending: number; readonly oldestPendingSeconds: number | null }[] | null;
  readonly resyncsPerSecond: number;
  readonly slowConsumerClosesPerSecond: number;
}

export interface InstanceDashboard {
  readonly instance: string;
  readonly role: string;
  readonly startedAt: number;
  /** When it last reported, in ms since the epoch. */
  readonly at: number;
  /** It has not reported for three ticks (killed, frozen or cut off): `figures` are its last report's. */
  readonly gone: boolean;
  readonly figures: DashboardFigures;
}

export interface Dashboard {
  /** When it was put together, in ms since the epoch. */
  readonly at: number;
  readonly cluster: DashboardFigures;
  /** Newest report first. */
  readonly instances: readonly InstanceDashboard[];
  /** What is wrong with the cluster's make-up (no instance running the workers' jobs); empty when nothing is. */
  readonly warnings: readonly string[];
}

const SOURCES: readonly EventSource[] = ['database', 'sync', 'socket', 'system'];

/**
 * The age of an endpoint's oldest pending delivery at `at`: as measured, plus the time since —
 * from the measurement when the sample says when it was, else from the report that carries it.
 */
function backlogAgeAt(backlog: WebhookBacklog, report: InstanceReport, at: number): number | null {
  if (backlog.oldestPendingSeconds === null) return null;
  return backlog.oldestPendingSeconds + Math.max(0, at - (backlog.measuredAt ?? report.at)) / 1000;
}

/** Rates over `intervalMs`: counts per second (0 for a first report, which covers no interval); ages as of `at`. */
function figuresOf(counts: ReportCounts, intervalMs: number, reports: readonly InstanceReport[], at: number): DashboardFigures {
  const perSecond = (count: number) => (intervalMs > 0 ? (count * 1000) / intervalMs : 0);
  const attempts = Object.values(counts.webhookAttempts).reduce((sum, count) => sum + count, 0);
  const failed = attempts - counts.webhookAttempts.delivered;
  const latencyCount = histogramCount(counts.latencyBuckets);
  const latest = [...reports].sort((a, b) => b.at - a.at);
  const once = <T, K>(items: (report: InstanceReport) => readonly T[], key: (item: T) => K): T[] => {
    const seen = new Map<K, T>();
    for (const report of latest) for (const item of items(report)) if (!seen.has(key(item))) seen.set(key(item), item);
    return [...seen.values()];
  };
  // The reports of processes that measure the backlogs: a server's empty lists are no measurement.
  const measured = reports.some((report) => runsWorkersJobs(report.role));
  const backlogs = once((report) => report.webhookBacklogs.map((backlog) => ({ ...backlog, age: backlogAgeAt(backlog, report, at) })), (backlog) => backlog.endpoint);
  const oldest = backlogs.reduce<number | null>((max, backlog) => (backlog.age === null ? max : Math.max(max ?? 0, backlog.age)), null);
  return {
    connections: reports.reduce((sum, report) => sum + report.connections, 0),
    subscriptions: reports.reduce((sum, report) => sum + report.subscriptions, 0),
    eventsPerSecond: perSecond(SOURCES.reduce((sum, source) => sum + counts.eventsBySource[source], 0)),
    eventsPerSecondBySource: SOURCES.map((source) => ({ source, perSecond: perSecond(counts.eventsBySource[source]) })),
    deliveriesPerSecond: perSecond(counts.deliveries),
    bytesPerSecond: perSecond(counts.bytes),
    latencyP50Ms: latencyCount === 0 ? null : histogramQuantile(counts.latencyBuckets, 0.5),
    latencyP99Ms: latencyCount === 0 ? null : histogramQuantile(counts.latencyBuckets, 0.99),
    webhooks: {
      deliveredPerSecond: perSecond(counts.webhookAttempts.delivered),
      failedPerSecond: perSecond(failed),
      failureRate: attempts === 0 ? null : failed / attempts,
      pending: measured ? backlogs.reduce((sum, backlog) => sum + backlog.pending, 0) : null,
      oldestPendingSeconds: measured ? oldest : null,
    },
    cdc: once((report) => report.cdcReaders, (reader) => reader.source).sort((a, b) => a.source.localeCompare(b.source)),
    outboxes: measured ? once((report) => report.outboxes, (outbox) => outbox.outbox).sort((a, b) => a.outbox.localeCompare(b.outbox)) : null,
    resyncsPerSecond: perSecond(counts.resyncs),
    slowConsumerClosesPerSecond: perSecond(counts.slowConsumerCloses),
  };
}

/** How many ticks a report counts as the instance's present state for. */
const LIVE_TICKS = 1.5;

/**
 * The reports made within a tick and a half of `at`: those of instances that are reporting. A
 * process that died never takes its report out of the store; its clients reconnect to the others,
 * whose reports soon count them, so summing its last report beside theirs would count them twice —
 * for the three ticks the store keeps it, longer than a connections alert needs to fire (two
 * evaluations). Half a tick of slack for a report that is late. One that stopped cleanly counts no
 * more.
 */
export function liveReports<R extends Pick<InstanceReport, 'at' | 'stoppedAt'>>(reports: readonly R[], at: number, tickMs: number): R[] {
  return reports.filter((report) => report.stoppedAt === undefined && at - report.at <= tickMs * LIVE_TICKS);
}

export function clusterDashboard(reports: readonly InstanceReport[], at: number, tickMs: number, options: PresenceOptions = {}): Dashboard {
  const sorted = [...reports].sort((a, b) => b.at - a.at || a.instance.localeCompare(b.instance));
  const instances = sorted.filter((report) => report.stoppedAt === undefined);
  const live = liveReports(instances, at, tickMs);
  // The cluster's rate: each instance's interval counts over its own interval, added up.
  const rates = live.filter((report) => report.intervalMs > 0);
  const perMs = rates.reduce((sum, report) => addCounts(sum, scale(report.interval, 1 / report.intervalMs)), zeroCounts());
  return {
    at,
    cluster: { ...figuresOf(perMs, 1, live, at), latencyP50Ms: latencyOf(rates, 0.5), latencyP99Ms: latencyOf(rates, 0.99) },
    instances: instances.map((report) => ({
      instance: report.instance,
      role: report.role,
      startedAt: report.startedAt,
      at: report.at,
      gone: !isPresent(report, at, tickMs),
      figures: figuresOf(report.interval, report.intervalMs, [report], at),
    })),
    warnings: clusterWarnings(sorted, at, tickMs, options),
  };
}

/** Counts multiplied by `factor` (a rate per ms); the histogram is left as it is (percentiles come from `latencyOf`). */
function scale(counts: ReportCounts, factor: number): ReportCounts {
  const record = <K extends string>(values: Readonly<Record<K, number>>) =>
    Object.fromEntries(Object.entries(values).map(([key, value]) => [key, (value as number) * factor])) as Record<K, number>;
  return {
    eventsBySource: record(counts.eventsBySource),
    deliveries: counts.deliveries * factor,
    bytes: counts.bytes * factor,
    resyncs: counts.resyncs * factor,
    slowConsumerCloses: counts.slowConsumerCloses * factor,
    webhookAttempts: record(counts.webhookAttempts),
    latencyBuckets: counts.latencyBuckets,
  };
}

/** A percentile of every instance's last-interval latencies together. */
function latencyOf(reports: readonly InstanceReport[], q: number): number | null {
  const merged = reports.reduce((sum, report) => addCounts(sum, report.interval), zeroCounts()).latencyBuckets;
  return histogramCount(merged) === 0 ? null : histogramQuantile(merged, q);
}
