/**
 * The analytics tables stay bounded, on a real Postgres:
 * - hour and day rows are pruned where minute rows are, past their own retention
 *   (ANALYTICS_HOUR_RETENTION_DAYS, 90 days by default; ANALYTICS_DAY_RETENTION_DAYS, 2 years), a
 *   bounded batch per flush — with the flusher's clock, as the minutes are;
 * - each sync document is a stream of its own (`sync.{service}.doc.{id}`): written per document,
 *   the tables gained a row per document ever changed. Its counts are written as one row per
 *   service, `sync.{service}.doc.*`, in minutes, hours and days alike, and the hot topics add the
 *   minutes not flushed yet the same way — so the hours, read with the minutes, stay their sum;
 * - the workers prune with the configured retention (a whole server, ANALYTICS_FLUSH_SECONDS=1).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import type { Database } from '../../src/db/database.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createAnalyticsReader } from '../../src/pipeline/analytics/analytics-reader.ts';
import { createMemoryMinuteStore } from '../../src/pipeline/analytics/memory-minute-store.ts';
import { createMinuteFlusher } from '../../src/pipeline/analytics/minute-flusher.ts';
import { emptyCounts, MINUTE_MS, type TopicCounts } from '../../src/pipeline/analytics/topic-counts.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createTestDatabase, waitFor } from '../helpers/index.ts';
import { startTestServer } from '../helpers/tributary.ts';

const logger = createLogger({ level: 'silent' });
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const acme = { app: 'app', env: 'env', tenant: 'acme' };

async function database(): Promise<{ db: Database; url: string }> {
  const created = await createTestDatabase({ migrated: true });
  const db = createPostgresDatabase({ url: created.url, logger });
  onTestFinished(() => db.close());
  return { db, url: created.url };
}

function socketEvents(count: number): TopicCounts {
  const counts = emptyCounts();
  counts.eventsSocket = count;
  return counts;
}

/** A row of `table` for topic `orders` starting `ago` ms before `now`. */
async function insertWindow(db: Database, table: 'topic_stats_hour' | 'topic_stats_day', start: number, topic = 'orders'): Promise<void> {
  await db.query(`INSERT INTO ${table} (app, env, tenant, topic, start_time, events_socket) VALUES ('app', 'env', 'acme', $1, $2, 1)`, [topic, new Date(start)]);
}

async function startsOf(db: Database, table: string): Promise<number[]> {
  const { rows } = await db.query<{ start_time: Date }>(`SELECT start_time FROM ${table} ORDER BY start_time`);
  return rows.map((row) => row.start_time.getTime());
}

async function topicsOf(db: Database, table: string): Promise<[string, string, number][]> {
  const { rows } = await db.query<{ tenant: string; topic: string; events: number }>(`SELECT tenant, topic, events_socket::float8 AS events FROM ${table} ORDER BY topic, tenant`);
  return rows.map((row) => [row.topic, row.tenant, row.events]);
}

describe('analytics retention of hours and days', () => {
  it('prunes hour and day rows past their retention when it flushes, by its own clock, and keeps the rest', async () => {
    const { db } = await database();
    const now = Date.UTC(2030, 5, 15, 12, 30);
    const hour = now - (now % HOUR_MS);
    const day = now - (now % DAY_MS);
    await insertWindow(db, 'topic_stats_hour', hour - 91 * DAY_MS);
    await insertWindow(db, 'topic_stats_hour', hour - 89 * DAY_MS);
    await insertWindow(db, 'topic_stats_day', day - 731 * DAY_MS);
    await insertWindow(db, 'topic_stats_day', day - 729 * DAY_MS);
    const flusher = createMinuteFlusher({
      db,
      store: createMemoryMinuteStore(),
      router: { routeMany: () => Promise.resolve([]) },
      logger,
      graceMs: 0,
      retentionMs: 14 * DAY_MS,
      hourRetentionMs: 90 * DAY_MS,
      dayRetentionMs: 730 * DAY_MS,
      now: () => now,
    });
    await flusher.flush();
    expect(await startsOf(db, 'topic_stats_hour')).toEqual([hour - 89 * DAY_MS]);
    expect(await startsOf(db, 'topic_stats_day')).toEqual([day - 729 * DAY_MS]);
  });

  it('defaults to 90 days of hours and 2 years of days, and the workers prune with the configured retention', async () => {
    expect(loadConfig({}).analytics).toMatchObject({ hourRetentionMs: 90 * DAY_MS, dayRetentionMs: 730 * DAY_MS });
    expect(loadConfig({ ANALYTICS_HOUR_RETENTION_DAYS: '2', ANALYTICS_DAY_RETENTION_DAYS: '30' }).analytics).toMatchObject({ hourRetentionMs: 2 * DAY_MS, dayRetentionMs: 30 * DAY_MS });

    const { db, url } = await database();
    const hour = Date.now() - (Date.now() % HOUR_MS);
    await insertWindow(db, 'topic_stats_hour', hour - 3 * DAY_MS, 'old');
    await insertWindow(db, 'topic_stats_hour', hour - DAY_MS, 'kept');
    await startTestServer({ DATABASE_URL: url, ANALYTICS_FLUSH_SECONDS: '1', ANALYTICS_HOUR_RETENTION_DAYS: '2' });
    await waitFor(async () => (await topicsOf(db, 'topic_stats_hour')).map(([topic]) => topic).join() === 'kept');
  });
});

describe('analytics of sync documents', () => {
  it('writes the counts of every document of a service as one row, sync.{service}.doc.*, in minutes, hours and days, and adds the unflushed minutes so in the hot topics', async () => {
    const { db } = await database();
    const now = Date.UTC(2030, 5, 15, 12, 30, 20);
    const closed = now - (now % MINUTE_MS) - MINUTE_MS;
    const current = closed + MINUTE_MS;
    const store = createMemoryMinuteStore();
    const documents = (minute: number, id: string, base: number) =>
      store.push({
        id,
        minute,
        topics: new Map([
          [streamOf(acme, 'sync.boards.doc.b1').key, socketEvents(base + 1)],
          [streamOf(acme, 'sync.boards.doc.b2').key, socketEvents(base + 2)],
          [streamOf(acme, 'sync.boards.doc.b:3.x').key, socketEvents(base + 3)],
          [streamOf({ ...acme, tenant: 'globex' }, 'sync.boards.doc.b1').key, socketEvents(base + 4)],
          [streamOf(acme, 'sync.notes.doc.n1').key, socketEvents(base + 5)],
          [streamOf(acme, 'sync.boards.created').key, socketEvents(base + 6)],
          [streamOf(acme, 'orders').key, socketEvents(base + 7)],
        ]),
      });
    await documents(closed, 'closed', 0);
    const flusher = createMinuteFlusher({ db, store, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 14 * DAY_MS, now: () => now });
    expect(await flusher.flush()).toEqual([closed]);

    const expected: [string, string, number][] = [
      ['orders', 'acme', 7],
      ['sync.boards.created', 'acme', 6],
      ['sync.boards.doc.*', 'acme', 6],
      ['sync.boards.doc.*', 'globex', 4],
      ['sync.notes.doc.*', 'acme', 5],
    ];
    for (const table of ['topic_stats_minute', 'topic_stats_hour', 'topic_stats_day']) expect(await topicsOf(db, table)).toEqual(expected);

    // The minute under way is still in the store, per document: the hot topics fold it the same way.
    await documents(current, 'current', 10);
    const reader = createAnalyticsReader({ db, store, now: () => now, hotTopicsCacheMs: 0 });
    const hot = await reader.hotTopics({ scope: acme, tenant: 'acme', windowMs: 5 * MINUTE_MS, by: 'events', limit: 10 });
    expect(hot.map((entry) => [entry.topic, entry.tenant, entry.counts.eventsSocket])).toEqual([
      ['sync.boards.doc.*', 'acme', 6 + 36],
      ['orders', 'acme', 7 + 17],
      ['sync.boards.created', 'acme', 6 + 16],
      ['sync.notes.doc.*', 'acme', 5 + 15],
    ]);
  });
});
