/**
 * The hot-path half of analytics: counts per topic into the current minute, in memory. No I/O,
 * no timer; a map lookup per call, and an allocation only the first time a topic is seen between
 * two drains. The pusher (`pusher.ts`) drains it every few seconds into the cluster's minute
 * store; the instance's cumulative totals (`instance-figures.ts`) are kept alongside.
 *
 * Bounded: a minute admits at most `maxTopicsPerMinute` topics; the rest of that minute is counted
 * under the overflow row of its environment (`overflowKeyOf`, and in `topicsOverflowed`), so a
 * flood of distinct topics cannot grow memory, Redis or Postgres beyond the bound. The bound is
 * the instance's, shared by every application and tenant it serves: so that one of them cannot
 * take it all — every other's topics of the minute then overflowing — one environment admits at
 * most `maxTopicsPerEnvironment` of them, one tenant (or an environment's application-wide events)
 * `maxTopicsPerTenant`. The overflow rows are bounded too (as many as the topics, then
 * `OTHER_TOPIC_KEY`, the row of no environment).
 */
import { ANALYTICS_SYSTEM_TOPIC } from '../events/analytics-event.ts';
import { DASHBOARD_TOPIC } from '../events/dashboard-event.ts';
import type { EventSource } from '../events/envelope.ts';
import { InstanceTotals, type InstanceFigures, type WebhookOutcome } from './instance-figures.ts';
import { latencyBucket, emptyHistogram } from '../../latency-histogram.ts';
import { statsTopicOf } from './stats-store.ts';
import { emptyCounts, environmentOfTopicKey, eventsCounter, isOverflowKey, MINUTE_MS, OTHER_TOPIC_KEY, overflowKeyOf, totalEvents, type TopicCounts } from './topic-counts.ts';

/** What the places where things happen call. `topicKey` is the stream key (`StreamRef.key`). */
export interface AnalyticsRecorder {
  /** An event placed in its stream's log by the router. */
  routed(topicKey: string, source: EventSource): void;
  /**
   * One event's frames written to `subscribers` sockets, `bytes` each; `latencyMs` from the
   * event's `metadata.timestamp` to the write, or undefined for a replay (it is not live).
   */
  delivered(topicKey: string, subscribers: number, bytes: number, latencyMs: number | undefined): void;
  /** A subscriber ended with RESYNC_REQUIRED. */
  resync(topicKey: string): void;
  /** A webhook attempt's outcome, for the event's topic. */
  webhookAttempt(topicKey: string, outcome: WebhookOutcome): void;
}

/** One minute's counts taken by `drain`. */
export interface MinuteCounts {
  /** Start of the minute, in ms since the epoch. */
  readonly minute: number;
  readonly topics: ReadonlyMap<string, TopicCounts>;
}

export interface AnalyticsCollector extends AnalyticsRecorder {
  readonly figures: InstanceFigures;
  /** Everything counted since the last drain, by minute (oldest first); empty minutes are left out. */
  drain(): MinuteCounts[];
  /**
   * The `limit` topics with the most events routed here in the last full minute (this instance's
   * view, for the Prometheus gauge), as events per second.
   */
  topTopics(limit: number): { readonly topicKey: string; readonly eventsPerSecond: number }[];
  /** Topic keys held in memory now (for tests of the bound). */
  heldTopics(): number;
  /**
   * Minutes whose counts this instance pushed and the minute store lost before the workers wrote
   * them (the pusher finds it out): counted in the instance's figures (`minutesLost`).
   */
  lostMinutes(count: number): void;
}

export interface AnalyticsRecorderOptions {
  /** Topics a minute admits before counting the rest as their environment's overflow topic. @default 10000 */
  readonly maxTopicsPerMinute?: number;
  /** Of those, the most one environment (app and env) may take. @default three quarters of `maxTopicsPerMinute` */
  readonly maxTopicsPerEnvironment?: number;
  /**
   * Of those, the most one tenant — or the application-wide events of an environment — may take:
   * below the environment's share, so the environment's other tenants keep room.
   * @default half of `maxTopicsPerMinute`
   */
  readonly maxTopicsPerTenant?: number;
  /** The clock that decides the minute, in ms since the epoch. @default Date.now */
  readonly now?: () => number;
}

/**
 * Tributary's own periodic traffic, never counted — neither per topic nor in the instance's
 * totals (the dashboard's rates): what Tributary routes by the clock, whatever the applications
 * do, would show as a hot topic of the operators' environment and as events per second of an
 * idle cluster. The rule: a topic Tributary fills on its own schedule is left out; one whose
 * events an application causes is counted, Tributary's or not — `system.alerts` (an alert fires
 * on an application's failures), `webhooks.endpoints` (its endpoint was disabled or is full),
 * `gateway.*` (its clients' sockets), `webhooks.test` (an admin's test call).
 * - `analytics.minutes`: the flushed minutes (counting them would report its own reports forever);
 * - `system.dashboard`: the cluster dashboard, routed every tick.
 */
export const UNCOUNTED_TOPICS: readonly string[] = [ANALYTICS_SYSTEM_TOPIC, DASHBOARD_TOPIC];

/** Stream keys end with `|topic` (`streamOf`); a topic name never holds a `|`. */
const UNCOUNTED_SUFFIXES = UNCOUNTED_TOPICS.map((topic) => `|${topic}`);

function isUncounted(topicKey: string): boolean {
  for (const suffix of UNCOUNTED_SUFFIXES) if (topicKey.endsWith(suffix)) return true;
  return false;
}

/** Closed minutes kept for a drain that does not come (no pusher); older ones are dropped. */
const MAX_CLOSED_MINUTES = 3;

interface MinuteTable {
  readonly start: number;
  readonly end: number;
  /** Topics admitted this minute, with their events folded in at each drain (top-K). */
  readonly admitted: Map<string, number>;
  /** Topics admitted this minute per environment (`environmentOfTopicKey`) and per scope (`scopeKey`). */
  readonly perEnvironment: Map<string, number>;
  readonly perScope: Map<string, number>;
  /** Overflow rows counted into this minute. */
  readonly overflows: Set<string>;
  /** Counts since the last drain. */
  topics: Map<string, TopicCounts>;
}

export function createAnalyticsRecorder(options: AnalyticsRecorderOptions = {}): AnalyticsCollector {
  const maxTopics = options.maxTopicsPerMinute ?? 10_000;
  const maxPerEnvironment = options.maxTopicsPerEnvironment ?? Math.max(1, Math.floor((maxTopics * 3) / 4));
  const maxPerScope = options.maxTopicsPerTenant ?? Math.max(1, Math.floor(maxTopics / 2));
  const now = options.now ?? Date.now;
  const totals = new InstanceTotals(true, now);
  const tableAt = (time: number): MinuteTable => {
    const start = time - (time % MINUTE_MS);
    return { start, end: start + MINUTE_MS, admitted: new Map(), perEnvironment: new Map(), perScope: new Map(), overflows: new Set(), topics: new Map() };
  };

  /** The key a topic not admitted yet is counted under this minute: its own if admitted now, else an overflow row. */
  const admit = (table: MinuteTable, topicKey: string): string => {
    const environment = environmentOfTopicKey(topicKey);
    const bar = topicKey.indexOf('|');
    const scope = bar < 0 ? topicKey : topicKey.slice(0, bar);
    const inEnvironment = table.perEnvironment.get(environment) ?? 0;
    const inScope = table.perScope.get(scope) ?? 0;
    if (table.admitted.size < maxTopics && inEnvironment < maxPerEnvironment && inScope < maxPerScope) {
      table.admitted.set(topicKey, 0);
      table.perEnvironment.set(environment, inEnvironment + 1);
      table.perScope.set(scope, inScope + 1);
      return topicKey;
    }
    totals.overflowed += 1;
    const overflow = overflowKeyOf(environment);
    if (table.overflows.has(overflow)) return overflow;
    // Environments are as many as the tokens and mappings name: their overflow rows are bounded too.
    if (table.overflows.size >= maxTopics) return OTHER_TOPIC_KEY;
    table.overflows.add(overflow);
    return overflow;
  };
  let current = tableAt(now());
  const closed: MinuteTable[] = [];
  let lastFull: MinuteTable | undefined;

  const countsFor = (topicKey: string): TopicCounts => {
    const time = now();
    if (time >= current.end) {
      closed.push(current);
      if (closed.length > MAX_CLOSED_MINUTES) closed.shift();
      current = tableAt(time);
    }
    const topics = current.topics;
    const counts = topics.get(topicKey);
    if (counts) return counts;
    // A sync document's stream counts as its service's row (`statsTopicOf`), here already: each
    // document admitted on its own would use up the minute's bound of topics.
    const stored = storedKeyOf(topicKey);
    const known = stored === topicKey ? undefined : topics.get(stored);
    if (known) return known;
    const key = current.admitted.has(stored) ? stored : admit(current, stored);
    let into = topics.get(key);
    if (!into) topics.set(key, (into = emptyCounts()));
    return into;
  };

  const fold = (table: MinuteTable): MinuteCounts | undefined => {
    const topics = table.topics;
    if (topics.size === 0) return undefined;
    table.topics = new Map();
    for (const [key, counts] of topics) {
      const events = totalEvents(counts);
      if (events > 0 && !isOverflowKey(key)) table.admitted.set(key, (table.admitted.get(key) ?? 0) + events);
    }
    return { minute: table.start, topics };
  };

  return {
    figures: totals,
    routed(topicKey, source) {
      if (isUncounted(topicKey)) return;
      totals.events[source] += 1;
      countsFor(topicKey)[eventsCounter(source)] += 1;
    },
    delivered(topicKey, subscribers, bytes, latencyMs) {
      if (subscribers === 0 || isUncounted(topicKey)) return;
      const total = subscribers * bytes;
      totals.deliveries += subscribers;
      totals.bytes += total;
      const counts = countsFor(topicKey);
      counts.deliveries += subscribers;
      counts.bytes += total;
      if (latencyMs === undefined) return;
      const bucket = latencyBucket(latencyMs);
      totals.latency[bucket]! += subscribers;
      totals.latencySumMs += Math.max(0, latencyMs) * subscribers;
      (counts.latency ??= emptyHistogram())[bucket]! += subscribers;
    },
    resync(topicKey) {
      if (isUncounted(topicKey)) return;
      totals.resyncs += 1;
      countsFor(topicKey).resyncs += 1;
    },
    webhookAttempt(topicKey, outcome) {
      if (isUncounted(topicKey)) return;
      totals.webhooks[outcome] += 1;
      const counts = countsFor(topicKey);
      if (outcome === 'delivered') counts.webhookDelivered += 1;
      else counts.webhookFailed += 1;
    },
    drain() {
      // A minute that ended with no call since is closed here, so its counts leave on time.
      if (now() >= current.end) {
        closed.push(current);
        current = tableAt(now());
      }
      const drained: MinuteCounts[] = [];
      for (const table of closed) {
        const minute = fold(table);
        if (minute) drained.push(minute);
        lastFull = table;
      }
      closed.length = 0;
      const open = fold(current);
      if (open) drained.push(open);
      return drained;
    },
    topTopics(limit) {
      if (!lastFull || limit <= 0) return [];
      const top = [...lastFull.admitted].filter(([, events]) => events > 0).sort((a, b) => b[1] - a[1]).slice(0, limit);
      return top.map(([topicKey, events]) => ({ topicKey, eventsPerSecond: events / (MINUTE_MS / 1000) }));
    },
    lostMinutes(count) {
      totals.minutesLost += count;
    },
    heldTopics() {
      let held = current.admitted.size + current.topics.size + (lastFull?.admitted.size ?? 0);
      for (const table of closed) held += table.admitted.size + table.topics.size;
      return held;
    },
  };
}

/** The figures of an instance with analytics off: every figure 0, `enabled: false`. */
export function disabledFigures(now: () => number = Date.now): InstanceFigures {
  return new InstanceTotals(false, now);
}

/** A stream key (`<scope>|<topic>`) with its topic as rows name it (`statsTopicOf`). */
function storedKeyOf(topicKey: string): string {
  const bar = topicKey.indexOf('|');
  if (bar < 0) return topicKey;
  const topic = topicKey.slice(bar + 1);
  const stored = statsTopicOf(topic);
  return stored === topic ? topicKey : `${topicKey.slice(0, bar + 1)}${stored}`;
}
