/**
 * The minute flusher against a real Postgres when a row is refused for what it holds (a tenant
 * with U+0000, which Postgres text cannot store): the row is set aside with an error log and a
 * count, its minute's other rows and every later minute are written; an outage (a lost
 * connection) still stops the flush, and the next flush writes every minute, in order.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createMemoryMinuteStore } from '../../src/pipeline/analytics/memory-minute-store.ts';
import { createMinuteFlusher } from '../../src/pipeline/analytics/minute-flusher.ts';
import { emptyCounts, MINUTE_MS, type TopicCounts } from '../../src/pipeline/analytics/topic-counts.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createTestDatabase } from '../helpers/index.ts';

function socketEvents(entries: readonly (readonly [tenant: string, count: number])[]): Map<string, TopicCounts> {
  return new Map(
    entries.map(([tenant, count]) => {
      const counts = emptyCounts();
      counts.eventsSocket = count;
      return [streamOf({ app: 'app', env: 'env', tenant }, 'orders').key, counts] as const;
    }),
  );
}

async function migratedDatabase(): Promise<Database> {
  const database = await createTestDatabase();
  const db = createPostgresDatabase({ url: database.url, logger: createLogger({ level: 'silent' }) });
  onTestFinished(async () => {
    await db.close();
    await database.dispose();
  });
  await migrate(db, { logger: createLogger({ level: 'silent' }) });
  return db;
}

async function minuteRows(db: Database): Promise<string[]> {
  const { rows } = await db.query<{ start_time: Date; tenant: string; events_socket: string }>(
    'SELECT start_time, tenant, events_socket FROM topic_stats_minute ORDER BY start_time, tenant',
  );
  return rows.map((row) => `${row.start_time.toISOString()} ${row.tenant} ${row.events_socket}`);
}

function capturedLogger() {
  const lines: { level: number; msg: string; tenant?: string; sqlState?: string }[] = [];
  const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) } });
  return { logger, lines };
}

describe('analytics minute flusher and rows Postgres refuses', () => {
  it('sets a refused row aside and writes the rest of its minute and every later minute', async () => {
    const db = await migratedDatabase();
    const store = createMemoryMinuteStore();
    const { logger, lines } = capturedLogger();
    const now = Date.now();
    const second = now - (now % MINUTE_MS) - MINUTE_MS;
    const first = second - MINUTE_MS;
    await store.push({ id: 'a', minute: first, topics: socketEvents([['acme', 4], ['x\u0000y', 2]]) });
    await store.push({ id: 'b', minute: second, topics: socketEvents([['acme', 5], ['globex', 1]]) });
    const flusher = createMinuteFlusher({ db, store, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 86_400_000, now: () => now });

    expect(await flusher.flush()).toEqual([first, second]);

    const at = (minute: number) => new Date(minute).toISOString();
    expect(await minuteRows(db)).toEqual([`${at(first)} acme 4`, `${at(second)} acme 5`, `${at(second)} globex 1`]);
    expect(await store.minutes()).toEqual([]);
    expect(flusher.setAsideRows).toBe(1);
    expect(lines).toMatchObject([{ level: 50, tenant: 'x\u0000y', sqlState: '22021' }]);
    const { rows: hours } = await db.query<{ tenant: string }>('SELECT tenant FROM topic_stats_hour ORDER BY tenant');
    expect([...new Set(hours.map((row) => row.tenant))]).toEqual(['acme', 'globex']);
  });

  it('stops at an outage and writes every minute, in order, once the database answers again', async () => {
    const db = await migratedDatabase();
    const store = createMemoryMinuteStore();
    const now = Date.now();
    const second = now - (now % MINUTE_MS) - MINUTE_MS;
    const first = second - MINUTE_MS;
    await store.push({ id: 'a', minute: first, topics: socketEvents([['acme', 4]]) });
    await store.push({ id: 'b', minute: second, topics: socketEvents([['acme', 5]]) });
    let down = true;
    const lost = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const flaky: Database = { ...db, transaction: (work) => (down ? Promise.reject(lost) : db.transaction(work)) };
    const { logger } = capturedLogger();
    const flusher = createMinuteFlusher({ db: flaky, store, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 86_400_000, now: () => now });

    await expect(flusher.flush()).rejects.toBe(lost);
    expect(await store.minutes()).toEqual([first, second]);
    expect(flusher.setAsideRows).toBe(0);

    down = false;
    expect(await flusher.flush()).toEqual([first, second]);
    expect(await minuteRows(db)).toEqual([`${new Date(first).toISOString()} acme 4`, `${new Date(second).toISOString()} acme 5`]);
  });
});
