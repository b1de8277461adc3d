/**
 * The cluster figures the alert rules judge (`alerts/rules/cluster-rules.ts`), from the instances'
 * reports: open sockets now (summed), and resyncs within a window — the growth of each instance's
 * cumulative count since the window began, as this process saw it in the reports it read (an
 * instance started within the window counts from zero; one that stopped drops out with its counts).
 */
import type { ClusterFigures, ClusterFiguresProvider } from '../alerts/rules/cluster-rules.ts';
import type { ReportStore } from './report-store.ts';

interface Seen {
  readonly at: number;
  readonly resyncs: number;
}

/** Past counts kept per instance at most (one per report: with a 5 s tick, hours of history). */
const MAX_HISTORY = 4_096;

export function createClusterFigures(options: { readonly store: ReportStore; readonly now: () => number }): ClusterFiguresProvider {
  const history = new Map<string, Seen[]>();
  return {
    async read(windowMs): Promise<ClusterFigures | undefined> {
      const reports = await options.store.all();
      if (reports.length === 0) return undefined;
      const windowStart = options.now() - windowMs;
      let resyncs = 0;
      for (const report of reports) {
        const seen = history.get(report.instance) ?? [];
        if (seen.at(-1)?.at !== report.at) seen.push({ at: report.at, resyncs: report.totals.resyncs });
        // Keep the newest count from before the window (the baseline) and everything after it.
        while (seen.length > 1 && (seen[1]!.at <= windowStart || seen.length > MAX_HISTORY)) seen.shift();
        history.set(report.instance, seen);
        // Seen first within the window (this process just took over): counted from then on.
        const baseline = report.startedAt >= windowStart ? 0 : seen[0]!.resyncs;
        resyncs += Math.max(0, report.totals.resyncs - baseline);
      }
      for (const instance of history.keys()) if (!reports.some((report) => report.instance === instance)) history.delete(instance);
      return { connections: reports.reduce((sum, report) => sum + report.connections, 0), resyncs };
    },
  };
}
