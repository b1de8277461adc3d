/**
 * Hot topics over an hour read the hour rollup for whole hours — the hour being filled included —
 * and minute rows at the window's start only, rank on counters and read latency histograms for the
 * topics answered: the answers stay exactly those of summing every minute row of the window (the
 * reference below, the reader as it was), the rows read are counted from the plans Postgres ran,
 * a minute flushed while an answer is read is counted once, and a repeated question is answered
 * from a short, bounded cache.
 */
import { describe, expect, it } from 'vitest';
import type { Database, Queryable, QueryOptions, Row } from '../../src/db/database.ts';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createAnalyticsReader, rank, type HotTopicsOrder, type HotTopicsQuery } from '../../src/pipeline/analytics/analytics-reader.ts';
import { LATENCY_BUCKETS } from '../../src/latency-histogram.ts';
import { createMemoryMinuteStore } from '../../src/pipeline/analytics/memory-minute-store.ts';
import { createMinuteFlusher } from '../../src/pipeline/analytics/minute-flusher.ts';
import type { MinuteStore } from '../../src/pipeline/analytics/minute-store.ts';
import { COUNTERS, emptyCounts, mergeCounts, MINUTE_MS, type TopicCounts } from '../../src/pipeline/analytics/topic-counts.ts';
import { scopeKey } from '../../src/pipeline/scope.ts';
import { parseStreamKey, streamOf } from '../../src/pipeline/stream.ts';
import { createTestDatabase } from '../helpers/index.ts';

const logger = createLogger({ level: 'silent' });
const HOUR_MS = 3_600_000;
/** 11:00 UTC: the hour being filled. Minutes from 09:40 to 11:21 are flushed; 11:22 and 11:23 are in the store only. */
const HOUR = Date.UTC(2026, 0, 5, 11);
const FIRST = HOUR - 80 * MINUTE_MS;
const LAST_FLUSHED = HOUR + 21 * MINUTE_MS;
const IN_STORE = [HOUR + 22 * MINUTE_MS, HOUR + 23 * MINUTE_MS];
const NOW = HOUR + 23 * MINUTE_MS + 30_000;
const TENANTS = ['acme', 'beta', undefined] as const;
const TOPICS = 12;
const COLUMNS = ['events_database', 'events_sync', 'events_socket', 'events_system', 'deliveries', 'bytes', 'webhook_delivered', 'webhook_failed', 'resyncs'];

const databases = {
  postgres: async () => {
    const database = await createTestDatabase();
    const db = createPostgresDatabase({ url: database.url, logger });
    return { db, dispose: async () => (await db.close(), await database.dispose()) };
  },
  embedded: async () => {
    const db = await createEmbeddedDatabase({ dataDir: 'memory://' });
    return { db, dispose: () => db.close() };
  },
};

/** A small deterministic spread of values, with ties. */
function value(seed: string, minute: number, salt: number): number {
  let hash = salt;
  for (const char of `${seed}|${minute}`) hash = (hash * 31 + char.charCodeAt(0)) % 1_000_003;
  return hash % 7;
}

function countsOf(key: string, minute: number, withLatency: boolean): TopicCounts {
  const counts = emptyCounts();
  COUNTERS.forEach((counter, index) => (counts[counter] = value(key, minute, index + 1)));
  if (withLatency && counts.deliveries > 0) {
    counts.latency = new Array<number>(LATENCY_BUCKETS).fill(0);
    counts.latency[value(key, minute, 40) * 3] = counts.deliveries;
  }
  return counts;
}

/** The counts of a minute: every topic of every tenant of prod (and of staging, never to be read), and a few sparse ones. */
function minuteOf(minute: number): Map<string, TopicCounts> {
  const topics = new Map<string, TopicCounts>();
  for (const env of ['prod', 'staging']) {
    for (const tenant of TENANTS) {
      for (let index = 0; index < TOPICS; index += 1) {
        const key = streamOf({ app: 'app', env, tenant }, `topic.${index}`).key;
        topics.set(key, countsOf(key, minute, index % 3 !== 0));
      }
    }
  }
  // Only before 10:23 (in the 10:00 hour): in its hour's row, never in the window of an hour to 11:23.
  if (minute >= HOUR - HOUR_MS && minute < HOUR - 45 * MINUTE_MS) topics.set(streamOf({ app: 'app', env: 'prod', tenant: 'acme' }, 'early').key, countsOf('early', minute, true));
  // Two tenants with equal counts: ranked by tenant.
  const twin = countsOf('twin', minute, true);
  for (const tenant of ['beta', 'acme']) topics.set(streamOf({ app: 'app', env: 'prod', tenant }, 'twin').key, { ...twin, latency: twin.latency && [...twin.latency] });
  if (IN_STORE.includes(minute)) topics.set(streamOf({ app: 'app', env: 'prod', tenant: undefined }, 'late').key, countsOf('late', minute, true));
  return topics;
}

/** Minutes 09:40–11:21 flushed by the real flusher (so hours are filled as in production), 11:22–11:23 pushed only. */
async function seed(db: Database): Promise<MinuteStore> {
  await migrate(db, { logger });
  const store = createMemoryMinuteStore();
  for (let minute = FIRST; minute <= IN_STORE[1]!; minute += MINUTE_MS) await store.push({ id: `m${minute}`, minute, topics: minuteOf(minute) });
  // 11:21 is closed at 11:22:45, 11:22 only at 11:23:45.
  const flusher = createMinuteFlusher({ db, store, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 45_000, retentionMs: 14 * 24 * HOUR_MS, now: () => NOW });
  expect((await flusher.flush()).at(-1)).toBe(LAST_FLUSHED);
  expect(await store.minutes()).toEqual(IN_STORE);
  // What a real database holds besides: the environment's earlier hours (kept forever), and
  // another application busy in the same minutes — neither to be read.
  await db.query(
    `INSERT INTO topic_stats_hour (app, env, tenant, topic, start_time, events_socket)
     SELECT 'app', 'prod', '', 'topic.' || topic, $1::timestamptz - make_interval(hours => hour), 1
       FROM generate_series(1, 20) AS topic, generate_series(2, 24 * 60) AS hour`,
    [new Date(HOUR - HOUR_MS)],
  );
  await db.query(
    `INSERT INTO topic_stats_minute (app, env, tenant, topic, start_time, events_socket)
     SELECT 'noise', 'prod', '', 'topic.' || topic, $1::timestamptz + make_interval(mins => minute), 1
       FROM generate_series(1, 300) AS topic, generate_series(0, $2::int) AS minute`,
    [new Date(FIRST), (LAST_FLUSHED - FIRST) / MINUTE_MS],
  );
  if (db.kind === 'postgres') await db.exec('ANALYZE topic_stats_minute; ANALYZE topic_stats_hour; ANALYZE topic_stats_flushed');
  return store;
}

/** The reader as it was: every flushed minute row of the window summed, the store's other minutes added, then ranked. */
async function reference(db: Queryable, store: MinuteStore, query: HotTopicsQuery, time: number, sums: Map<string, Promise<SummedTopic[]>>) {
  // The sums depend on the time, window and tenant only: summed once for every order and limit.
  const key = JSON.stringify([time, query.windowMs, query.tenant ?? null]);
  let summed = sums.get(key);
  if (summed === undefined) sums.set(key, (summed = summedTopics(db, store, query, time)));
  return rank(await summed, query.by, query.limit);
}

interface SummedTopic {
  readonly topic: string;
  readonly tenant: string | null;
  readonly counts: TopicCounts;
}

async function summedTopics(db: Queryable, store: MinuteStore, query: HotTopicsQuery, time: number): Promise<SummedTopic[]> {
  const endOfWindow = time - query.windowMs;
  const from = endOfWindow - (endOfWindow % MINUTE_MS);
  const prefix = query.tenant === undefined ? undefined : `${scopeKey({ ...query.scope, tenant: query.tenant })}|`;
  const environment = { ...query.scope, ...(prefix !== undefined && { accept: (key: string) => key.startsWith(prefix) }) };
  const pending = [];
  for (const minute of await store.minutes()) if (minute >= from && minute <= time) pending.push({ minute, topics: await store.read(minute, environment) });
  const flushed = new Set((await db.query<{ start_time: Date }>('SELECT start_time FROM topic_stats_flushed WHERE start_time >= $1', [new Date(from)])).rows.map((row) => row.start_time.getTime()));
  const { rows } = await db.query<Record<string, unknown> & { tenant: string; topic: string; latency: string[] }>(
    `SELECT tenant, topic, ${COLUMNS.map((column) => `${column}::float8 AS ${column}`).join(', ')}, latency::float8[] AS latency FROM topic_stats_minute
      WHERE app = $1 AND env = $2 AND ($3::text IS NULL OR tenant = $3) AND start_time = ANY($4::timestamptz[])`,
    [query.scope.app, query.scope.env, query.tenant ?? null, [...flushed].map((minute) => new Date(minute))],
  );
  const topics = new Map<string, { topic: string; tenant: string | null; counts: TopicCounts }>();
  const add = (topic: string, tenant: string | null, counts: TopicCounts) => {
    const key = JSON.stringify([tenant, topic]);
    let entry = topics.get(key);
    if (!entry) topics.set(key, (entry = { topic, tenant, counts: emptyCounts() }));
    mergeCounts(entry.counts, counts);
  };
  for (const row of rows) {
    const counts = emptyCounts();
    COUNTERS.forEach((counter, index) => (counts[counter] = Number(row[COLUMNS[index]!])));
    counts.latency = row.latency.length > 0 ? row.latency.map(Number) : undefined;
    add(row.topic, row.tenant === '' ? null : row.tenant, counts);
  }
  for (const { minute, topics: read } of pending) {
    if (flushed.has(minute)) continue;
    for (const [key, counts] of read) {
      const parsed = parseStreamKey(key);
      if (parsed) add(parsed.topic, parsed.scope.tenant ?? null, counts);
    }
  }
  return [...topics.values()];
}

/** The database, with every statement it runs kept. */
function recording(db: Database, statements: { sql: string; params: readonly unknown[] }[], hooks: { afterStatement?: (sql: string) => Promise<void> } = {}): Database {
  return {
    ...db,
    query: (sql, params = [], options) => (statements.push({ sql, params }), db.query(sql, params, options)),
    exec: (sql) => db.exec(sql),
    transaction: (work) =>
      db.transaction((tx) =>
        work({
          query: async <R extends Row = Row>(sql: string, params: readonly unknown[] = [], options?: QueryOptions) => {
            statements.push({ sql, params });
            const result = await tx.query<R>(sql, params, options);
            await hooks.afterStatement?.(sql);
            return result;
          },
          exec: (sql) => tx.exec(sql),
        }),
      ),
  };
}

/** Rows each table's scans read (returned, or removed by a filter or a recheck), from the plan Postgres ran. */
async function rowsRead(db: Queryable, sql: string, params: readonly unknown[]): Promise<Record<string, number>> {
  const { rows } = await db.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params);
  const read: Record<string, number> = {};
  const walk = (node: PlanNode) => {
    if (node['Relation Name'] !== undefined) {
      const perLoop = node['Actual Rows'] + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0);
      read[node['Relation Name']] = (read[node['Relation Name']] ?? 0) + perLoop * node['Actual Loops'];
    }
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(rows[0]!['QUERY PLAN'][0].Plan);
  return read;
}

interface PlanNode {
  readonly 'Relation Name'?: string;
  readonly 'Actual Rows': number;
  readonly 'Actual Loops': number;
  readonly 'Rows Removed by Filter'?: number;
  readonly 'Rows Removed by Index Recheck'?: number;
  readonly Plans?: readonly PlanNode[];
}

const scope = { app: 'app', env: 'prod' };
const ORDERS: readonly HotTopicsOrder[] = ['events', 'fanout', 'latencyP99', 'bytes'];

describe('hot topics over the hour rollup', () => {
  it.each(['postgres', 'embedded'] as const)('answers exactly what summing every minute row answered, at and across hour boundaries (%s database)', { timeout: 120_000 }, async (kind) => {
    const { db, dispose } = await databases[kind]();
    try {
      const store = await seed(db);
      const sums = new Map<string, Promise<SummedTopic[]>>();
      // 11:23:30 (an hour back starts at 10:23: the 10:00 row minus its first minutes), 11:05:30
      // (10:05: minus five minutes; 15 minutes back, 10:50: minute rows), 11:00:30 (an hour from
      // 10:00 exactly: two hour rows), 10:30:30 (flushed minutes after now count, as they did).
      for (const time of [NOW, HOUR + 5.5 * MINUTE_MS, HOUR + 30_000, HOUR - 29.5 * MINUTE_MS]) {
        const reader = createAnalyticsReader({ db, store, now: () => time, hotTopicsCacheMs: 0 });
        for (const windowMs of [MINUTE_MS, 15 * MINUTE_MS, HOUR_MS]) {
          // Every order and limit on Postgres; on the embedded database (the same statements on
          // PGlite, ~4× slower a read) the windows and tenants with two orders and one limit.
          for (const by of kind === 'postgres' ? ORDERS : (['events', 'latencyP99'] as const)) {
            for (const tenant of [undefined, 'acme']) {
              for (const limit of kind === 'postgres' ? [3, 100] : [100]) {
                const query = { scope, tenant, windowMs, by, limit };
                const hot = (await reader.hotTopics(query)).map(({ topic, tenant: owner, counts }) => ({ topic, tenant: owner, counts }));
                expect({ time, ...query, hot }).toEqual({ time, ...query, hot: await reference(db, store, query, time, sums) });
                if (limit === 100 && by === 'events') expect(hot.length).toBeGreaterThan(3);
              }
            }
          }
        }
      }
      const hour = await createAnalyticsReader({ db, store, now: () => NOW, hotTopicsCacheMs: 0 }).hotTopics({ scope, tenant: undefined, windowMs: HOUR_MS, by: 'events', limit: 100 });
      const names = hour.map((entry) => `${entry.topic}/${entry.tenant}`);
      expect(names).toContain('late/null');
      expect(names).not.toContain('early/acme');
      expect(names.indexOf('twin/acme')).toBe(names.indexOf('twin/beta') - 1);
    } finally {
      await dispose();
    }
  });

  it('reads two hour rows and the minutes before the window in the first hour per topic, and histograms for the topics answered only', { timeout: 60_000 }, async () => {
    const { db, dispose } = await databases.postgres();
    try {
      const store = await seed(db);
      const statements: { sql: string; params: readonly unknown[] }[] = [];
      const reader = createAnalyticsReader({ db: recording(db, statements), store, now: () => NOW, hotTopicsCacheMs: 0 });
      const hot = await reader.hotTopics({ scope, tenant: undefined, windowMs: HOUR_MS, by: 'events', limit: 5 });
      expect(hot).toHaveLength(5);
      const reads = [];
      for (const { sql, params } of statements) if (/^\s*(SELECT|WITH)/i.test(sql)) reads.push(await rowsRead(db, sql, params));
      // The flushed minutes (from 10:00: what the first hour's row holds beyond the window), a row a minute; then the counters and the histograms.
      const [flushed, counters, latency] = reads;
      expect(Object.keys(flushed!)).toEqual(['topic_stats_flushed']);
      // prod's topics: 3 tenants × 12, the twins, and `early` (in the 10:00 hour, before 10:23).
      const perMinute = TENANTS.length * TOPICS + 2;
      const earlyMinutes = 15;
      expect(counters).toEqual({ topic_stats_hour: 2 * perMinute + 1, topic_stats_minute: 23 * perMinute + earlyMinutes });
      // Summing every minute of the window read 59 flushed minutes of every topic: 59 × 38 = 2,242 rows.
      expect(counters!['topic_stats_minute']).toBeLessThan(59 * perMinute / 2);
      expect(latency).toEqual({ topic_stats_hour: 2 * 5, topic_stats_minute: 23 * 5 });
      expect(reads).toHaveLength(3);
    } finally {
      await dispose();
    }
  });

  it('counts a minute flushed into the hour being filled while the answer is read exactly once', async () => {
    const { db, dispose } = await databases.postgres();
    try {
      await migrate(db, { logger });
      const store = createMemoryMinuteStore();
      const key = streamOf({ app: 'app', env: 'prod', tenant: 'acme' }, 'orders').key;
      const events = (count: number) => ({ ...emptyCounts(), eventsSocket: count });
      const minutes = [HOUR, HOUR + MINUTE_MS, HOUR + 2 * MINUTE_MS];
      for (const [index, minute] of minutes.entries()) await store.push({ id: `m${index}`, minute, topics: new Map([[key, events(10 ** index)]]) });
      let time = HOUR + 2 * MINUTE_MS;
      const flusher = createMinuteFlusher({ db, store, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 14 * 24 * HOUR_MS, now: () => time });
      // 11:00 and 11:01 flushed: the window reads the 11:00 row. 11:02 is in the store when the reader reads it…
      expect(await flusher.flush()).toEqual(minutes.slice(0, 2));
      time = HOUR + 3 * MINUTE_MS + 30_000;
      let raced = false;
      // …and flushed (into the 11:00 row) once the reader has listed the flushed minutes.
      const racing = recording(db, [], {
        afterStatement: async (sql) => {
          if (raced || !sql.includes('topic_stats_flushed')) return;
          raced = true;
          expect(await flusher.flush()).toEqual([minutes[2]]);
        },
      });
      const reader = createAnalyticsReader({ db: racing, store, now: () => time, hotTopicsCacheMs: 0 });
      const hot = await reader.hotTopics({ scope, tenant: undefined, windowMs: 15 * MINUTE_MS, by: 'events', limit: 10 });
      expect(raced).toBe(true);
      expect(hot.map((entry) => [entry.topic, entry.counts.eventsSocket])).toEqual([['orders', 111]]);
      expect((await reader.hotTopics({ scope, tenant: undefined, windowMs: 15 * MINUTE_MS, by: 'events', limit: 10 })).map((entry) => entry.counts.eventsSocket)).toEqual([111]);
    } finally {
      await dispose();
    }
  });

  it('answers the same question from a short, bounded cache — one read for callers that ask at once, a new one once it is old', async () => {
    const { db, dispose } = await databases.postgres();
    try {
      const store = await seed(db);
      let transactions = 0;
      const counting: Database = { ...db, transaction: (work) => ((transactions += 1), db.transaction(work)) };
      let monotonic = 0;
      const reader = createAnalyticsReader({ db: counting, store, now: () => NOW, hotTopicsCacheMs: 2_000, hotTopicsCacheEntries: 2, monotonicNow: () => monotonic });
      const ask = (limit: number, tenant?: string) => reader.hotTopics({ scope, tenant, windowMs: HOUR_MS, by: 'events', limit });

      const [first, ...others] = await Promise.all([ask(5), ask(5), ask(5), ask(5)]);
      expect(transactions).toBe(1);
      for (const other of others) expect(other).toEqual(first);
      monotonic += 1_999;
      expect(await ask(5)).toEqual(first);
      expect(transactions).toBe(1);
      // Another limit, another tenant: other questions.
      await ask(6);
      await ask(5, 'acme');
      expect(transactions).toBe(3);
      // Two answers kept at most: the oldest (limit 5) went.
      await ask(5);
      expect(transactions).toBe(4);
      monotonic += 2_000;
      await ask(5);
      expect(transactions).toBe(5);
    } finally {
      await dispose();
    }
  });
});
