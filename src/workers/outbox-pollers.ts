/**
 * The outbox pollers of a worker process: one poller per environment's outbox read in POLL mode (`outbox_sources`; WAL-mode ones are the CDC reader's),
 * started, replaced or stopped as the sources change, each on a small pool of its own on the
 * application's database. Any number of worker processes run this side by side: the pollers'
 * partition locks keep each entity's rows in order and routed once. Every few seconds each poller's
 * figures are written back for `outboxStatus` (read on any instance) and kept for `/metrics`: each
 * source on a timer of its own, so that one environment's outbox database that does not answer holds
 * neither the others' reports nor the sources' refresh (a new source is picked up within the interval).
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Database } from '../db/database.ts';
import { componentLogger, type Logger } from '../logger.ts';
import type { Metrics, OutboxSample } from '../metrics.ts';
import { pacedTask } from '../pipeline/coordination/paced-task.ts';
import { createOutboxPoller, type OutboxPoller, type OutboxPollerStatus } from '../pipeline/outbox/outbox-poller.ts';
import { listOutboxSources, saveOutboxError, saveOutboxRate, saveOutboxReport, writeDeadRowTally, type OutboxSourceView } from '../pipeline/outbox/outbox-store.ts';
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
  /**
   * How often sources are reloaded, and each source's figures reported, in ms; a source's figures not
   * measured within it are reported as an error (`OUTBOX_REPORT_INTERVAL_MS`). @default 5000
   */
  readonly reportIntervalMs?: number;
  /** Largest payload routed, in bytes of JSON. */
  readonly maxPayloadBytes: number;
}

export interface OutboxPollers {
  /**
   * Loads the sources, starts the pollers of new ones and sets the stopping of removed or changed ones
   * going (also what the timer runs), after the refresh under way; nothing once closed. Figures are
   * reported on each source's own timer, the first at once: a refresh does not wait for them.
   */
  refresh(): Promise<void>;
  /** Stops every poller (the batch in flight is committed or left unmarked) and ends their pools. Idempotent. */
  close(): Promise<void>;
}

/**
 * The outbox's counts read every pending row (a `count(*)`): cheap while the backlog is small,
 * seconds behind a large one. After a count of d ms the next waits this many times d (at least the
 * report interval), as the webhook backlogs' count does (`BACKLOG_COUNT_REST`): at most a twentieth
 * of a backend's time per outbox and process however large the backlog grows. Meanwhile only the rate is reported.
 */
const STATUS_COUNT_REST = 20;

interface Running {
  readonly source: OutboxSourceView;
  readonly pool: pg.Pool;
  readonly poller: OutboxPoller;
  /** Rows routed since the last report. */
  readonly counts: { routed: number };
  /** What the outbox's database last answered, and when (for `/metrics`); kept while it cannot be reached. */
  last: { readonly pending: number; readonly oldestPendingSeconds: number | null; readonly dead: number; readonly measuredAt: number } | undefined;
  /** Whether the last measurement worked (undefined before the first ends; a resting one does not change it). */
  up: boolean | undefined;
  /** `app/env`, the metrics' label. */
  readonly name: string;
  /** Measures the figures, resting after a long count (undefined then). */
  readonly measure: () => Promise<OutboxPollerStatus | undefined>;
  /** The measurement still waiting for the outbox's database: the next report does not ask again meanwhile. */
  measuring: Promise<OutboxPollerStatus | undefined> | undefined;
  /** The next report's timer, and the report under way. */
  timer: NodeJS.Timeout | undefined;
  reporting: Promise<void> | undefined;
  lastReport: number;
  stopped: boolean;
}

export function createOutboxPollers(options: OutboxPollersOptions): OutboxPollers {
  const logger = componentLogger(options.logger, 'outbox');
  const reportIntervalMs = options.reportIntervalMs ?? 5000;
  const running = new Map<string, Running>();
  /** Pollers being stopped (removed or changed sources): close() waits for them. */
  const stopping = new Set<Promise<void>>();
  const stopSampling = options.metrics.sample({
    outboxes: (): OutboxSample[] =>
      // The oldest row's age grows from its measurement only while the database cannot be read (not
      // while a long count rests: the rows are being routed then, the age would be made up).
      [...running.values()].flatMap(({ name, last, up }) =>
        last ? [{ outbox: name, pending: last.pending, oldestPendingSeconds: last.oldestPendingSeconds, ...(up === false && { measuredAt: last.measuredAt }) }] : [],
      ),
    outboxSources: () => [...running.values()].flatMap(({ name, up }) => (up === undefined ? [] : [{ outbox: name, up }])),
  });
  /** This process, in the rates table: each worker's rate counts once in the outbox's total. */
  const reporter = randomUUID();

  const report = async (entry: Running): Promise<void> => {
    const now = Date.now();
    const seconds = (now - entry.lastReport) / 1000;
    entry.lastReport = now;
    const routedPerSecond = seconds > 0 ? entry.counts.routed / seconds : 0;
    entry.counts.routed = 0;
    entry.measuring ??= entry.measure().finally(() => (entry.measuring = undefined));
    let measured: OutboxPollerStatus | 'resting' | 'late' | undefined;
    let failure = '';
    let timer: NodeJS.Timeout | undefined;
    try {
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), reportIntervalMs)));
      measured = (await Promise.race([entry.measuring, late])) ?? 'resting';
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
    } finally {
      clearTimeout(timer);
    }
    if (measured === 'late') failure = `The outbox's database did not answer the status counts within ${reportIntervalMs} ms`;
    // For `/metrics`, before the writes below, which need the platform database: what the outbox's own database answered.
    if (measured !== 'resting') entry.up = typeof measured === 'object';
    if (typeof measured === 'object') entry.last = { pending: measured.pending, oldestPendingSeconds: measured.oldestPendingSeconds, dead: measured.dead, measuredAt: Date.now() };
    // Whatever the counts did (late, resting, failed): rows die while routing, not while counting.
    // Before the figures, which must not be saved without the rows that died before they were
    // measured; the poller keeps them until this succeeds.
    await writeDeadRowTally(options.db, entry.source.outboxId, entry.poller.deadRows);
    if (typeof measured === 'object') {
      await saveOutboxReport(options.db, entry.source, measured);
    } else if (measured !== 'resting') {
      // Not measured: only the error is saved. Re-reporting `last` (or nothing) as fresh would keep a
      // backlog alert quiet, or resolve it, while nobody can read the outbox.
      await saveOutboxError(options.db, entry.source, failure);
    }
    await saveOutboxRate(options.db, entry.source.outboxId, reporter, routedPerSecond);
  };

  /** Reports `entry` now, then every interval after the last report ended, until it is stopped. */
  const reportEvery = (entry: Running, delayMs: number): void => {
    entry.timer = setTimeout(() => {
      entry.reporting = report(entry)
        .catch((error: unknown) => logger.warn({ err: error, outbox: entry.name }, 'outbox status could not be reported'))
        .finally(() => {
          entry.reporting = undefined;
          if (!entry.stopped) reportEvery(entry, reportIntervalMs);
        });
    }, delayMs);
    entry.timer.unref();
  };

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
    const entry: Running = {
      source,
      pool,
      poller,
      counts,
      last: undefined,
      up: undefined,
      name,
      measure: pacedTask(() => poller.status(), { restFactor: STATUS_COUNT_REST }),
      measuring: undefined,
      timer: undefined,
      reporting: undefined,
      lastReport: Date.now(),
      stopped: false,
    };
    reportEvery(entry, 0);
    return entry;
  };

  const stop = async (entry: Running): Promise<void> => {
    entry.stopped = true;
    clearTimeout(entry.timer);
    // The report under way ends within the interval (an unanswered count is not waited for).
    await entry.reporting;
    await entry.poller.stop();
    // Rows set aside since the last report: a shutdown must not take them with it.
    await writeDeadRowTally(options.db, entry.source.outboxId, entry.poller.deadRows).catch((error: unknown) =>
      logger.warn({ err: error, outbox: entry.name }, 'dead outbox rows could not be counted for the alerts'),
    );
    await entry.pool.end().catch(() => undefined);
  };

  /** Stops `entry` in the background: a poller whose database does not answer must not hold the refresh. */
  const stopLater = (entry: Running): void => {
    const stopped = stop(entry)
      .catch((error: unknown) => logger.warn({ err: error, outbox: entry.name }, 'outbox poller did not stop cleanly'))
      .finally(() => stopping.delete(stopped));
    stopping.add(stopped);
  };

  let closed = false;
  const refreshOnce = async (): Promise<void> => {
    const sources = (await listOutboxSources(options.db)).filter((source) => source.readMode === 'POLL');
    const wanted = new Map(sources.map((source) => [`${source.app}/${source.env}`, source]));
    for (const [key, entry] of running) {
      const source = wanted.get(key);
      // A new URL or table name keeps the outbox id when it reaches the same table (a rotated
      // password): the poller is still replaced, so it reads with the credentials now saved.
      if (source !== undefined && sameSource(source, entry.source)) continue;
      running.delete(key);
      stopLater(entry);
    }
    // Closed while the sources were read: close() stops what is running once this refresh ends, and
    // a poller started now would never be stopped.
    if (closed) return;
    for (const [key, source] of wanted) if (!running.has(key)) running.set(key, start(source));
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
  }, reportIntervalMs);
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
        await Promise.all([...entries.map(stop), ...stopping]);
      })();
      return closing;
    },
  };
}

/** Whether a running poller reads `source` as it is saved: same outbox, URL, table and tenant rule. */
function sameSource(source: OutboxSourceView, running: OutboxSourceView): boolean {
  return (
    source.outboxId === running.outboxId &&
    source.databaseUrl === running.databaseUrl &&
    source.table === running.table &&
    source.requireTenant === running.requireTenant
  );
}
