/**
 * The minute stores (memory, real Redis) with several environments in one minute: a reader of one
 * environment gets — and, in Redis, is sent — that environment's counts only, while the flusher
 * still writes and removes every environment of the minute. An environment's overflow row is one of
 * its topics; the row of no environment (what an older version pushed) is still flushed.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createAnalyticsReader } from '../../src/pipeline/analytics/analytics-reader.ts';
import { createMemoryMinuteStore } from '../../src/pipeline/analytics/memory-minute-store.ts';
import { createMinuteFlusher } from '../../src/pipeline/analytics/minute-flusher.ts';
import type { MinuteStore } from '../../src/pipeline/analytics/minute-store.ts';
import { createRedisMinuteStore } from '../../src/pipeline/analytics/redis-minute-store.ts';
import { emptyCounts, environmentKey, MINUTE_MS, OTHER_TOPIC_KEY, overflowKeyOf, type TopicCounts } from '../../src/pipeline/analytics/topic-counts.ts';
import { parseStreamKey, streamOf } from '../../src/pipeline/stream.ts';
import { createTestDatabase, deferred, testRedisUrl, uniquePrefix } from '../helpers/index.ts';

const logger = createLogger({ level: 'silent' });

function socketEvents(count: number): TopicCounts {
  const counts = emptyCounts();
  counts.eventsSocket = count;
  return counts;
}

const mine = streamOf({ app: 'small', env: 'prod', tenant: 'acme' }, 'mine').key;
const neighbour = streamOf({ app: 'small', env: 'prod', tenant: 'globex' }, 'theirs').key;
const staging = streamOf({ app: 'small', env: 'staging', tenant: 'acme' }, 'mine').key;

/** `topics` topics of app "big" across 10 tenants, plus one topic of each small environment, and the overflow row. */
function minuteOfTwoApps(topics: number): Map<string, TopicCounts> {
  const batch = new Map<string, TopicCounts>();
  for (let index = 0; index < topics; index += 1) batch.set(streamOf({ app: 'big', env: 'prod', tenant: `t${index % 10}` }, `orders.${index}`).key, socketEvents(3));
  batch.set(mine, socketEvents(1));
  batch.set(neighbour, socketEvents(2));
  batch.set(staging, socketEvents(4));
  batch.set(OTHER_TOPIC_KEY, socketEvents(5));
  return batch;
}

function openStore(kind: 'memory' | 'redis'): { store: MinuteStore; redis?: Redis; prefix: string } {
  if (kind === 'memory') return { store: createMemoryMinuteStore(), prefix: '' };
  const redis = new Redis(testRedisUrl());
  onTestFinished(async () => void (await redis.quit()));
  const prefix = uniquePrefix();
  return { store: createRedisMinuteStore({ redis, keyPrefix: prefix }), redis, prefix };
}

async function openDatabase() {
  const database = await createTestDatabase();
  const db = createPostgresDatabase({ url: database.url, logger });
  onTestFinished(async () => (await db.close(), await database.dispose()));
  await migrate(db, { logger });
  return db;
}

/** Every key under `prefix` (SCAN), sorted. */
async function keysOf(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys.sort();
}

describe('analytics minute stores', () => {
  it.each(['memory', 'redis'] as const)('reads one environment of a minute, narrowed further by topic key (%s store)', async (kind) => {
    const { store } = openStore(kind);
    const minute = 60_000_000;
    await store.push({ id: 'one', minute, topics: minuteOfTwoApps(20) });
    await store.push({ id: 'two', minute, topics: new Map([[mine, socketEvents(6)]]) });

    const environment = await store.read(minute, { app: 'small', env: 'prod' });
    expect([...environment].map(([key, counts]) => [key, counts.eventsSocket]).sort()).toEqual([
      [mine, 7],
      [neighbour, 2],
    ]);
    const tenant = await store.read(minute, { app: 'small', env: 'prod', accept: (key) => key === mine });
    expect([...tenant.keys()]).toEqual([mine]);
    expect((await store.read(minute, { app: 'nobody', env: 'prod' })).size).toBe(0);
    // The flusher's read: every environment, and the overflow row.
    expect((await store.read(minute)).size).toBe(20 + 4);
  });

  it('answers a tenant admin\'s hot topics from Redis without reading a key that holds another environment\'s counts', async () => {
    const db = await openDatabase();
    const { store, redis, prefix } = openStore('redis');
    const now = Date.now();
    const current = now - (now % MINUTE_MS);
    for (const minute of [current - MINUTE_MS, current]) await store.push({ id: `batch-${minute}`, minute, topics: minuteOfTwoApps(500) });

    // MONITOR (another connection) sees every command the reader sends, in order; a marker
    // command after the read tells when all of them are in.
    const monitor = await redis!.monitor();
    onTestFinished(() => monitor.disconnect());
    const marker = `${prefix}end-of-read`;
    const commands: string[][] = [];
    const seenMarker = deferred();
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args.includes(marker)) seenMarker.resolve();
      else if (args.some((arg) => arg.startsWith(prefix))) commands.push(args);
    });
    const reader = createAnalyticsReader({ db, store, now: () => now });
    const hot = await reader.hotTopics({ scope: { app: 'small', env: 'prod' }, tenant: 'acme', windowMs: 15 * MINUTE_MS, by: 'events', limit: 10 });
    await redis!.echo(marker);
    await seenMarker.promise;

    expect(hot.map((entry) => [entry.topic, entry.tenant, entry.counts.eventsSocket])).toEqual([['mine', 'acme', 2]]);
    expect(commands.length).toBeGreaterThan(0);
    const touched = [...new Set(commands.flatMap((args) => args.filter((arg) => arg.startsWith(prefix))))];
    const foreign: string[] = [];
    for (const key of touched) {
      if ((await redis!.type(key)) !== 'hash') continue;
      for (const field of await redis!.hkeys(key)) {
        const parsed = parseStreamKey(field.slice(field.indexOf('|') + 1));
        if (parsed?.scope.app !== 'small' || parsed.scope.env !== 'prod') foreign.push(`${key} ${field}`);
      }
    }
    expect(foreign.slice(0, 3)).toEqual([]);
  });

  it.each(['memory', 'redis'] as const)('flushes every environment of a minute, keeps what was pushed meanwhile, then holds nothing of it (%s store)', async (kind) => {
    const db = await openDatabase();
    const { store, redis, prefix } = openStore(kind);
    const now = Date.now();
    const minute = now - (now % MINUTE_MS) - MINUTE_MS;
    await store.push({ id: 'first', minute, topics: minuteOfTwoApps(30) });
    // Another instance's push for one environment lands after the flusher has read the minute.
    let racing = true;
    const flushed: MinuteStore = {
      ...store,
      async read(at, environment) {
        const read = await store.read(at, environment);
        if (racing) await store.push({ id: 'late', minute, topics: new Map([[staging, socketEvents(9)]]) });
        racing = false;
        return read;
      },
    };
    const flusher = createMinuteFlusher({ db, store: flushed, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 86_400_000, now: () => now });

    expect(await flusher.flush()).toEqual([minute]);
    const { rows } = await db.query<{ app: string; env: string; events: number }>(
      'SELECT app, env, sum(events_socket)::int AS events FROM topic_stats_minute WHERE start_time = $1 GROUP BY app, env ORDER BY app, env',
      [new Date(minute)],
    );
    expect(rows).toEqual([
      { app: '', env: '', events: 5 },
      { app: 'big', env: 'prod', events: 90 },
      { app: 'small', env: 'prod', events: 3 },
      { app: 'small', env: 'staging', events: 4 },
    ]);
    expect(await store.minutes()).toEqual([minute]);
    expect([...(await store.read(minute))].map(([key, counts]) => [key, counts.eventsSocket])).toEqual([[staging, 9]]);

    expect(await flusher.flush()).toEqual([]);
    expect(await store.minutes()).toEqual([]);
    expect((await store.read(minute)).size).toBe(0);
    // Only the batch markers are left (they expire): no hash or index of the minute.
    if (redis) expect((await keysOf(redis, prefix)).filter((key) => !key.includes(':batch:'))).toEqual([]);
  });
  it.each(['memory', 'redis'] as const)(
    'keeps an environment’s overflow row in that environment — its hot topics show it, flushed or not — and still flushes the row of no environment (%s store)',
    async (kind) => {
      const db = await openDatabase();
      const { store } = openStore(kind);
      const now = Date.now();
      const minute = now - (now % MINUTE_MS) - MINUTE_MS;
      const overflow = overflowKeyOf(environmentKey('small', 'prod'));
      await store.push({ id: 'minute', minute, topics: new Map([[mine, socketEvents(1)], [overflow, socketEvents(9)], [staging, socketEvents(4)], [OTHER_TOPIC_KEY, socketEvents(5)]]) });
      const reader = createAnalyticsReader({ db, store, now: () => now, hotTopicsCacheMs: 0 });
      const hot = async (env: string, tenant?: string) =>
        (await reader.hotTopics({ scope: { app: 'small', env }, tenant, windowMs: 15 * MINUTE_MS, by: 'events', limit: 10 })).map((entry) => [entry.topic, entry.tenant, entry.counts.eventsSocket]);
      const environmentWide = [['~other', null, 9], ['mine', 'acme', 1]];
      expect(await hot('prod')).toEqual(environmentWide);
      // Application-wide, like the environment's other events of no tenant: not a tenant's, nor another environment's.
      expect(await hot('prod', 'acme')).toEqual([['mine', 'acme', 1]]);
      expect(await hot('staging')).toEqual([['mine', 'acme', 4]]);

      const flusher = createMinuteFlusher({ db, store, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 86_400_000, now: () => now });
      expect(await flusher.flush()).toEqual([minute]);
      const { rows } = await db.query<{ app: string; env: string; tenant: string; events: number }>(
        "SELECT app, env, tenant, events_socket::int AS events FROM topic_stats_minute WHERE topic = '~other' ORDER BY app, env",
      );
      expect(rows).toEqual([
        { app: '', env: '', tenant: '', events: 5 },
        { app: 'small', env: 'prod', tenant: '', events: 9 },
      ]);
      expect(await hot('prod')).toEqual(environmentWide);
    },
  );
});
