/**
 * The cluster figures the alert rules judge (`alerts/rules/cluster-rules.ts`), from the instances'
 * reports: open sockets now — of the live reports only (`liveReports`), so a crashed instance's are
 * not counted again beside its replacement's — and the resyncs over the window — each instance's
 * own count over it (`windowed-count.ts`), summed — unknown (null) while any instance does not
 * count them over that window, `ANALYTICS_ENABLED=false` included. Nothing is kept between readings, so the figures
 * are the same whichever process reads them, however long ago it last did. An instance that
 * stopped drops out with its counts once it is gone (three ticks, `instance-presence.ts`; the store
 * keeps its report longer, for the dashboard to show it gone).
 */
import type { Logger } from '../../logger.ts';
import type { ClusterFigures, ClusterFiguresProvider } from '../alerts/rules/cluster-rules.ts';
import { liveReports } from './cluster-dashboard.ts';
import { presentReports } from './instance-presence.ts';
import type { ReportStore } from './report-store.ts';

export interface ClusterFiguresOptions {
  /** Where the instances' reports are. */
  readonly store: ReportStore;
  /** The time, in ms since the epoch. */
  readonly now: () => number;
  /** How often instances report (DASHBOARD_TICK_SECONDS), in ms. */
  readonly tickMs: number;
  readonly logger: Logger;
}

export function createClusterFigures(options: ClusterFiguresOptions): ClusterFiguresProvider {
  let uncounted = false;
  return {
    async read(windowMs): Promise<ClusterFigures | undefined> {
      const reports = presentReports(await options.store.all(), options.now(), options.tickMs);
      if (reports.length === 0) return undefined;
      const live = liveReports(reports, options.now(), options.tickMs);
      // A report of an earlier version has no count over a window, one of an instance with
      // analytics off counts nothing (its 0 is no figure), and one of an instance with another
      // ALERTS_WINDOW_SECONDS (a deploy under way, or set on some roles only) counts over another:
      // not comparable. Said once, as the storm alert reads unknown until it changes.
      const others = reports.filter((report) => report.countsEnabled === false || report.resyncWindow?.windowMs !== windowMs);
      if (others.length > 0 && !uncounted) {
        options.logger.warn(
          {
            instances: others.map((report) => ({ instance: report.instance, countsEnabled: report.countsEnabled, windowMs: report.resyncWindow?.windowMs ?? null })),
            windowMs,
          },
          'instances count their resyncs over another window (ALERTS_WINDOW_SECONDS) or not at all: the resync storm alert reads unknown',
        );
      } else if (others.length === 0 && uncounted) {
        options.logger.info({ windowMs }, 'every instance counts its resyncs over the alerts window again');
      }
      uncounted = others.length > 0;
      return {
        connections: live.reduce((sum, report) => sum + report.connections, 0),
        resyncs: others.length === 0 ? reports.reduce((sum, report) => sum + (report.resyncWindow?.resyncs ?? 0), 0) : null,
      };
    },
  };
}
