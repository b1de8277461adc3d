import type { RealtimeEvent } from '../../pipeline/events/envelope.ts';
import * as resolvers from '../../resolvers/analytics.ts';
import type { HotTopicView, TopicStatsBucket as Bucket } from '../../resolvers/analytics.ts';
import { builder } from '../builder.ts';

const StatsGranularity = builder.enumType('StatsGranularity', {
  values: {
    MINUTE: { value: 'minute', description: 'One-minute windows (kept ANALYTICS_RETENTION_DAYS, default 14).' },
    HOUR: { value: 'hour', description: 'Hours, rolled up from the minutes.' },
    DAY: { value: 'day', description: 'Days (UTC), rolled up from the hours.' },
  } as const,
});

const HotTopicsWindow = builder.enumType('HotTopicsWindow', {
  values: {
    ONE_MINUTE: { value: 'oneMinute' },
    FIFTEEN_MINUTES: { value: 'fifteenMinutes' },
    ONE_HOUR: { value: 'oneHour' },
  } as const,
});

const HotTopicsOrder = builder.enumType('HotTopicsOrder', {
  values: {
    EVENTS: { value: 'events', description: 'Events routed.' },
    FANOUT: { value: 'fanout', description: 'Deliveries to subscribers.' },
    LATENCY_P99: { value: 'latencyP99', description: 'Publish → socket p99 (topics with live deliveries only).' },
    BYTES: { value: 'bytes', description: 'Bytes delivered.' },
  } as const,
});

const EventSourceCount = builder.objectRef<Bucket['bySource'][number]>('EventSourceCount').implement({
  fields: (t) => ({
    source: t.exposeString('source', { description: 'database, sync, socket or system.' }),
    count: t.exposeFloat('count'),
  }),
});

const TopicCounts = builder.interfaceRef<Omit<Bucket, 'window'>>('TopicCounts').implement({
  description: "A topic's counts over a span of time, cluster-wide (every instance's counts summed).",
  fields: (t) => ({
    topic: t.exposeString('topic'),
    startTime: t.expose('startTime', { type: 'DateTime' }),
    endTime: t.expose('endTime', { type: 'DateTime' }),
    count: t.exposeFloat('count', { description: 'Events routed, every source (a whole number; Float because a day may exceed 32 bits).' }),
    bySource: t.field({ type: [EventSourceCount], resolve: (bucket) => bucket.bySource }),
    deliveries: t.exposeFloat('deliveries', { description: 'Frames written to subscribers (one event to N subscribers counts N).' }),
    bytes: t.exposeFloat('bytes', { description: 'Payload bytes of those frames.' }),
    webhookDeliveries: t.exposeFloat('webhookDeliveries', { description: 'Webhook attempts delivered (2xx).' }),
    webhookFailures: t.exposeFloat('webhookFailures', { description: 'Webhook attempts not delivered (failed, gone, throttled, refused, dead).' }),
    resyncs: t.exposeFloat('resyncs', { description: 'Subscribers ended with RESYNC_REQUIRED.' }),
    latencyP50Ms: t.exposeFloat('latencyP50Ms', {
      nullable: true,
      description: 'Publish → socket latency, p50, in ms: the upper bound of its histogram bucket (at most ~25 % above). Null without live deliveries.',
    }),
    latencyP99Ms: t.exposeFloat('latencyP99Ms', { nullable: true, description: 'As latencyP50Ms, p99.' }),
  }),
});

// Also delivered by the dispatcher (`statsUpdates`): fields follow the rule of `pipeline/dispatch/subscription-contract.ts`.
const TopicStatsBucket = builder.objectRef<Bucket>('TopicStatsBucket').implement({
  description: "One topic's counts over one window (the seed's `{ topic, window, count, startTime, endTime }`).",
  interfaces: [TopicCounts],
  fields: (t) => ({
    window: t.exposeString('window', { description: '1m, 1h or 1d.' }),
  }),
});

const HotTopic = builder.objectRef<HotTopicView>('HotTopic').implement({
  description: 'A topic over the hot-topics window: from the start of its first minute to now.',
  interfaces: [TopicCounts],
  fields: (t) => ({
    tenant: t.exposeString('tenant', { nullable: true, description: 'Null: application-wide events.' }),
    eventsPerSecond: t.exposeFloat('eventsPerSecond'),
    deliveriesPerSecond: t.exposeFloat('deliveriesPerSecond'),
    bytesPerSecond: t.exposeFloat('bytesPerSecond'),
  }),
});

builder.queryFields((t) => ({
  topicStats: t.field({
    type: [TopicStatsBucket],
    description:
      "Admin: a topic's windows starting in [from, to), oldest first, in the caller's app/env (tenants summed unless `tenant` is given; a caller with a tenant sees its own). Windows without activity are left out. At most 1,440 windows.",
    args: {
      topic: t.arg.string({ required: true }),
      granularity: t.arg({ type: StatsGranularity, required: true }),
      from: t.arg({ type: 'DateTime', required: true }),
      to: t.arg({ type: 'DateTime', required: true }),
      tenant: t.arg.string(),
    },
    resolve: (_root, args, context) => resolvers.topicStats(context, args),
  }),
  hotTopics: t.field({
    type: [HotTopic],
    description: "Admin: the environment's top topics over the window, cluster-wide (minutes not flushed yet included). Also GET /api/metrics/hot-topics.",
    args: {
      window: t.arg({ type: HotTopicsWindow, required: true }),
      by: t.arg({ type: HotTopicsOrder, required: true }),
      limit: t.arg.int({ defaultValue: 10, description: 'From 1 to 100.' }),
      tenant: t.arg.string(),
    },
    resolve: (_root, args, context) => resolvers.hotTopics(context, args),
  }),
}));

builder.subscriptionField('statsUpdates', (t) =>
  t.field({
    type: TopicStatsBucket,
    description:
      "Admin: each minute of a topic as the workers flush it (every ANALYTICS_FLUSH_SECONDS, once the minute is over). A caller whose token names a tenant passes it as `tenant`.",
    args: { topic: t.arg.string({ required: true }), tenant: t.arg.string() },
    subscribe: (_root, args, context) => resolvers.subscribeStatsUpdates(context, args),
    resolve: (event: RealtimeEvent, args) => resolvers.statsUpdateOf(event, args),
  }),
);
