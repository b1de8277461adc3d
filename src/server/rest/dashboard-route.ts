/**
 * `GET /api/metrics/dashboard` (the seed's Admin UI Dashboard endpoint) — the `dashboard` query as
 * JSON: the fields of the GraphQL type (`schema/types/dashboard.ts`) under the same names, times in
 * ms since the epoch. Built field by field rather than passing the internal view through: that one
 * names an instance's report time `at` (GraphQL: `reportedAt`), and its CDC entries are the readers'
 * whole status (slot, state, last error…), of which the GraphQL type shows three figures.
 */
import type { Dashboard, DashboardFigures, InstanceDashboard } from '../../pipeline/dashboard/cluster-dashboard.ts';
import { dashboard } from '../../resolvers/dashboard.ts';
import type { RestRoute } from './rest-route.ts';

export const dashboardRoute: RestRoute = async (context) => dashboardJson(await dashboard(context));

function dashboardJson(view: Dashboard) {
  return { at: view.at, cluster: figuresJson(view.cluster), instances: view.instances.map(instanceJson), warnings: [...view.warnings] };
}

function instanceJson(instance: InstanceDashboard) {
  return {
    instance: instance.instance,
    role: instance.role,
    startedAt: instance.startedAt,
    reportedAt: instance.at,
    gone: instance.gone,
    figures: figuresJson(instance.figures),
  };
}

function figuresJson(figures: DashboardFigures) {
  const { webhooks } = figures;
  return {
    connections: figures.connections,
    subscriptions: figures.subscriptions,
    eventsPerSecond: figures.eventsPerSecond,
    eventsPerSecondBySource: figures.eventsPerSecondBySource.map(({ source, perSecond }) => ({ source, perSecond })),
    deliveriesPerSecond: figures.deliveriesPerSecond,
    bytesPerSecond: figures.bytesPerSecond,
    latencyP50Ms: figures.latencyP50Ms,
    latencyP99Ms: figures.latencyP99Ms,
    webhooks: {
      deliveredPerSecond: webhooks.deliveredPerSecond,
      failedPerSecond: webhooks.failedPerSecond,
      failureRate: webhooks.failureRate,
      pending: webhooks.pending,
      oldestPendingSeconds: webhooks.oldestPendingSeconds,
    },
    cdc: figures.cdc.map(({ source, lagBytes, retainedWalBytes, walSafety }) => ({ source, lagBytes, retainedWalBytes, safeWalBytes: walSafety?.safeWalBytes ?? null })),
    // Null (as in GraphQL) when no process that measures the outboxes has reported.
    outboxes: figures.outboxes?.map(({ outbox, pending, oldestPendingSeconds }) => ({ outbox, pending, oldestPendingSeconds })) ?? null,
    resyncsPerSecond: figures.resyncsPerSecond,
    slowConsumerClosesPerSecond: figures.slowConsumerClosesPerSecond,
  };
}
