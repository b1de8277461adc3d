import type { RealtimeEvent } from '../../pipeline/events/envelope.ts';
import * as resolvers from '../../resolvers/analytics.ts';
import type { HotTopicView, TopicStatsBucket as Bucket } from '../../resolvers/analytics.ts';
import { builder } from '../builder.ts';

const statsTopic =
  "The topic as counted: a topic's name, `sync.{service}.doc.*` for a service's documents (one document's topic answers the same), `~channel:<name>` for a channel's broadcasts, or `~other` for what a minute counted past its bound of topics.";
const statsTenant = 'Only this tenant\'s counts; absent or "": every tenant\'s. A token limited to one tenant gets its own (naming another is FORBIDDEN).';

const StatsGranularity = builder.enumType('StatsGranularity', {
  description: 'The size of the windows `topicStats` answers.',
  values: {
    MINUTE: { value: 'minute', description: 'One-minute windows (kept ANALYTICS_RETENTION_DAYS, default 14).' },
    HOUR: { value: 'hour', description: 'Hours, rolled up from the minutes.' },
    DAY: { value: 'day', description: 'Days (UTC), rolled up from the hours.' },
  } as const,
});

const HotTopicsWindow = builder.enumType('HotTopicsWindow', {
  description: "How far back `hotTopics` looks: from the start of the window's first minute to now.",
  values: {
    ONE_MINUTE: { value: 'oneMinute', description: 'The last minute.' },
    FIFTEEN_MINUTES: { value: 'fifteenMinutes', description: 'The last 15 minutes.' },
    ONE_HOUR: { value: 'oneHour', description: 'The last hour.' },
  } as const,
});

const HotTopicsOrder = builder.enumType('HotTopicsOrder', {
  description: 'What `hotTopics` ranks topics by, highest first.',
  values: {
    EVENTS: { value: 'events', description: 'Events routed.' },
    FANOUT: { value: 'fanout', description: 'Deliveries to subscribers.' },
    LATENCY_P99: { value: 'latencyP99', description: 'Publish → socket p99 (topics with live deliveries only).' },
    BYTES: { value: 'bytes', description: 'Bytes delivered.' },
  } as const,
});

const EventSourceCount = builder.objectRef<Bucket['bySource'][number]>('EventSourceCount').implement({
  description: 'Events routed from one source.',
  fields: (t) => ({
    source: t.exposeString('source', { description: 'database, sync, socket or system.' }),
    count: t.exposeFloat('count', { description: 'How many (a whole number; Float because a day may exceed 32 bits).' }),
  }),
});

const TopicCounts = builder.interfaceRef<Omit<Bucket, 'window'>>('TopicCounts').implement({
  description: "A topic's counts over a span of time, cluster-wide (every instance's counts summed).",
  fields: (t) => ({
    topic: t.exposeString('topic', { description: statsTopic }),
    startTime: t.expose('startTime', { type: 'DateTime', description: 'Where the span starts.' }),
    endTime: t.expose('endTime', { type: 'DateTime', description: "Where the span ends (excluded): the window's end, or now for a hot topic." }),
    count: t.exposeFloat('count', { description: 'Events routed, every source (a whole number; Float because a day may exceed 32 bits).' }),
    bySource: t.field({ type: [EventSourceCount], description: '`count` by source: database, sync, socket and system.', resolve: (bucket) => bucket.bySource }),
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
    eventsPerSecond: t.exposeFloat('eventsPerSecond', { description: '`count` per second from `startTime` to `endTime`.' }),
    deliveriesPerSecond: t.exposeFloat('deliveriesPerSecond', { description: '`deliveries` per second from `startTime` to `endTime`.' }),
    bytesPerSecond: t.exposeFloat('bytesPerSecond', { description: '`bytes` per second from `startTime` to `endTime`.' }),
  }),
});

builder.queryFields((t) => ({
  topicStats: t.field({
    type: [TopicStatsBucket],
    description:
      "Admin: a topic's windows starting in [from, to), oldest first, in the caller's app/env (tenants summed unless `tenant` is given; a caller with a tenant sees its own). Windows without activity are left out. At most 1,440 windows.",
    args: {
      topic: t.arg.string({ required: true, description: statsTopic }),
      granularity: t.arg({ type: StatsGranularity, required: true, description: 'The size of the windows.' }),
      from: t.arg({ type: 'DateTime', required: true, description: 'Windows starting at or after this time.' }),
      to: t.arg({ type: 'DateTime', required: true, description: 'Windows starting before this time: later than `from`, at most 1,440 windows after it.' }),
      tenant: t.arg.string({ description: statsTenant }),
    },
    resolve: (_root, args, context) => resolvers.topicStats(context, args),
  }),
  hotTopics: t.field({
    type: [HotTopic],
    description: "Admin: the environment's top topics over the window, cluster-wide (minutes not flushed yet included). Also GET /api/metrics/hot-topics.",
    args: {
      window: t.arg({ type: HotTopicsWindow, required: true, description: 'How far back to look.' }),
      by: t.arg({ type: HotTopicsOrder, required: true, description: 'What to rank by, highest first.' }),
      limit: t.arg.int({ defaultValue: 10, description: 'From 1 to 100.' }),
      tenant: t.arg.string({ description: statsTenant }),
    },
    resolve: (_root, args, context) => resolvers.hotTopics(context, args),
  }),
}));

builder.subscriptionField('statsUpdates', (t) =>
  t.field({
    type: TopicStatsBucket,
    description:
      "Admin: each minute of a topic as the workers flush it (every ANALYTICS_FLUSH_SECONDS, once the minute is over). A caller whose token names a tenant passes it as `tenant`.",
    args: {
      topic: t.arg.string({ required: true, description: statsTopic }),
      tenant: t.arg.string({
        description: 'Only this tenant\'s counts; absent or "": every tenant\'s, summed. A token limited to one tenant must name its own (FORBIDDEN otherwise).',
      }),
    },
    subscribe: (_root, args, context) => resolvers.subscribeStatsUpdates(context, args),
    resolve: (event: RealtimeEvent, args) => resolvers.statsUpdateOf(event, args),
  }),
);
