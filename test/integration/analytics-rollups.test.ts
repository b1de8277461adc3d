/**
 * Hours and days of the analytics tables against a real Postgres and the embedded database: each
 * flushed minute is added into its hour and day, so a flush costs that minute's rows — it never
 * reads back the history it rolls up — and every hour and day stays exactly the sum of its minutes.
 */
import { describe, expect, it } from 'vitest';
import type { Database, Queryable } from '../../src/db/database.ts';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { LATENCY_BUCKETS } from '../../src/latency-histogram.ts';
import { createMemoryMinuteStore } from '../../src/pipeline/analytics/memory-minute-store.ts';
import { createMinuteFlusher } from '../../src/pipeline/analytics/minute-flusher.ts';
import { COUNTERS, emptyCounts, MINUTE_MS, OTHER_TOPIC_KEY, type TopicCounts } from '../../src/pipeline/analytics/topic-counts.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createTestDatabase } from '../helpers/index.ts';

const logger = createLogger({ level: 'silent' });
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
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

/** The flusher's database, keeping every statement its transactions run. */
function recording(db: Database, statements: { sql: string; params: readonly unknown[] }[]): Database {
  return {
    kind: db.kind,
    query: (sql, params, options) => db.query(sql, params, options),
    exec: (sql) => db.exec(sql),
    ping: () => db.ping(),
    close: () => db.close(),
    transaction: (work) =>
      db.transaction((tx) =>
        work({
          query: (sql, params = [], options) => (statements.push({ sql, params }), tx.query(sql, params, options)),
          exec: (sql) => tx.exec(sql),
        } satisfies Queryable),
      ),
  };
}

function counts(seed: number, latency: number[] | undefined): TopicCounts {
  const result = emptyCounts();
  COUNTERS.forEach((counter, index) => (result[counter] = (seed * (index + 3)) % 17));
  result.latency = latency;
  return result;
}

function histogram(seed: number, length = LATENCY_BUCKETS): number[] {
  return Array.from({ length }, (_, index) => (index * seed) % 5);
}

interface WindowRow {
  readonly key: string;
  readonly values: number[];
  readonly latency: number[];
}

/** Rows of a stats table as `app|env|tenant|topic|start` with their counters and latency, sorted. */
async function rowsOf(db: Queryable, table: string): Promise<WindowRow[]> {
  const { rows } = await db.query<Record<string, unknown> & { key: string; latency: number[] }>(
    `SELECT app || '|' || env || '|' || tenant || '|' || topic || '|' || (extract(epoch FROM start_time) * 1000)::bigint AS key,
            ${COLUMNS.map((column) => `${column}::float8 AS ${column}`).join(', ')}, latency::float8[] AS latency
       FROM ${table} ORDER BY key`,
  );
  return rows.map((row) => ({ key: row.key, values: COLUMNS.map((column) => Number(row[column])), latency: row.latency.map(Number) }));
}

/** The windows of `length` recomputed from minute rows: counters summed, histograms bucket by bucket. */
function recompute(minutes: readonly WindowRow[], length: number): WindowRow[] {
  const windows = new Map<string, WindowRow>();
  for (const row of minutes) {
    const parts = row.key.split('|');
    const start = Number(parts.pop());
    const key = `${parts.join('|')}|${start - (start % length)}`;
    let window = windows.get(key);
    if (!window) windows.set(key, (window = { key, values: COLUMNS.map(() => 0), latency: [] }));
    row.values.forEach((value, index) => (window.values[index]! += value));
    row.latency.forEach((value, index) => (window.latency[index] = (window.latency[index] ?? 0) + value));
  }
  return [...windows.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

describe('analytics roll-ups', () => {
  it.each(['postgres', 'embedded'] as const)('keeps every hour and day the sum of its minutes across hour and day boundaries (%s database)', { timeout: 60_000 }, async (kind) => {
    const { db, dispose } = await databases[kind]();
    try {
      await migrate(db, { logger });
      const midnight = Date.UTC(2025, 0, 2);
      // Two minutes of the day before, and minutes on both sides of the first hour boundary.
      const minutes = [midnight - 2 * MINUTE_MS, midnight - MINUTE_MS, midnight, midnight + 59 * MINUTE_MS, midnight + HOUR_MS, midnight + HOUR_MS + MINUTE_MS];
      const store = createMemoryMinuteStore();
      let time = minutes[0]!;
      const flusher = createMinuteFlusher({ db, store, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 400 * DAY_MS, now: () => time });
      for (const [index, minute] of minutes.entries()) {
        const topics = new Map<string, TopicCounts>([
          [streamOf({ app: 'app', env: 'prod', tenant: 'acme' }, 'orders').key, counts(index + 1, histogram(index + 2))],
          [streamOf({ app: 'app', env: 'prod', tenant: 'globex' }, 'orders').key, counts(index + 5, undefined)],
          // Histograms of other lengths (a shorter layout) are added bucket by bucket all the same.
          [streamOf({ app: 'app', env: 'prod', tenant: undefined }, 'mixed').key, counts(index + 7, index % 2 === 0 ? histogram(index + 1, 7) : histogram(3))],
          [streamOf({ app: 'other', env: 'dev', tenant: undefined }, 'orders').key, counts(index + 11, histogram(index + 4))],
          [OTHER_TOPIC_KEY, counts(index + 13, undefined)],
        ]);
        // Two pushes into one minute, one of them by a second instance.
        await store.push({ id: `a${index}`, minute, topics });
        await store.push({ id: `b${index}`, minute, topics: new Map([[streamOf({ app: 'app', env: 'prod', tenant: 'acme' }, 'orders').key, counts(index + 17, histogram(1))]]) });
        // Flushed one or two minutes at a time, so hours and days already hold rows when the next comes.
        if (index % 2 === 1) {
          time = minute + MINUTE_MS;
          expect(await flusher.flush()).toEqual(minutes.slice(index - 1, index + 1));
        }
      }

      const minuteRows = await rowsOf(db, 'topic_stats_minute');
      expect(minuteRows).toHaveLength(minutes.length * 5);
      expect(await rowsOf(db, 'topic_stats_hour')).toEqual(recompute(minuteRows, HOUR_MS));
      expect(await rowsOf(db, 'topic_stats_day')).toEqual(recompute(minuteRows, DAY_MS));
    } finally {
      await dispose();
    }
  });

  it('adds two topic keys that name the same row (no tenant, and an empty tenant) instead of keeping one', async () => {
    const { db, dispose } = await databases.postgres();
    try {
      await migrate(db, { logger });
      const minute = Date.UTC(2025, 0, 2, 10, 30);
      const store = createMemoryMinuteStore();
      await store.push({
        id: 'one',
        minute,
        topics: new Map([
          [streamOf({ app: 'app', env: 'prod', tenant: undefined }, 'orders').key, counts(1, histogram(2))],
          [streamOf({ app: 'app', env: 'prod', tenant: '' }, 'orders').key, counts(2, histogram(3))],
        ]),
      });
      const flusher = createMinuteFlusher({ db, store, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 400 * DAY_MS, now: () => minute + MINUTE_MS });
      expect(await flusher.flush()).toEqual([minute]);
      const both = recompute(
        [counts(1, histogram(2)), counts(2, histogram(3))].map((each) => ({ key: `app|prod||orders|${minute}`, values: COUNTERS.map((counter) => each[counter]), latency: each.latency! })),
        MINUTE_MS,
      );
      expect(await rowsOf(db, 'topic_stats_minute')).toEqual(both);
      expect((await rowsOf(db, 'topic_stats_day')).map((row) => row.values)).toEqual(both.map((row) => row.values));
    } finally {
      await dispose();
    }
  });

  it('flushes a minute without reading the history it rolls up: no statement of its transaction scans a stats table', async () => {
    const { db, dispose } = await databases.postgres();
    try {
      await migrate(db, { logger });
      const now = Date.now();
      const minute = now - (now % MINUTE_MS) - MINUTE_MS;
      // A month of hours of 200 topics: the history a roll-up that recomputes its day reads at every flush.
      await db.query(
        `INSERT INTO topic_stats_hour (app, env, tenant, topic, start_time, events_socket)
         SELECT 'app', 'prod', '', 'topic.' || t, date_trunc('hour', $1::timestamptz) - make_interval(hours => h), 5
           FROM generate_series(1, 200) t, generate_series(1, 24 * 30) h`,
        [new Date(minute)],
      );
      await db.query('ANALYZE topic_stats_hour');
      const store = createMemoryMinuteStore();
      await store.push({ id: 'one', minute, topics: new Map([[streamOf({ app: 'app', env: 'prod', tenant: undefined }, 'topic.1').key, counts(1, histogram(2))]]) });
      const statements: { sql: string; params: readonly unknown[] }[] = [];
      const flusher = createMinuteFlusher({ db: recording(db, statements), store, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 400 * DAY_MS, now: () => now });
      expect(await flusher.flush()).toEqual([minute]);

      expect(statements.length).toBeGreaterThan(0);
      const scans: string[] = [];
      for (const { sql, params } of statements) {
        const { rows } = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${sql}`, params);
        scans.push(...rows.map((row) => row['QUERY PLAN']).filter((line) => /Scan .*\bon topic_stats_/.test(line)));
      }
      expect(scans).toEqual([]);
      // The minute is in its hour all the same.
      const { rows } = await db.query<{ events: number }>(
        "SELECT events_socket::int AS events FROM topic_stats_hour WHERE topic = 'topic.1' AND start_time = date_trunc('hour', $1::timestamptz)",
        [new Date(minute)],
      );
      expect(rows).toEqual([{ events: counts(1, undefined).eventsSocket }]);
    } finally {
      await dispose();
    }
  });
});
