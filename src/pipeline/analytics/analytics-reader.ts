/**
 * What the admin API reads: a topic's windows (minutes, hours, days) from Postgres, and the hot
 * topics of an environment over the last minute, 15 minutes or hour — cluster-wide, the minutes
 * not flushed yet read from the minute store, the flushed ones from the hour rollup where it can
 * (`hot-topics-window.ts`), an answer reused for a couple of seconds (`answer-cache.ts`). Each minute is taken from exactly one place: the
 * store is read first, then the flushed minutes are listed and read from Postgres, and only the
 * store's minutes not in that list are counted. A flush in between (the minute written to Postgres,
 * then removed from the store) thus moves a minute to Postgres for this answer, never out of it.
 */
import type { Database } from '../../db/database.ts';
import { scopeKey, type Scope } from '../scope.ts';
import { parseStreamKey } from '../stream.ts';
import { createAnswerCache } from './answer-cache.ts';
import { histogramKey, planStart, planWindow, windowCounters, windowLatency } from './hot-topics-window.ts';
import { emptyHistogram, histogramQuantile, mergeHistogram } from '../../latency-histogram.ts';
import type { MinuteStore } from './minute-store.ts';
import { flushedMinutes, statsTopicOf, topicWindows, type Granularity } from './stats-store.ts';
import { emptyCounts, mergeCounts, MINUTE_MS, totalEvents, type TopicCounts } from './topic-counts.ts';

export type HotTopicsOrder = 'events' | 'fanout' | 'latencyP99' | 'bytes';

/** One topic's counts over a window. */
export interface TopicWindow {
  readonly start: Date;
  readonly end: Date;
  readonly counts: TopicCounts;
}

export interface HotTopic {
  readonly topic: string;
  /** null: application-wide events. */
  readonly tenant: string | null;
  readonly counts: TopicCounts;
  /** The span the counts cover: from the start of the window's first minute to now. */
  readonly start: Date;
  readonly end: Date;
}

export interface TopicStatsQuery {
  readonly scope: Pick<Scope, 'app' | 'env'>;
  /** One tenant only; every tenant (summed) when undefined. */
  readonly tenant: string | undefined;
  readonly topic: string;
  readonly granularity: Granularity;
  readonly from: Date;
  readonly to: Date;
}

export interface HotTopicsQuery {
  readonly scope: Pick<Scope, 'app' | 'env'>;
  readonly tenant: string | undefined;
  /** Length of the window ending now, in ms. */
  readonly windowMs: number;
  readonly by: HotTopicsOrder;
  readonly limit: number;
}

export interface AnalyticsReader {
  topicStats(query: TopicStatsQuery): Promise<TopicWindow[]>;
  hotTopics(query: HotTopicsQuery): Promise<HotTopic[]>;
}

export interface AnalyticsReaderOptions {
  /** Statements, and the one transaction a hot-topics answer reads in. */
  readonly db: Pick<Database, 'query' | 'exec' | 'transaction'>;
  readonly store: MinuteStore;
  /** The clock of the windows, in ms since the epoch. @default Date.now */
  readonly now?: () => number;
  /**
   * How long a hot-topics answer is reused for the same question (environment, tenant, window,
   * order, limit), in ms — its figures and its `end` are then up to that old; 0 reads every time.
   * @default 2000
   */
  readonly hotTopicsCacheMs?: number;
  /** Hot-topics answers kept at most. @default 256 */
  readonly hotTopicsCacheEntries?: number;
  /** The clock of that cache: monotonic, apart from the windows' (which a test may hold still). @default performance.now */
  readonly monotonicNow?: () => number;
}

const LENGTH_MS: Readonly<Record<Granularity, number>> = { minute: MINUTE_MS, hour: 3_600_000, day: 86_400_000 };

interface Entry {
  readonly topic: string;
  readonly tenant: string | null;
  readonly counts: TopicCounts;
}

export function createAnalyticsReader(options: AnalyticsReaderOptions): AnalyticsReader {
  const { db, store } = options;
  const now = options.now ?? Date.now;
  const cache = createAnswerCache<HotTopic[]>({
    ttlMs: options.hotTopicsCacheMs ?? 2_000,
    maxEntries: options.hotTopicsCacheEntries ?? 256,
    now: options.monotonicNow ?? (() => performance.now()),
  });

  const hotTopics = async (query: HotTopicsQuery): Promise<HotTopic[]> => {
    const time = now();
    const endOfWindow = time - query.windowMs;
    const from = endOfWindow - (endOfWindow % MINUTE_MS);
    // The store sends this environment's topics only; one tenant's are picked out of them here.
    const tenantPrefix = query.tenant === undefined ? undefined : `${scopeKey({ ...query.scope, tenant: query.tenant })}|`;
    const environment = { app: query.scope.app, env: query.scope.env, ...(tenantPrefix !== undefined && { accept: (topicKey: string) => topicKey.startsWith(tenantPrefix) }) };
    const inWindow = (await store.minutes()).filter((minute) => minute >= from && minute <= time);
    const pending = await Promise.all(inWindow.map(async (minute) => ({ minute, topics: await store.read(minute, environment) })));
    const { app, env } = query.scope;
    const ranked = await db.transaction(async (tx) => {
      // One snapshot for the flushed list and every row read: see hot-topics-window.ts.
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const flushed = await flushedMinutes(tx, new Date(planStart(from)));
      const plan = planWindow(flushed, from);
      const topics = new Map<string, Entry>();
      const add = (topic: string, tenant: string | null, counts: TopicCounts) => {
        const key = histogramKey(tenant ?? '', topic);
        let entry = topics.get(key);
        if (!entry) topics.set(key, (entry = { topic, tenant, counts: emptyCounts() }));
        mergeCounts(entry.counts, counts);
      };
      for (const row of await windowCounters(tx, { app, env, tenant: query.tenant, plan })) add(row.topic, row.tenant === '' ? null : row.tenant, row.counts);
      for (const { minute, topics: read } of pending) {
        if (flushed.has(minute)) continue;
        for (const [key, counts] of read) {
          const parsed = parseStreamKey(key);
          // Named as the flush names its rows (a document's under its service's `sync.{service}.doc.*`).
          if (parsed) add(statsTopicOf(parsed.topic), parsed.scope.tenant ?? null, counts);
        }
      }
      // Ranked on the counters, then the histograms of those answered only — unless latency is the order.
      const entries = [...topics.values()];
      const wanted = query.by === 'latencyP99' ? entries.filter((entry) => entry.counts.deliveries > 0) : rank(entries, query.by, query.limit);
      const latency = await windowLatency(tx, { app, env, plan, topics: wanted.map((entry) => ({ tenant: entry.tenant ?? '', topic: entry.topic })) });
      for (const entry of wanted) {
        const histogram = latency.get(histogramKey(entry.tenant ?? '', entry.topic));
        if (histogram) mergeHistogram((entry.counts.latency ??= emptyHistogram()), histogram);
      }
      return query.by === 'latencyP99' ? rank(wanted, query.by, query.limit) : wanted;
    });
    return ranked.map((entry) => ({ ...entry, start: new Date(from), end: new Date(time) }));
  };

  return {
    async topicStats(query) {
      const windows = await topicWindows(db, { ...query, app: query.scope.app, env: query.scope.env });
      const length = LENGTH_MS[query.granularity];
      return windows.map(({ start, counts }) => ({ start, end: new Date(start.getTime() + length), counts }));
    },

    hotTopics(query) {
      const key = JSON.stringify([query.scope.app, query.scope.env, query.tenant ?? null, query.windowMs, query.by, query.limit]);
      return cache.get(key, () => hotTopics(query));
    },
  };
}

/**
 * The `limit` topics first by `by` (ties by topic name, then tenant — application-wide first — so
 * that an answer does not depend on the order rows came in); by latency, only topics with live deliveries.
 */
export function rank<T extends { readonly topic: string; readonly tenant: string | null; readonly counts: TopicCounts }>(entries: readonly T[], by: HotTopicsOrder, limit: number): T[] {
  const score = (counts: TopicCounts): number | null => {
    switch (by) {
      case 'events':
        return totalEvents(counts);
      case 'fanout':
        return counts.deliveries;
      case 'bytes':
        return counts.bytes;
      case 'latencyP99':
        return counts.latency ? histogramQuantile(counts.latency, 0.99) : null;
    }
  };
  return entries
    .map((entry) => ({ entry, score: score(entry.counts) }))
    .filter((scored): scored is { entry: T; score: number } => scored.score !== null && (by === 'latencyP99' || scored.score > 0))
    .sort((a, b) => b.score - a.score || compareText(a.entry.topic, b.entry.topic) || compareText(a.entry.tenant ?? '', b.entry.tenant ?? ''))
    .slice(0, limit)
    .map((scored) => scored.entry);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
