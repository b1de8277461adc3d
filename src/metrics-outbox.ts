/**
 * The outbox gauges (`metrics.ts` puts them on its registry), read at scrape time from what the
 * outbox readers last measured. While an outbox's database cannot be read the figures are its last
 * known ones — the backlog does not empty because nobody can count it — and the oldest pending
 * row's age keeps growing from the time it was measured, so an age rule (`TributaryOutboxBacklogOld`)
 * fires rather than going quiet; `tributary_outbox_source_up` says whether the last read worked.
 */
import { Gauge, type Registry } from 'prom-client';

/** An outbox as its reader last measured it (`outbox` is `app/env`). */
export interface OutboxSample {
  readonly outbox: string;
  readonly pending: number;
  /** The oldest pending row's age when measured, in s; null when none was pending. */
  readonly oldestPendingSeconds: number | null;
  /** When it was measured, in ms since the epoch, given while the outbox's database cannot be read: the age exported then adds the time since. @default as of the scrape */
  readonly measuredAt?: number;
}

/** Whether an outbox's reader could read its database the last time it tried. */
export interface OutboxSourceSample {
  readonly outbox: string;
  readonly up: boolean;
}

export interface OutboxMetrics {
  /** Outboxes this process reads: rows not routed yet (last known), and the age of the oldest, in s. */
  readonly outboxPending: Gauge<'outbox'>;
  readonly outboxOldestPendingSeconds: Gauge<'outbox'>;
  /** 1 when this process's last read of the outbox's database worked, 0 when it failed or did not answer. */
  readonly outboxSourceUp: Gauge<'outbox'>;
}

export interface OutboxMetricsSources {
  readonly outboxes: () => readonly OutboxSample[];
  readonly sources: () => readonly OutboxSourceSample[];
  /** The time, in ms since the epoch. */
  readonly now: () => number;
}

export function createOutboxMetrics(registry: Registry, { outboxes, sources, now }: OutboxMetricsSources): OutboxMetrics {
  return {
    outboxPending: new Gauge({
      name: 'tributary_outbox_pending',
      help: 'Outbox rows not routed yet (outboxes this process reads; measured every few seconds, the last known count while the outbox cannot be read)',
      labelNames: ['outbox'],
      registers: [registry],
      collect() {
        this.reset();
        for (const outbox of outboxes()) this.set({ outbox: outbox.outbox }, outbox.pending);
      },
    }),
    outboxOldestPendingSeconds: new Gauge({
      name: 'tributary_outbox_oldest_pending_seconds',
      help: 'Age of the oldest outbox row not routed yet, in s (outboxes this process reads; growing from the last measurement while the outbox cannot be read)',
      labelNames: ['outbox'],
      registers: [registry],
      collect() {
        this.reset();
        const at = now();
        for (const { outbox, oldestPendingSeconds, measuredAt } of outboxes()) {
          if (oldestPendingSeconds !== null) this.set({ outbox }, oldestPendingSeconds + Math.max(0, at - (measuredAt ?? at)) / 1000);
        }
      },
    }),
    outboxSourceUp: new Gauge({
      name: 'tributary_outbox_source_up',
      help: "1 when this process's last read of the outbox's database worked, 0 when it failed or did not answer in time",
      labelNames: ['outbox'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { outbox, up } of sources()) this.set({ outbox }, up ? 1 : 0);
      },
    }),
  };
}
