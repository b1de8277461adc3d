import * as resolvers from '../../resolvers/dashboard.ts';
import type { Dashboard as DashboardView, DashboardFigures as Figures, InstanceDashboard, SourceRate as Rate } from '../../pipeline/dashboard/cluster-dashboard.ts';
import { builder } from '../builder.ts';

// Dashboard is also delivered by the dispatcher (`dashboardUpdates`), so its fields follow the
// rule of `pipeline/dispatch/subscription-contract.ts`: synchronous, no context.

const epoch = (ms: number) => new Date(ms);

const SourceRate = builder.objectRef<Rate>('SourceRate').implement({
  description: 'Events routed from one source, per second.',
  fields: (t) => ({
    source: t.exposeString('source', { description: '`database`, `sync`, `socket` or `system`.' }),
    perSecond: t.exposeFloat('perSecond', { description: 'Events per second over the last tick.' }),
  }),
});

const DashboardWebhooks = builder.objectRef<Figures['webhooks']>('DashboardWebhooks').implement({
  description: 'Webhook deliveries: rates over the last tick, and the backlog now.',
  fields: (t) => ({
    deliveredPerSecond: t.exposeFloat('deliveredPerSecond', { description: 'Attempts that delivered (2xx), per second.' }),
    failedPerSecond: t.exposeFloat('failedPerSecond', { description: 'Attempts that did not deliver (failed, throttled, gone, refused, dead).' }),
    failureRate: t.exposeFloat('failureRate', { nullable: true, description: 'Failed ÷ attempts over the last tick, 0–1; null without attempts.' }),
    pending: t.exposeInt('pending', {
      nullable: true,
      description: 'Deliveries not finished yet, every endpoint; null when no process that measures it — a workers process, or role all — has reported (unknown, not 0).',
    }),
    oldestPendingSeconds: t.exposeFloat('oldestPendingSeconds', {
      nullable: true,
      description: 'Age of the oldest pending delivery, in s; null when none is pending, or when `pending` is null (not measured).',
    }),
  }),
});

const DashboardCdcSource = builder.objectRef<Figures['cdc'][number]>('DashboardCdcSource').implement({
  description: 'One CDC source database, as the instance leading its reader reports it.',
  fields: (t) => ({
    source: t.exposeString('source', { description: 'The source database, as `/metrics` names it (a hash of its URL).' }),
    lagBytes: t.exposeFloat('lagBytes', { nullable: true, description: "WAL written after the reader's confirmed position, in bytes; null when not measured." }),
    retainedWalBytes: t.exposeFloat('retainedWalBytes', { nullable: true, description: 'WAL its slot keeps on the source server, in bytes; null when not measured.' }),
    safeWalBytes: t.float({
      nullable: true,
      description: "WAL that can still be written before its slot retains more than the source's `max_slot_wal_keep_size` or `wal_keep_size`, the larger (`safe_wal_size`; at or under 0: the next checkpoint invalidates it), in bytes; null when not measured or without that limit.",
      resolve: (cdc) => cdc.walSafety?.safeWalBytes ?? null,
    }),
  }),
});

const DashboardOutbox = builder.objectRef<NonNullable<Figures['outboxes']>[number]>('DashboardOutbox').implement({
  description: "One environment's outbox backlog.",
  fields: (t) => ({
    outbox: t.exposeString('outbox', { description: '`app/env`.' }),
    pending: t.exposeInt('pending', { description: 'Rows not routed yet.' }),
    oldestPendingSeconds: t.exposeFloat('oldestPendingSeconds', { nullable: true, description: 'Age of the oldest pending row, in s; null when none is pending.' }),
  }),
});

const DashboardFigures = builder.objectRef<Figures>('DashboardFigures').implement({
  description: 'What flows through the cluster or one instance: live state now, rates over the last tick (`DASHBOARD_TICK_SECONDS`).',
  fields: (t) => ({
    connections: t.exposeInt('connections', { description: 'Open graphql-ws sockets.' }),
    subscriptions: t.exposeInt('subscriptions', { description: 'Active subscriptions, channel members included.' }),
    eventsPerSecond: t.exposeFloat('eventsPerSecond', { description: 'Events routed, every source.' }),
    eventsPerSecondBySource: t.field({ type: [SourceRate], description: '`eventsPerSecond` by source.', resolve: (figures) => [...figures.eventsPerSecondBySource] }),
    deliveriesPerSecond: t.exposeFloat('deliveriesPerSecond', { description: 'Frames written to subscribers (one event to N subscribers counts N).' }),
    bytesPerSecond: t.exposeFloat('bytesPerSecond', { description: 'Payload bytes of the frames written to subscribers, per second.' }),
    latencyP50Ms: t.exposeFloat('latencyP50Ms', { nullable: true, description: 'Publish → socket over the last tick (a bucket bound: ≤ 25 % above the true value); null without deliveries.' }),
    latencyP99Ms: t.exposeFloat('latencyP99Ms', { nullable: true, description: 'As `latencyP50Ms`, p99.' }),
    webhooks: t.field({ type: DashboardWebhooks, description: 'Webhook deliveries.', resolve: (figures) => figures.webhooks }),
    cdc: t.field({ type: [DashboardCdcSource], description: 'Each CDC source database, as its leader reports it.', resolve: (figures) => [...figures.cdc] }),
    outboxes: t.field({
      type: [DashboardOutbox],
      nullable: true,
      description: "Each outbox's backlog; null when no process that measures them — a workers process, or role all — has reported (unknown, not \"no outbox\").",
      resolve: (figures) => (figures.outboxes === null ? null : [...figures.outboxes]),
    }),
    resyncsPerSecond: t.exposeFloat('resyncsPerSecond', { description: 'Subscribers ended with RESYNC_REQUIRED.' }),
    slowConsumerClosesPerSecond: t.exposeFloat('slowConsumerClosesPerSecond', { description: 'Sockets closed for falling behind.' }),
  }),
});

const DashboardInstance = builder.objectRef<InstanceDashboard>('DashboardInstance').implement({
  description: 'One process of the cluster, as it last reported.',
  fields: (t) => ({
    instance: t.exposeString('instance', { description: 'host:pid:random — one per process.' }),
    role: t.exposeString('role', { description: '`all`, `server` or `workers`.' }),
    startedAt: t.field({ type: 'DateTime', description: 'When the process started.', resolve: (instance) => epoch(instance.startedAt) }),
    reportedAt: t.field({ type: 'DateTime', description: 'Its last report.', resolve: (instance) => epoch(instance.at) }),
    gone: t.exposeBoolean('gone', {
      description: 'It has not reported for three ticks (killed, frozen or cut off; one that stops cleanly leaves the list at once): its figures are those of its last report. Listed so for 10 minutes.',
    }),
    figures: t.field({ type: DashboardFigures, description: 'Its own figures.', resolve: (instance) => instance.figures }),
  }),
});

const Dashboard = builder.objectRef<DashboardView>('Dashboard').implement({
  description: 'The cluster as its instances last reported it (each every tick; one silent for three ticks is listed as gone for 10 minutes, then drops out).',
  fields: (t) => ({
    at: t.field({ type: 'DateTime', description: 'When it was put together.', resolve: (view) => epoch(view.at) }),
    cluster: t.field({ type: DashboardFigures, description: 'Every instance together.', resolve: (view) => view.cluster }),
    instances: t.field({ type: [DashboardInstance], description: 'Most recently reported first.', resolve: (view) => [...view.instances] }),
    warnings: t.stringList({
      description: "What is wrong with the cluster's make-up, for the operator to act on: no instance running the workers' jobs (outbox routing, webhook delivery, alerts). Empty when nothing is.",
      resolve: (view) => [...(view.warnings ?? [])],
    }),
  }),
});

builder.queryField('dashboard', (t) =>
  t.field({
    type: Dashboard,
    description: "The cluster dashboard (admins of the operators' environment, `OPERATOR_SCOPE`): connections, traffic, latency, webhooks, CDC, outboxes, per instance and together.",
    resolve: (_root, _args, context) => resolvers.dashboard(context),
  }),
);

builder.subscriptionField('dashboardUpdates', (t) =>
  t.field({
    type: Dashboard,
    description: "The cluster dashboard every tick, for live screens (admins of the operators' environment).",
    subscribe: (_root, _args, context) => resolvers.subscribeDashboardUpdates(context),
    resolve: (event) => resolvers.dashboardOf(event),
  }),
);
