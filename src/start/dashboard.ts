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
import { GONE_KEPT_MS, instancesByRole, PRESENT_TICKS } from '../pipeline/dashboard/instance-presence.ts';
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
 * An instance that missed three ticks is gone; its report is kept `GONE_KEPT_MS` longer, for the
 * list to show it gone (`instance-presence.ts`), then it drops out. Its figures count in the
 * cluster's for a tick and a half only (`liveReports`).
 */
export function startDashboard({ config, clients, metrics, logger, now }: StartContext, pipeline: Pipeline): ClusterDashboard {
  const ttlMs = config.dashboardTickMs * PRESENT_TICKS + GONE_KEPT_MS;
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
  // Every role exports how many instances of each role report: the servers' say when no workers process is left.
  const stopSampling = metrics.sampleCluster(async () => instancesByRole(await store.all(), now(), config.dashboardTickMs));
  return {
    read: async () => clusterDashboard(await store.all(), now(), config.dashboardTickMs, { readerRole: config.role }),
    figures: createClusterFigures({ store, now, tickMs: config.dashboardTickMs, logger: dashboardLogger }),
    reporter,
    dispose: async () => {
      stopSampling();
      await reporter.close();
    },
  };
}
