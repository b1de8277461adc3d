/**
 * This instance's cumulative totals since it started — the figures a dashboard reads (rates are
 * the difference of two snapshots over the time between them). Counted by the recorder on the
 * hot path as plain additions; a snapshot copies them.
 */
import type { EventSource } from '../events/envelope.ts';
import type { WebhookOutcome } from '../webhooks/attempt-outcome.ts';
import { emptyHistogram, histogramCount, histogramQuantile } from '../../latency-histogram.ts';

export type { WebhookOutcome } from '../webhooks/attempt-outcome.ts';

export interface InstanceFiguresSnapshot {
  /** False when analytics is off (`ANALYTICS_ENABLED=false`): every figure stays 0. */
  readonly enabled: boolean;
  /** When counting started, in ms since the epoch. */
  readonly since: number;
  /** When this snapshot was taken, in ms since the epoch. */
  readonly at: number;
  /** Events routed by this instance, by source. */
  readonly eventsBySource: Readonly<Record<EventSource, number>>;
  /** Frames this instance wrote to subscribers' sockets. */
  readonly deliveries: number;
  /** Payload bytes of those frames. */
  readonly bytes: number;
  /** Subscribers this instance ended with RESYNC_REQUIRED. */
  readonly resyncs: number;
  /** Webhook attempts this instance made, by outcome. */
  readonly webhookAttempts: Readonly<Record<WebhookOutcome, number>>;
  /** Publish → socket latency of live deliveries (percentiles as bucket upper bounds, in ms). */
  readonly latency: {
    readonly count: number;
    readonly p50Ms: number | null;
    readonly p99Ms: number | null;
    /** Counts per bucket (`LATENCY_BOUNDS_MS` layout), to merge instances. */
    readonly buckets: readonly number[];
    /** The latencies added up, in ms (negative ones as 0, as their bucket does): the `_sum` of the Prometheus histogram. */
    readonly sumMs: number;
  };
  /** Per-topic countings that went to the minute's overflow topic (more topics than its bound). */
  readonly topicsOverflowed: number;
  /**
   * Minutes whose counts this instance pushed and the minute store lost before the workers wrote
   * them (`pusher.ts`); absent from figures that do not count them (0).
   */
  readonly minutesLost?: number;
}

/** The read side: what a dashboard or `/metrics` may use. */
export interface InstanceFigures {
  snapshot(): InstanceFiguresSnapshot;
}

/** The write side, owned by the recorder (mutable counters, no allocation per update). */
export class InstanceTotals implements InstanceFigures {
  readonly since: number;
  readonly events: Record<EventSource, number> = { database: 0, sync: 0, socket: 0, system: 0 };
  readonly webhooks: Record<WebhookOutcome, number> = { delivered: 0, failed: 0, gone: 0, throttled: 0, refused: 0, dead: 0 };
  readonly latency: number[] = emptyHistogram();
  /** Every live delivery's latency added up, in ms (the recorder adds `max(0, latency) × subscribers`). */
  latencySumMs = 0;
  deliveries = 0;
  bytes = 0;
  resyncs = 0;
  overflowed = 0;
  minutesLost = 0;
  readonly #enabled: boolean;
  readonly #now: () => number;

  constructor(enabled: boolean, now: () => number) {
    this.#enabled = enabled;
    this.#now = now;
    this.since = now();
  }

  snapshot(): InstanceFiguresSnapshot {
    return {
      enabled: this.#enabled,
      since: this.since,
      at: this.#now(),
      eventsBySource: { ...this.events },
      deliveries: this.deliveries,
      bytes: this.bytes,
      resyncs: this.resyncs,
      webhookAttempts: { ...this.webhooks },
      latency: {
        count: histogramCount(this.latency),
        p50Ms: histogramQuantile(this.latency, 0.5),
        p99Ms: histogramQuantile(this.latency, 0.99),
        buckets: [...this.latency],
        sumMs: this.latencySumMs,
      },
      topicsOverflowed: this.overflowed,
      minutesLost: this.minutesLost,
    };
  }
}
