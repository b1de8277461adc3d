/**
 * Per-topic analytics for admins (role `admin`), in the caller's app/env: a topic's windows
 * (`topicStats`), its flushed minutes live (`statsUpdates`), and the hot topics (`hotTopics`, also
 * `GET /api/metrics/hot-topics`). A caller whose token names a tenant sees that tenant only.
 */
import { isAdmin, type Principal } from '../auth/principal.ts';
import { badUserInput, ErrorCode, TributaryError } from '../errors.ts';
import type { HotTopicsOrder } from '../pipeline/analytics/analytics-reader.ts';
import { histogramQuantile } from '../latency-histogram.ts';
import { statsTopicOf as storedTopicOf, type Granularity } from '../pipeline/analytics/stats-store.ts';
import { emptyCounts, mergeCounts, OVERFLOW_TOPIC, totalEvents, type TopicCounts } from '../pipeline/analytics/topic-counts.ts';
import { CHANNEL_TOPIC_PREFIX } from '../pipeline/channels/channel-message.ts';
import { ANALYTICS_SYSTEM_TOPIC, readTopicMinutes, type TopicMinute } from '../pipeline/events/analytics-event.ts';
import type { EventSource, RealtimeEvent } from '../pipeline/events/envelope.ts';
import { dispatchTicket, type DispatchTicket } from '../pipeline/dispatch/subscription-contract.ts';
import { assertName, MAX_TENANT_LENGTH } from '../pipeline/names.ts';
import { streamOf } from '../pipeline/stream.ts';
import type { ResolverContext } from './context.ts';
import { loggedRead } from './read-outage.ts';
import { isEnvironmentAdmin, requireAdmin } from './require-admin.ts';

export type StatsWindow = '1m' | '1h' | '1d';

/** One topic's counts over one window, as the API shows them (the seed's `{ topic, window, count, startTime, endTime }` and more). */
export interface TopicStatsBucket {
  readonly topic: string;
  readonly window: StatsWindow;
  readonly startTime: Date;
  readonly endTime: Date;
  /** Events routed (every source). */
  readonly count: number;
  readonly bySource: readonly { readonly source: EventSource; readonly count: number }[];
  readonly deliveries: number;
  readonly bytes: number;
  readonly webhookDeliveries: number;
  readonly webhookFailures: number;
  readonly resyncs: number;
  readonly latencyP50Ms: number | null;
  readonly latencyP99Ms: number | null;
}

export interface HotTopicView extends Omit<TopicStatsBucket, 'window'> {
  readonly tenant: string | null;
  readonly eventsPerSecond: number;
  readonly deliveriesPerSecond: number;
  readonly bytesPerSecond: number;
}

export type HotTopicsWindow = 'oneMinute' | 'fifteenMinutes' | 'oneHour';

const WINDOW_MS: Readonly<Record<HotTopicsWindow, number>> = { oneMinute: 60_000, fifteenMinutes: 900_000, oneHour: 3_600_000 };
const GRANULARITY_WINDOW: Readonly<Record<Granularity, StatsWindow>> = { minute: '1m', hour: '1h', day: '1d' };
const GRANULARITY_MS: Readonly<Record<Granularity, number>> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** Windows one `topicStats` answer may hold. */
const MAX_STATS_WINDOWS = 1_440;
/** Topics one `hotTopics` answer may hold. */
const MAX_HOT_TOPICS = 100;

export interface TopicStatsArgs {
  readonly topic: string;
  readonly granularity: Granularity;
  readonly from: Date;
  readonly to: Date;
  readonly tenant?: string | null;
}

export async function topicStats(context: ResolverContext, args: TopicStatsArgs): Promise<TopicStatsBucket[]> {
  requireAdmin(context.principal);
  const topic = statsTopicOf(args.topic);
  const tenant = tenantOf(context.principal, args.tenant);
  if (!(args.from.getTime() < args.to.getTime())) throw badUserInput('to', 'to must be later than from');
  if ((args.to.getTime() - args.from.getTime()) / GRANULARITY_MS[args.granularity] > MAX_STATS_WINDOWS) {
    throw badUserInput('from', `at most ${MAX_STATS_WINDOWS} windows per request: narrow from/to or use a coarser granularity`);
  }
  const windows = await loggedRead(context, 'topicStats', () =>
    context.services.analytics.topicStats({ scope: context.principal, tenant, topic, granularity: args.granularity, from: args.from, to: args.to }),
  );
  return windows.map((window) => bucketOf(topic, GRANULARITY_WINDOW[args.granularity], window.start, window.end, window.counts));
}

export interface HotTopicsArgs {
  readonly window: HotTopicsWindow;
  readonly by: HotTopicsOrder;
  readonly limit?: number | null;
  readonly tenant?: string | null;
}

export async function hotTopics(context: ResolverContext, args: HotTopicsArgs): Promise<HotTopicView[]> {
  requireAdmin(context.principal);
  const limit = args.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HOT_TOPICS) throw badUserInput('limit', `limit must be from 1 to ${MAX_HOT_TOPICS}`);
  const tenant = tenantOf(context.principal, args.tenant);
  // Redis or Postgres away: UNAVAILABLE (the minute store and the database say so), logged once an outage.
  const hot = await loggedRead(context, 'hotTopics', () => context.services.analytics.hotTopics({ scope: context.principal, tenant, windowMs: WINDOW_MS[args.window], by: args.by, limit }));
  return hot.map(({ topic, tenant, counts, start, end }) => {
    const seconds = Math.max(1, (end.getTime() - start.getTime()) / 1000);
    const { window: _window, ...bucket } = bucketOf(topic, '1m', start, end, counts);
    return {
      ...bucket,
      tenant,
      eventsPerSecond: bucket.count / seconds,
      deliveriesPerSecond: bucket.deliveries / seconds,
      bytesPerSecond: bucket.bytes / seconds,
    };
  });
}

export interface StatsUpdatesArgs {
  readonly topic: string;
  readonly tenant?: string | null;
}

/**
 * Each flushed minute of a topic, live. Rendered once per cohort (the subscription contract), so
 * the tenant is an argument, never taken from the context: a caller whose token names a tenant
 * must pass it.
 *
 * Subscribers whose documents and variables are equal share one cohort — its filter is the first
 * member's — and the minutes' stream is the environment's (no tenant): so the filter and the
 * render depend on the arguments alone (`statsTenant`), and the token only decides whether the
 * caller may ask for them. An empty tenant is no tenant, as in `topicStats` and `hotTopics`: a
 * tenant-limited token must name its own, never `""`.
 */
export function subscribeStatsUpdates(context: ResolverContext, args: StatsUpdatesArgs): DispatchTicket {
  requireAdmin(context.principal);
  const topic = statsTopicOf(args.topic);
  const tenant = statsTenant(args);
  const limitedTo = tenantLimitOf(context.principal);
  if (limitedTo !== undefined && tenant === undefined) {
    throw new TributaryError(ErrorCode.FORBIDDEN, `This token is limited to one tenant: pass tenant: "${limitedTo}"`, { details: { field: 'tenant' } });
  }
  // Refuses another tenant than the token's; the filter uses the argument, equal to it by then.
  tenantOf(context.principal, tenant);
  return dispatchTicket({
    stream: streamOf({ app: context.principal.app, env: context.principal.env, tenant: undefined }, ANALYTICS_SYSTEM_TOPIC),
    filter: (event) => event.source === 'system' && readTopicMinutes(event).topics.some((row) => matches(row, topic, tenant)),
    after: undefined,
    denied: false,
    // What `requireAdmin` checked: a refreshed token without the role ends it (its tenant cannot change).
    readableBy: isAdmin,
  });
}

/** The bucket a flushed-minute event holds for the subscription's topic (and tenant). */
export function statsUpdateOf(event: RealtimeEvent, args: StatsUpdatesArgs): TopicStatsBucket {
  const { startTime, topics } = readTopicMinutes(event);
  const tenant = statsTenant(args);
  // As stored: a document's topic is its service's row (`sync.{service}.doc.*`).
  const topic = statsTopicOf(args.topic);
  const counts = emptyCounts();
  for (const row of topics) if (matches(row, topic, tenant)) mergeCounts(counts, countsOfMinute(row));
  const start = new Date(startTime);
  return bucketOf(topic, '1m', start, new Date(start.getTime() + 60_000), counts);
}

/**
 * A topic whose counts may be asked for, as its rows name it: a topic's name, `~other` — the
 * overflow row of the caller's environment, which `hotTopics` lists (what a minute counted beyond
 * its bound of topics) —, a channel's `~channel:<name>`, or a service's documents'
 * `sync.{service}.doc.*` (also for one document's topic).
 */
function statsTopicOf(topic: string): string {
  if (topic === OVERFLOW_TOPIC) return topic;
  // A channel's broadcasts are counted as `~channel:<name>` (channel-message.ts).
  if (topic.startsWith(CHANNEL_TOPIC_PREFIX)) return `${CHANNEL_TOPIC_PREFIX}${assertName('topic', topic.slice(CHANNEL_TOPIC_PREFIX.length))}`;
  // A service's documents are counted together (`sync.{service}.doc.*`): asked by that name, or by
  // one document's topic, whose counts are that row's.
  if (topic.endsWith('.doc.*')) return `${assertName('topic', topic.slice(0, -2))}.*`;
  return storedTopicOf(assertName('topic', topic));
}

/** The tenant `statsUpdates` counts, from its arguments only: undefined (every tenant) when absent or empty. */
function statsTenant(args: StatsUpdatesArgs): string | undefined {
  return args.tenant == null || args.tenant === '' ? undefined : args.tenant;
}

function matches(row: TopicMinute, topic: string, tenant: string | undefined): boolean {
  return row.topic === topic && (tenant === undefined || row.tenant === tenant);
}

function countsOfMinute(row: TopicMinute): TopicCounts {
  const { topic: _topic, tenant: _tenant, latency, ...counters } = row;
  return { ...counters, latency: latency.length > 0 ? [...latency] : undefined };
}

function bucketOf(topic: string, window: StatsWindow, startTime: Date, endTime: Date, counts: TopicCounts): TopicStatsBucket {
  return {
    topic,
    window,
    startTime,
    endTime,
    count: totalEvents(counts),
    bySource: [
      { source: 'database', count: counts.eventsDatabase },
      { source: 'sync', count: counts.eventsSync },
      { source: 'socket', count: counts.eventsSocket },
      { source: 'system', count: counts.eventsSystem },
    ],
    deliveries: counts.deliveries,
    bytes: counts.bytes,
    webhookDeliveries: counts.webhookDelivered,
    webhookFailures: counts.webhookFailed,
    resyncs: counts.resyncs,
    latencyP50Ms: counts.latency ? histogramQuantile(counts.latency, 0.5) : null,
    latencyP99Ms: counts.latency ? histogramQuantile(counts.latency, 0.99) : null,
  };
}

/** The tenant a caller may see: its token's, or the one it asks for when its token has none. */
function tenantOf(principal: Principal, given: string | null | undefined): string | undefined {
  // An empty tenant asks for none, as over REST (`tenant=`).
  const asked = given === '' ? undefined : given;
  // Compared with what the tables hold: a NUL would fail in Postgres, a longer name matches nothing.
  if (asked != null && (asked.length > MAX_TENANT_LENGTH || asked.includes('\u0000'))) {
    throw badUserInput('tenant', `tenant must be at most ${MAX_TENANT_LENGTH} characters, without the NUL character`);
  }
  const limitedTo = tenantLimitOf(principal);
  if (limitedTo === undefined) return asked ?? undefined;
  if (asked != null && asked !== limitedTo) throw new TributaryError(ErrorCode.FORBIDDEN, `This token is limited to tenant "${limitedTo}"`, { details: { field: 'tenant' } });
  return limitedTo;
}

/**
 * The one tenant an admin's analytics are limited to, or undefined for the environment's admin —
 * the development principal included: its tenant `default` stands for every caller
 * (`isEnvironmentAdmin`), so development mode sees every tenant's topics and the application-wide ones.
 */
function tenantLimitOf(principal: Principal): string | undefined {
  return isEnvironmentAdmin(principal) ? undefined : principal.tenant;
}
