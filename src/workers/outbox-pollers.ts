/**
 * The outbox pollers of a worker process: one poller per environment's outbox read in POLL mode (`outbox_sources`; WAL-mode ones are the CDC reader's),
 * started, replaced or stopped as the sources change, each on a small pool of its own on the
 * application's database. Any number of worker processes run this side by side: the pollers'
 * partition locks keep each entity's rows in order and routed once. Every few seconds each poller's
 * figures are written back for `outboxStatus` (read on any instance) and kept for `/metrics`.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Database } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import type { Metrics, OutboxSample } from '../metrics.ts';
import { createOutboxPoller, type OutboxPoller, type OutboxPollerStatus } from '../pipeline/outbox/outbox-poller.ts';
import { listOutboxSources, saveOutboxError, saveOutboxRate, saveOutboxReport, type OutboxSourceView } from '../pipeline/outbox/outbox-store.ts';
import type { EventRouter } from '../pipeline/router/event-router.ts';

export interface OutboxPollersOptions {
  /** The platform database (where the sources are kept). */
  readonly db: Database;
  /** Opens the pool of an application's database; the pollers end it when they stop. */
  readonly connect: (databaseUrl: string) => pg.Pool;
  readonly router: EventRouter;
  readonly logger: Logger;
  readonly metrics: Pick<Metrics, 'outboxRouted' | 'outboxDead' | 'sample'>;
  /** Wait between polls that found less than a full batch, in ms. */
  readonly pollIntervalMs: number;
  /** Processed rows are deleted after this, in ms. */
  readonly retentionMs: number;
  /** How often sources are reloaded and figures reported, in ms. @default 5000 */
  readonly reportIntervalMs?: number;
  /** Largest payload routed, in bytes of JSON. */
  readonly maxPayloadBytes: number;
}

export interface OutboxPollers {
  /** Loads the sources and reports once (also what the timer runs), after the refresh under way; nothing once closed. */
  refresh(): Promise<void>;
  /** Stops every poller (the batch in flight is committed or left unmarked) and ends their pools. Idempotent. */
  close(): Promise<void>;
}

interface Running {
  readonly source: OutboxSourceView;
  readonly pool: pg.Pool;
  readonly poller: OutboxPoller;
  /** Rows routed since the last report. */
  readonly counts: { routed: number };
  /** What the outbox's database last answered (for `/metrics`); kept while it cannot be reached. */
  last: { readonly pending: number; readonly oldestPendingSeconds: number | null; readonly dead: number } | undefined;
  /** `app/env`, the metrics' label. */
  readonly name: string;
}

export function createOutboxPollers(options: OutboxPollersOptions): OutboxPollers {
  const logger = options.logger.child({ component: 'outbox' });
  const running = new Map<string, Running>();
  const stopSampling = options.metrics.sample({
    outboxes: (): OutboxSample[] =>
      [...running.values()].flatMap(({ name, last }) => (last ? [{ outbox: name, pending: last.pending, oldestPendingSeconds: last.oldestPendingSeconds }] : [])),
  });
  let lastReport = Date.now();
  /** This process, in the rates table: each worker's rate counts once in the outbox's total. */
  const reporter = randomUUID();

  const start = (source: OutboxSourceView): Running => {
    const name = `${source.app}/${source.env}`;
    const pool = options.connect(source.databaseUrl);
    const counts = { routed: 0 };
    const poller = createOutboxPoller({
      pool,
      table: source.table,
      outboxId: source.outboxId,
      scope: { app: source.app, env: source.env },
      router: options.router,
      logger: logger.child({ outbox: name }),
      intervalMs: options.pollIntervalMs,
      retentionMs: options.retentionMs,
      maxPayloadBytes: options.maxPayloadBytes,
      requireTenant: source.requireTenant,
      metrics: {
        routed(count) {
          counts.routed += count;
          options.metrics.outboxRouted.inc({ outbox: name }, count);
        },
        dead(reason) {
          options.metrics.outboxDead.inc({ outbox: name, reason });
        },
      },
    });
    poller.start();
    logger.info({ outbox: name, table: source.table }, 'outbox poller started');
    return { source, pool, poller, counts, last: undefined, name };
  };

  const stop = async (entry: Running): Promise<void> => {
    await entry.poller.stop();
    await entry.pool.end().catch(() => undefined);
  };

  const report = async (entry: Running, seconds: number): Promise<void> => {
    const routedPerSecond = seconds > 0 ? entry.counts.routed / seconds : 0;
    entry.counts.routed = 0;
    let measured: OutboxPollerStatus | undefined;
    let failure = '';
    try {
      measured = await entry.poller.status();
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
    }
    if (measured) {
      const { pending, oldestPendingSeconds, dead } = measured;
      entry.last = { pending, oldestPendingSeconds, dead };
      await saveOutboxReport(options.db, entry.source, measured);
    } else {
      // Not measured: only the error is saved. Re-reporting `last` (or nothing) as fresh would keep a
      // backlog alert quiet, or resolve it, while nobody can read the outbox.
      await saveOutboxError(options.db, entry.source, failure);
    }
    await saveOutboxRate(options.db, entry.source.outboxId, reporter, routedPerSecond);
  };

  let closed = false;
  const refreshOnce = async (): Promise<void> => {
    const sources = (await listOutboxSources(options.db)).filter((source) => source.readMode === 'POLL');
    const wanted = new Map(sources.map((source) => [`${source.app}/${source.env}`, source]));
    for (const [key, entry] of running) {
      const source = wanted.get(key);
      if (source?.outboxId === entry.source.outboxId && source.requireTenant === entry.source.requireTenant) continue;
      running.delete(key);
      await stop(entry);
    }
    // Closed while the sources were read: close() stops what is running once this refresh ends, and
    // a poller started now would never be stopped.
    if (closed) return;
    for (const [key, source] of wanted) if (!running.has(key)) running.set(key, start(source));
    const now = Date.now();
    const seconds = (now - lastReport) / 1000;
    lastReport = now;
    await Promise.all([...running.values()].map((entry) => report(entry, seconds)));
  };

  /**
   * The refresh under way, the timer's or a caller's. Refreshes never overlap: two would both start
   * a poller for a new source (one of them never stopped), and slow ones would pile up on the
   * platform pool. A caller's refresh waits for the one under way, then runs.
   */
  let underWay: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    const previous = underWay;
    const run = (async () => {
      await previous?.catch(() => undefined);
      if (!closed) await refreshOnce();
    })();
    underWay = run;
    const settled = () => {
      if (underWay === run) underWay = undefined;
    };
    run.then(settled, settled);
    return run;
  };

  const timer = setInterval(() => {
    // A slow refresh (a database that answers slowly) is not overlapped by the next tick: that tick is skipped.
    if (underWay) return;
    refresh().catch((error: unknown) => logger.error({ err: error }, 'outbox sources could not be refreshed'));
  }, options.reportIntervalMs ?? 5000);
  timer.unref();

  let closing: Promise<void> | undefined;
  return {
    refresh,
    close() {
      closing ??= (async () => {
        closed = true;
        clearInterval(timer);
        stopSampling();
        await underWay?.catch(() => undefined);
        const entries = [...running.values()];
        running.clear();
        await Promise.all(entries.map(stop));
      })();
      return closing;
    },
  };
}
