/**
 * Every instance, every `tickMs` (the seed's MetricsUpdater: 5 s), reports to the cluster: its
 * figures since the last report and its live state go to the report store. One instance per tick
 * (the first to claim it) then puts the cluster's dashboard together and routes it on
 * `system.dashboard` in the operators' environment, for `dashboardUpdates`.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../logger.ts';
import type { InstanceFigures } from '../analytics/instance-figures.ts';
import { dashboardEvent } from '../events/dashboard-event.ts';
import type { EventRouter } from '../router/event-router.ts';
import { clusterDashboard } from './cluster-dashboard.ts';
import { runsWorkersJobs } from './instance-presence.ts';
import { buildReport, type InstanceLiveState, type InstanceReport } from './instance-report.ts';
import type { ReportStore } from './report-store.ts';
import { createWindowedCount } from './windowed-count.ts';

export interface DashboardReporterOptions {
  readonly role: string;
  readonly figures: InstanceFigures;
  /** This instance's live state now. */
  readonly live: () => Promise<InstanceLiveState>;
  readonly store: ReportStore;
  readonly router: Pick<EventRouter, 'route'>;
  readonly operatorScope: { readonly app: string; readonly env: string };
  readonly tickMs: number;
  /** The alerts' window (ALERTS_WINDOW_SECONDS), in ms: each report says the resyncs over it. */
  readonly resyncWindowMs: number;
  readonly now: () => number;
  readonly logger: Logger;
}

export interface DashboardReporter {
  readonly instance: string;
  /** Reports now (and publishes when this instance claims the tick); the timer does it every tick. */
  report(): Promise<void>;
  /**
   * Stops reporting and takes this instance's report out of the cluster view; a workers one leaves
   * its last report behind, marked stopped, for the warning to say since when none has reported.
   */
  close(): Promise<void>;
}

export function startDashboardReporter(options: DashboardReporterOptions): DashboardReporter {
  const { store, logger } = options;
  const instance = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const startedAt = options.now();
  const resyncs = createWindowedCount(options.resyncWindowMs);
  let previous: InstanceReport | undefined;
  let failing = false;

  const report = async () => {
    const figures = options.figures.snapshot();
    const made = buildReport({
      instance,
      role: options.role,
      startedAt,
      figures,
      live: await options.live(),
      previous: previous && { totals: previous.totals, at: previous.at },
      // With analytics off nothing counts the resyncs: claiming 0 over the window would read as
      // "no storm" to the alert, where it cannot tell (`countsEnabled` false says why).
      resyncWindow: figures.enabled ? { windowMs: options.resyncWindowMs, resyncs: resyncs.add(figures.at, figures.resyncs) } : undefined,
    });
    await store.put(made);
    previous = made;
    if (await store.claimTick(Math.floor(made.at / options.tickMs))) {
      const dashboard = clusterDashboard(await store.all(), options.now(), options.tickMs, { readerRole: options.role });
      await options.router.route(dashboardEvent(options.operatorScope, dashboard));
    }
  };

  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    // A slow report (Redis away) is not overlapped: that tick is skipped.
    if (running) return;
    running = report()
      .then(() => {
        if (failing) logger.info('dashboard reports resumed');
        failing = false;
      })
      .catch((error: unknown) => {
        // Once per outage, not every tick.
        if (!failing) logger.warn({ err: error }, 'dashboard report failed; retrying every tick');
        failing = true;
      })
      .finally(() => (running = undefined));
  }, options.tickMs);
  timer.unref();

  return {
    instance,
    report,
    async close() {
      clearInterval(timer);
      await running;
      // A clean stop takes the report away, and with it the last time a workers process reported:
      // with every one stopped, the warning would have no time to quote (`instance-presence.ts`).
      const last = previous && runsWorkersJobs(options.role) ? { ...previous, stoppedAt: options.now() } : undefined;
      await store.remove(instance, last).catch(() => undefined);
    },
  };
}
