/**
 * What one instance tells the cluster every few seconds (the seed's MetricsUpdater tick): its
 * live state (sockets, subscriptions, the CDC readers it leads, the outboxes and webhook backlogs
 * it measures) and what happened since its previous report (events by source, deliveries, bytes,
 * webhook outcomes, resyncs, slow-consumer closes, the latency histogram of the interval) next to
 * the cumulative totals the alerts take windows of. Pure: built from two snapshots of the
 * instance's figures; no I/O.
 */
import type { EventSource } from '../events/envelope.ts';
import type { InstanceFiguresSnapshot, WebhookOutcome } from '../analytics/instance-figures.ts';
import { emptyHistogram } from '../../latency-histogram.ts';

/** The live state an instance reads from its samplers (what `/metrics` shows now). */
export interface InstanceLiveState {
  readonly connections: number;
  readonly subscriptions: number;
  /** Sockets closed for falling behind since the instance started. */
  readonly slowConsumerCloses: number;
  /** `walSafety`: the slot's `safe_wal_size` (absent from a previous version's report). */
  readonly cdcReaders: readonly { readonly source: string; readonly lagBytes: number | null; readonly retainedWalBytes: number | null; readonly walSafety?: { readonly safeWalBytes: number | null } | null }[];
  readonly outboxes: readonly { readonly outbox: string; readonly pending: number; readonly oldestPendingSeconds: number | null }[];
  readonly webhookBacklogs: readonly WebhookBacklog[];
}

/** An endpoint's queue as last measured. */
export interface WebhookBacklog {
  readonly endpoint: string;
  /** The endpoint's environment (absent in the reports of earlier versions). */
  readonly app?: string;
  readonly env?: string;
  readonly pending: number;
  /** The oldest pending delivery's age when measured, in s; null when none is pending. */
  readonly oldestPendingSeconds: number | null;
  /** When it was measured, in ms since the epoch; absent: as of the report that carries it (`at`). */
  readonly measuredAt?: number;
}

/** Counts over an interval (or since the start, for the totals). */
export interface ReportCounts {
  readonly eventsBySource: Readonly<Record<EventSource, number>>;
  readonly deliveries: number;
  readonly bytes: number;
  readonly resyncs: number;
  readonly slowConsumerCloses: number;
  readonly webhookAttempts: Readonly<Record<WebhookOutcome, number>>;
  /** Publish → socket latency, counts per bucket (`LATENCY_BOUNDS_MS`), mergeable by adding. */
  readonly latencyBuckets: readonly number[];
}

export interface InstanceReport {
  /** Unique per process (host, pid and a random part). */
  readonly instance: string;
  readonly role: string;
  /** When the process started, and when this report was made, in ms since the epoch. */
  readonly startedAt: number;
  readonly at: number;
  /** The interval `interval` covers, in ms (0 for a first report). */
  readonly intervalMs: number;
  readonly connections: number;
  readonly subscriptions: number;
  readonly cdcReaders: InstanceLiveState['cdcReaders'];
  readonly outboxes: InstanceLiveState['outboxes'];
  readonly webhookBacklogs: InstanceLiveState['webhookBacklogs'];
  /** What happened since the previous report. */
  readonly interval: ReportCounts;
  /** What happened since the process started. */
  readonly totals: ReportCounts;
  /** False when analytics is off: the counts stay 0 (live state is still reported). */
  readonly countsEnabled: boolean;
  /**
   * RESYNC_REQUIRED answers over the alerts' window ending at `at`, as the instance counted them
   * (`windowed-count.ts`). Absent from the reports of earlier versions.
   */
  readonly resyncWindow?: ResyncWindow;
  /**
   * When the instance stopped cleanly, in ms since the epoch: this is its last report, kept only
   * for the warnings to say since when no workers process has reported (`instance-presence.ts`);
   * it counts nowhere else. Absent while the instance runs (and from an earlier version's reports).
   */
  readonly stoppedAt?: number;
}

export interface ResyncWindow {
  /** The window, in ms (ALERTS_WINDOW_SECONDS of the instance). */
  readonly windowMs: number;
  readonly resyncs: number;
}

/** The counts of a snapshot (cumulative since the start). */
export function countsOf(figures: InstanceFiguresSnapshot, slowConsumerCloses: number): ReportCounts {
  return {
    eventsBySource: figures.eventsBySource,
    deliveries: figures.deliveries,
    bytes: figures.bytes,
    resyncs: figures.resyncs,
    slowConsumerCloses,
    webhookAttempts: figures.webhookAttempts,
    latencyBuckets: figures.latency.buckets,
  };
}

/** `later − earlier`, field by field (a counter never goes down; a negative difference is 0). */
function countsBetween(earlier: ReportCounts | undefined, later: ReportCounts): ReportCounts {
  if (earlier === undefined) return later;
  const minus = (a: number, b: number) => Math.max(0, a - b);
  const record = <K extends string>(a: Readonly<Record<K, number>>, b: Readonly<Record<K, number>>) =>
    Object.fromEntries(Object.entries(a).map(([key, value]) => [key, minus(value as number, b[key as K] ?? 0)])) as Record<K, number>;
  const buckets = emptyHistogram();
  later.latencyBuckets.forEach((count, index) => (buckets[index] = minus(count, earlier.latencyBuckets[index] ?? 0)));
  return {
    eventsBySource: record(later.eventsBySource, earlier.eventsBySource),
    deliveries: minus(later.deliveries, earlier.deliveries),
    bytes: minus(later.bytes, earlier.bytes),
    resyncs: minus(later.resyncs, earlier.resyncs),
    slowConsumerCloses: minus(later.slowConsumerCloses, earlier.slowConsumerCloses),
    webhookAttempts: record(later.webhookAttempts, earlier.webhookAttempts),
    latencyBuckets: buckets,
  };
}

/** The counts of nothing (the start of a sum). */
export function zeroCounts(): ReportCounts {
  return {
    eventsBySource: { database: 0, sync: 0, socket: 0, system: 0 },
    deliveries: 0,
    bytes: 0,
    resyncs: 0,
    slowConsumerCloses: 0,
    webhookAttempts: { delivered: 0, failed: 0, gone: 0, throttled: 0, refused: 0, dead: 0 },
    latencyBuckets: emptyHistogram(),
  };
}

/** `a + b`, field by field (instances of a cluster). */
export function addCounts(a: ReportCounts, b: ReportCounts): ReportCounts {
  const record = <K extends string>(x: Readonly<Record<K, number>>, y: Readonly<Record<K, number>>) =>
    Object.fromEntries(Object.entries(x).map(([key, value]) => [key, (value as number) + (y[key as K] ?? 0)])) as Record<K, number>;
  return {
    eventsBySource: record(a.eventsBySource, b.eventsBySource),
    deliveries: a.deliveries + b.deliveries,
    bytes: a.bytes + b.bytes,
    resyncs: a.resyncs + b.resyncs,
    slowConsumerCloses: a.slowConsumerCloses + b.slowConsumerCloses,
    webhookAttempts: record(a.webhookAttempts, b.webhookAttempts),
    latencyBuckets: a.latencyBuckets.map((count, index) => count + (b.latencyBuckets[index] ?? 0)),
  };
}

export interface ReportInput {
  readonly instance: string;
  readonly role: string;
  readonly startedAt: number;
  readonly figures: InstanceFiguresSnapshot;
  readonly live: InstanceLiveState;
  /** The previous report's totals and time; undefined for the first. */
  readonly previous: { readonly totals: ReportCounts; readonly at: number } | undefined;
  /** The resyncs over the alerts' window, as of `figures.at`. */
  readonly resyncWindow?: ResyncWindow | undefined;
}

export function buildReport(input: ReportInput): InstanceReport {
  const { figures, live, previous } = input;
  const totals = countsOf(figures, live.slowConsumerCloses);
  return {
    instance: input.instance,
    role: input.role,
    startedAt: input.startedAt,
    at: figures.at,
    intervalMs: previous === undefined ? 0 : Math.max(0, figures.at - previous.at),
    connections: live.connections,
    subscriptions: live.subscriptions,
    cdcReaders: live.cdcReaders,
    outboxes: live.outboxes,
    webhookBacklogs: live.webhookBacklogs,
    interval: previous === undefined ? zeroCounts() : countsBetween(previous.totals, totals),
    totals,
    countsEnabled: figures.enabled,
    ...(input.resyncWindow && { resyncWindow: input.resyncWindow }),
  };
}
