/**
 * The minute flusher against a real Postgres and both minute stores (memory, real Redis): counts
 * pushed for a minute while it is being flushed are not removed with it unseen — they stay in the
 * store, and the next flush reports them as late; a written minute reaches live screens even when
 * the store fails to let it go.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createMemoryMinuteStore } from '../../src/pipeline/analytics/memory-minute-store.ts';
import { createMinuteFlusher } from '../../src/pipeline/analytics/minute-flusher.ts';
import type { MinuteStore } from '../../src/pipeline/analytics/minute-store.ts';
import { createRedisMinuteStore } from '../../src/pipeline/analytics/redis-minute-store.ts';
import { emptyCounts, MINUTE_MS, type TopicCounts } from '../../src/pipeline/analytics/topic-counts.ts';
import type { RawEventInput } from '../../src/pipeline/events/envelope.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/index.ts';

const topicKey = streamOf({ app: 'app', env: 'env', tenant: 'acme' }, 'orders').key;

function socketEvents(count: number): Map<string, TopicCounts> {
  const counts = emptyCounts();
  counts.eventsSocket = count;
  return new Map([[topicKey, counts]]);
}

const stores = {
  memory: () => Promise.resolve({ store: createMemoryMinuteStore(), close: () => Promise.resolve() }),
  redis: () => {
    const redis = new Redis(testRedisUrl());
    return Promise.resolve({ store: createRedisMinuteStore({ redis, keyPrefix: uniquePrefix() }), close: async () => void (await redis.quit()) });
  },
};

/** A migrated private Postgres and a minute store of `kind`, closed after the test. */
async function flusherGround(kind: keyof typeof stores) {
  const database = await createTestDatabase();
  const db = createPostgresDatabase({ url: database.url, logger: createLogger({ level: 'silent' }) });
  const { store, close } = await stores[kind]();
  onTestFinished(async () => {
    await close();
    await db.close();
    await database.dispose();
  });
  await migrate(db, { logger: createLogger({ level: 'silent' }) });
  return { db, store };
}

describe('analytics minute flusher', () => {
  it.each(['memory', 'redis'] as const)('keeps counts pushed while their minute is flushed, and reports them late (%s store)', async (kind) => {
    const { db, store } = await flusherGround(kind);
    const lines: { msg: string; topics?: number }[] = [];
    const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) } });
    const now = Date.now();
    const minute = now - (now % MINUTE_MS) - MINUTE_MS;
    await store.push({ id: 'first', minute, topics: socketEvents(4) });
    // Another instance's push lands after the flusher has read the minute.
    let racing = true;
    const flushed: MinuteStore = {
      ...store,
      async read(at, accept) {
        const read = await store.read(at, accept);
        if (racing) await store.push({ id: 'late', minute, topics: socketEvents(3) });
        racing = false;
        return read;
      },
    };
    const flusher = createMinuteFlusher({ db, store: flushed, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 86_400_000, now: () => now });

    expect(await flusher.flush()).toEqual([minute]);
    const { rows } = await db.query<{ events_socket: string }>('SELECT events_socket FROM topic_stats_minute WHERE start_time = $1', [new Date(minute)]);
    expect(rows.map((row) => Number(row.events_socket))).toEqual([4]);
    expect(await store.minutes()).toEqual([minute]);
    expect((await store.read(minute)).get(topicKey)?.eventsSocket).toBe(3);
    expect(lines).toEqual([]);

    expect(await flusher.flush()).toEqual([]);
    expect(lines).toMatchObject([{ msg: 'analytics counts arrived after their minute was flushed; dropped', topics: 1 }]);
    expect(await store.minutes()).toEqual([]);
  });

  it.each(['memory', 'redis'] as const)('removes a flushed minute whole when nothing came in between (%s store)', async (kind) => {
    const { db, store } = await flusherGround(kind);
    const now = Date.now();
    const minute = now - (now % MINUTE_MS) - MINUTE_MS;
    const counts = socketEvents(5).get(topicKey)!;
    counts.latency = [2, 0, 1];
    counts.bytes = 900;
    await store.push({ id: 'one', minute, topics: new Map([[topicKey, counts]]) });
    await store.push({ id: 'two', minute, topics: socketEvents(1) });
    const flusher = createMinuteFlusher({ db, store, router: { routeMany: () => Promise.resolve([]) }, logger: createLogger({ level: 'silent' }), graceMs: 0, retentionMs: 86_400_000, now: () => now });
    expect(await flusher.flush()).toEqual([minute]);
    expect(await store.minutes()).toEqual([]);
    expect((await store.read(minute)).size).toBe(0);
  });

  // A Redis blip between the commit and the removal: the next flush finds the minute marked and only
  // removes it, so the minute must have been routed already.
  it.each(['memory', 'redis'] as const)('routes a written minute for live screens once, even when removing it from the store fails (%s store)', async (kind) => {
    const { db, store } = await flusherGround(kind);
    const now = Date.now();
    const minute = now - (now % MINUTE_MS) - MINUTE_MS;
    await store.push({ id: 'one', minute, topics: socketEvents(7) });
    let failRemove = true;
    const failing: MinuteStore = {
      ...store,
      async remove(at, written) {
        if (!failRemove) return store.remove(at, written);
        failRemove = false;
        throw new Error('ECONNRESET');
      },
    };
    const routed: RawEventInput[] = [];
    const flusher = createMinuteFlusher({
      db,
      store: failing,
      router: { routeMany: (events) => (routed.push(...events), Promise.resolve([])) },
      logger: createLogger({ level: 'silent' }),
      graceMs: 0,
      retentionMs: 86_400_000,
      now: () => now,
    });

    await expect(flusher.flush()).rejects.toThrow('ECONNRESET');
    expect(await flusher.flush()).toEqual([]);
    expect(await store.minutes()).toEqual([]);
    const { rows } = await db.query<{ events_socket: string }>('SELECT events_socket FROM topic_stats_minute WHERE start_time = $1', [new Date(minute)]);
    expect(rows.map((row) => Number(row.events_socket))).toEqual([7]);
    expect(routed).toMatchObject([{ topic: 'analytics.minutes', scope: { app: 'app', env: 'env' }, payload: { startTime: new Date(minute).toISOString(), topics: [{ topic: 'orders', tenant: 'acme', eventsSocket: 7 }] } }]);
  });

  // Two flushers: the other found the minute flushed already and removed it whole before this one
  // took out what it wrote.
  it.each(['memory', 'redis'] as const)('takes nothing out of a minute removed meanwhile, leaving no negative counts behind (%s store)', async (kind) => {
    const { store, close } = await stores[kind]();
    try {
      const minute = 60_000_000;
      await store.push({ id: 'one', minute, topics: socketEvents(5) });
      const written = await store.read(minute);
      await store.remove(minute);
      await store.remove(minute, written);
      expect(await store.minutes()).toEqual([]);
      expect((await store.read(minute)).size).toBe(0);
    } finally {
      await close();
    }
  });
});
