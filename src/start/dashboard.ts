/**
 * The cluster dashboard, in every role: this instance's reporter (every `DASHBOARD_TICK_SECONDS`,
 * its figures and live state to the report store — Redis, or this process's memory when
 * embedded — and, one instance per tick, the cluster's dashboard routed on `system.dashboard`),
 * and what reads the store: the `dashboard` query and REST route, and the cluster alert rules.
 */
import type { ClusterFiguresProvider } from '../pipeline/alerts/rules/cluster-rules.ts';
import { createClusterFigures } from '../pipeline/dashboard/cluster-figures.ts';
import { clusterDashboard, type Dashboard } from '../pipeline/dashboard/cluster-dashboard.ts';
import { startDashboardReporter, type DashboardReporter } from '../pipeline/dashboard/dashboard-reporter.ts';
import { createMemoryReportStore, createRedisReportStore } from '../pipeline/dashboard/report-store.ts';
import type { Pipeline } from './pipeline.ts';
import type { Disposable, StartContext } from './subsystem.ts';
import { componentLogger } from '../logger.ts';

export interface ClusterDashboard extends Disposable {
  /** The cluster as the instances last reported it. */
  read(): Promise<Dashboard>;
  /** Connections and resyncs across the cluster, for the alert rules. */
  readonly figures: ClusterFiguresProvider;
  readonly reporter: DashboardReporter;
}

/**
 * Reports outlive three missed ticks, then the instance drops out of the list. Its figures count
 * in the cluster's for a tick and a half only (`liveReports`).
 */
const TICKS_KEPT = 3;

export function startDashboard({ config, clients, metrics, logger, now }: StartContext, pipeline: Pipeline): ClusterDashboard {
  const ttlMs = config.dashboardTickMs * TICKS_KEPT;
  const store = clients.redis
    ? createRedisReportStore({ redis: clients.redis.command, keyPrefix: config.redisKeyPrefix, ttlMs, now, logger })
    : createMemoryReportStore({ ttlMs, now });
  const dashboardLogger = componentLogger(logger, 'dashboard');
  const reporter = startDashboardReporter({
    role: config.role,
    figures: pipeline.analytics.figures,
    async live() {
      const slow = await metrics.slowConsumers.get();
      return { ...metrics.live(), slowConsumerCloses: slow.values[0]?.value ?? 0 };
    },
    store,
    router: pipeline.router,
    operatorScope: config.operatorScope,
    tickMs: config.dashboardTickMs,
    resyncWindowMs: config.alerts.windowMs,
    now,
    logger: dashboardLogger,
  });
  return {
    read: async () => clusterDashboard(await store.all(), now(), config.dashboardTickMs),
    figures: createClusterFigures({ store, now, tickMs: config.dashboardTickMs, logger: dashboardLogger }),
    reporter,
    dispose: () => reporter.close(),
  };
}
