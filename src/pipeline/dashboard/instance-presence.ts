/**
 * Which instances are there: one that reported within three ticks is present; one silent for
 * longer is gone — killed, frozen or cut off — and stays listed as gone, with its last report time,
 * for `GONE_KEPT_MS`, so that the dashboard shows a process that vanished instead of dropping it
 * without a word. One that stops cleanly leaves the list at once; a workers one leaves its last
 * report behind marked stopped (`stoppedAt`), present nowhere, for the warning to say since when
 * no workers process has reported (`dashboard-reporter.ts`). The workers' jobs (outbox routing,
 * webhook delivery, alert evaluation) run in the `workers` and `all` roles only: with no such
 * instance present nothing does them, and nothing that runs them can say so — the cluster view
 * warns, and every process's `/metrics` counts the instances by role. Pure.
 */
import type { InstanceReport } from './instance-report.ts';

/** Ticks an instance may miss before it is gone (its report was dropped after as many before). */
export const PRESENT_TICKS = 3;

/** How long a gone instance stays listed, in ms (then its report expires). */
export const GONE_KEPT_MS = 10 * 60_000;

/** The roles that run the workers' jobs. */
const WORKERS_ROLES: readonly string[] = ['workers', 'all'];

/**
 * Whether `role` runs the workers' jobs — and so measures the webhook and outbox backlogs, which
 * only its webhook delivery and outbox pollers count (`src/workers/`).
 */
export function runsWorkersJobs(role: string): boolean {
  return WORKERS_ROLES.includes(role);
}

/** Whether `report` was made within `PRESENT_TICKS` of `at` by an instance that has not stopped. */
export function isPresent(report: Pick<InstanceReport, 'at' | 'stoppedAt'>, at: number, tickMs: number): boolean {
  return report.stoppedAt === undefined && at - report.at <= tickMs * PRESENT_TICKS;
}

export function presentReports<R extends Pick<InstanceReport, 'at' | 'stoppedAt'>>(reports: readonly R[], at: number, tickMs: number): R[] {
  return reports.filter((report) => isPresent(report, at, tickMs));
}

/** How many instances of each role are present. */
export function instancesByRole(reports: readonly Pick<InstanceReport, 'at' | 'role' | 'stoppedAt'>[], at: number, tickMs: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const report of presentReports(reports, at, tickMs)) counts[report.role] = (counts[report.role] ?? 0) + 1;
  return counts;
}

export interface PresenceOptions {
  /**
   * The role of the process putting the view together: one that runs the workers' jobs is there
   * (it is answering), even before its own first report. @default none
   */
  readonly readerRole?: string;
}

/**
 * What the operator must be told about the cluster's make-up: that no instance runs the workers'
 * jobs, since when (the latest report of one that is gone or stopped cleanly), and what stopped with
 * them. Without any such report — none within the store's TTL, `GONE_KEPT_MS` and three ticks — no
 * time is known, only that none reported within it.
 */
export function clusterWarnings(reports: readonly Pick<InstanceReport, 'at' | 'role' | 'stoppedAt'>[], at: number, tickMs: number, options: PresenceOptions = {}): string[] {
  if (options.readerRole !== undefined && runsWorkersJobs(options.readerRole)) return [];
  const workers = reports.filter((report) => runsWorkersJobs(report.role));
  if (workers.some((report) => isPresent(report, at, tickMs))) return [];
  const last = workers.reduce<number | undefined>((latest, report) => Math.max(latest ?? report.at, report.at), undefined);
  const since = last === undefined ? `in the last ${GONE_KEPT_MS / 60_000} minutes` : `since ${new Date(last).toISOString()}`;
  return [`no workers process has reported ${since}: outbox routing, webhook delivery and alerts are stopped`];
}
