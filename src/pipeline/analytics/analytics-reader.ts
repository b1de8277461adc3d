/**
 * What the admin API reads: a topic's windows (minutes, hours, days) from Postgres, and the hot
 * topics of an environment over the last minute, 15 minutes or hour — cluster-wide, the minutes
 * not flushed yet read from the minute store. Each minute is taken from exactly one place: the
 * store is read first, then the flushed minutes are listed and read from Postgres, and only the
 * store's minutes not in that list are counted. A flush in between (the minute written to Postgres,
 * then removed from the store) thus moves a minute to Postgres for this answer, never out of it.
 */
import type { Queryable } from '../../db/database.ts';
import { scopeKey, type Scope } from '../scope.ts';
import { parseStreamKey } from '../stream.ts';
import { histogramQuantile } from './latency-histogram.ts';
import type { MinuteStore } from './minute-store.ts';
import { flushedMinutes, topicsOfMinutes, topicWindows, type Granularity } from './stats-store.ts';
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
  readonly db: Queryable;
  readonly store: MinuteStore;
  /** @default Date.now */
  readonly now?: () => number;
}

const LENGTH_MS: Readonly<Record<Granularity, number>> = { minute: MINUTE_MS, hour: 3_600_000, day: 86_400_000 };

export function createAnalyticsReader(options: AnalyticsReaderOptions): AnalyticsReader {
  const { db, store } = options;
  const now = options.now ?? Date.now;
  return {
    async topicStats(query) {
      const windows = await topicWindows(db, { ...query, app: query.scope.app, env: query.scope.env });
      const length = LENGTH_MS[query.granularity];
      return windows.map(({ start, counts }) => ({ start, end: new Date(start.getTime() + length), counts }));
    },

    async hotTopics(query) {
      const time = now();
      const endOfWindow = time - query.windowMs;
      const from = endOfWindow - (endOfWindow % MINUTE_MS);
      // The store sends this environment's topics only; one tenant's are picked out of them here.
      const tenantPrefix = query.tenant === undefined ? undefined : `${scopeKey({ ...query.scope, tenant: query.tenant })}|`;
      const environment = { app: query.scope.app, env: query.scope.env, ...(tenantPrefix !== undefined && { accept: (topicKey: string) => topicKey.startsWith(tenantPrefix) }) };
      const inWindow = (await store.minutes()).filter((minute) => minute >= from && minute <= time);
      const pending = await Promise.all(inWindow.map(async (minute) => ({ minute, topics: await store.read(minute, environment) })));
      const flushed = await flushedMinutes(db, new Date(from));
      const rows = await topicsOfMinutes(db, { app: query.scope.app, env: query.scope.env, tenant: query.tenant, minutes: [...flushed].map((minute) => new Date(minute)) });
      const topics = new Map<string, { topic: string; tenant: string | null; counts: TopicCounts }>();
      const add = (topic: string, tenant: string | null, counts: TopicCounts) => {
        const key = `${tenant ?? ''}|${topic}`;
        let entry = topics.get(key);
        if (!entry) topics.set(key, (entry = { topic, tenant, counts: emptyCounts() }));
        mergeCounts(entry.counts, counts);
      };
      for (const row of rows) add(row.topic, row.tenant === '' ? null : row.tenant, row.counts);
      for (const { minute, topics: read } of pending) {
        if (flushed.has(minute)) continue;
        for (const [key, counts] of read) {
          const parsed = parseStreamKey(key);
          if (parsed) add(parsed.topic, parsed.scope.tenant ?? null, counts);
        }
      }
      return rank([...topics.values()], query.by, query.limit).map((entry) => ({ ...entry, start: new Date(from), end: new Date(time) }));
    },
  };
}

/** The `limit` topics first by `by` (ties by topic name); by latency, only topics with live deliveries. */
export function rank<T extends { readonly topic: string; readonly counts: TopicCounts }>(entries: readonly T[], by: HotTopicsOrder, limit: number): T[] {
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
    .sort((a, b) => b.score - a.score || (a.entry.topic < b.entry.topic ? -1 : a.entry.topic > b.entry.topic ? 1 : 0))
    .slice(0, limit)
    .map((scored) => scored.entry);
}
