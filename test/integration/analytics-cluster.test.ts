/**
 * Per-topic analytics across a cluster: two servers and two workers sharing Redis and the platform
 * database, counting on every instance, merged without double counting, flushed once, rolled up.
 * Time windows close when the test moves the shared clock forward, never by waiting.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { hotTopics, publishToTopics, sourceCount, testClock, topicStats, type TestClock } from '../helpers/analytics.ts';
import { publishMany, seqPayloads, subscribeEvents, takeEvents, waitForSubscribers } from '../helpers/events.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix, waitFor } from '../helpers/index.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const FLUSH = { timeoutMs: 20_000, intervalMs: 100 };

interface Cluster {
  readonly servers: readonly [TestServer, TestServer];
  readonly workers: readonly [TestServer, TestServer];
  readonly clock: TestClock;
  readonly databaseUrl: string;
}

async function startCluster(): Promise<Cluster> {
  const database = await createTestDatabase();
  const clock = testClock();
  // Development mode (no JWT): every caller is an admin of default/default, tenant "default".
  const shared = { DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), ANALYTICS_FLUSH_SECONDS: '1' };
  const options = { now: clock.now };
  const [first, second] = await Promise.all([
    startTestServer({ ...shared, TRIBUTARY_ROLE: 'server' }, options),
    startTestServer({ ...shared, TRIBUTARY_ROLE: 'server' }, options),
  ]);
  const [workerA, workerB] = await Promise.all([
    startTestServer({ ...shared, TRIBUTARY_ROLE: 'workers' }, options),
    startTestServer({ ...shared, TRIBUTARY_ROLE: 'workers' }, options),
  ]);
  return { servers: [first, second], workers: [workerA, workerB], clock, databaseUrl: database.url };
}

async function query<R>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as R[];
  } finally {
    await client.end();
  }
}

/** The first truthy answer of `probe`, polled until a flush makes it so. */
async function until<T>(probe: () => Promise<T | undefined | false>): Promise<T> {
  return (await waitFor(probe, FLUSH)) as T;
}

/** Waits until every instance's counts for `topic` are in the cluster's store (hot topics read it). */
async function waitUntilPushed(server: TestServer, topic: string, events: number, deliveries: number): Promise<void> {
  await waitFor(
    async () => {
      const hot = await hotTopics(server, { window: 'ONE_MINUTE', by: 'EVENTS', limit: 100 });
      const entry = hot.find((candidate) => candidate.topic === topic);
      return entry?.count === events && entry.deliveries === deliveries;
    },
    { ...FLUSH, message: `counts of ${topic} never reached the cluster` },
  );
}

describe('analytics across a cluster', () => {
  it('counts a topic published on two servers exactly, flushes each minute once with two workers, and rolls it up', { timeout: 120_000 }, async () => {
    const { servers, clock, databaseUrl } = await startCluster();
    const [first, second] = servers;
    // One subscriber on each server: each event is delivered twice, once per server.
    const watchers = await Promise.all(servers.map((server) => openAcknowledgedSocket(server.wsUrl)));
    watchers.forEach((watcher) => subscribeEvents(watcher, 's', { topic: 'orders' }));
    await Promise.all(servers.map((server) => waitForSubscribers(server, 1)));
    const from = new Date(clock.now() - 3_600_000);

    await publishMany(first, 'orders', seqPayloads(1, 5));
    await publishMany(second, 'orders', seqPayloads(6, 8));
    await Promise.all(watchers.map((watcher) => takeEvents(watcher, 's', 8)));
    await waitUntilPushed(first, 'orders', 8, 16);

    clock.nextMinutes();
    const minute = await until(async () => {
      const buckets = await topicStats(second, { topic: 'orders', granularity: 'MINUTE', from, to: new Date(clock.now()) });
      return buckets[0];
    });
    expect(minute).toMatchObject({ topic: 'orders', window: '1m', count: 8, deliveries: 16, resyncs: 0, webhookDeliveries: 0 });
    expect(sourceCount(minute, 'socket')).toBe(8);
    expect(minute.bytes).toBeGreaterThan(0);
    expect(minute.latencyP50Ms).not.toBeNull();
    expect(minute.latencyP99Ms).toBeGreaterThanOrEqual(minute.latencyP50Ms!);
    expect(new Date(minute.endTime).getTime() - new Date(minute.startTime).getTime()).toBe(60_000);

    // Written once, whichever worker came first; its data left Redis.
    const flushedRows = await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM topic_stats_flushed WHERE start_time = $1', [minute.startTime]);
    expect(flushedRows[0]!.n).toBe(1);
    const rows = await query<{ events: number }>(databaseUrl, "SELECT events_socket::int AS events FROM topic_stats_minute WHERE topic = 'orders'");
    expect(rows).toEqual([{ events: 8 }]);

    // A second minute: hours and days are the sums of their minutes (the two may straddle an hour).
    await publishMany(second, 'orders', seqPayloads(9, 10));
    await Promise.all(watchers.map((watcher) => takeEvents(watcher, 's', 2)));
    await waitUntilPushed(first, 'orders', 2, 4);
    clock.nextMinutes();
    const minutes = await until(async () => {
      const buckets = await topicStats(first, { topic: 'orders', granularity: 'MINUTE', from, to: new Date(clock.now()) });
      return buckets.length === 2 && buckets;
    });
    const to = new Date(clock.now() + 86_400_000);
    expect(minutes.map((bucket) => bucket.count)).toEqual([8, 2]);
    const sum = (buckets: readonly { count: number; deliveries: number }[]) =>
      buckets.reduce((total, bucket) => ({ count: total.count + bucket.count, deliveries: total.deliveries + bucket.deliveries }), { count: 0, deliveries: 0 });
    const hours = await topicStats(first, { topic: 'orders', granularity: 'HOUR', from: new Date(from.getTime() - 3_600_000), to });
    const days = await topicStats(first, { topic: 'orders', granularity: 'DAY', from: new Date(from.getTime() - 86_400_000), to });
    expect(sum(hours)).toEqual({ count: 10, deliveries: 20 });
    expect(sum(days)).toEqual({ count: 10, deliveries: 20 });
    expect(hours.every((bucket) => bucket.window === '1h' && bucket.latencyP99Ms !== null)).toBe(true);
    expect(days.map((bucket) => bucket.window)).toEqual(['1d'].concat(days.length > 1 ? ['1d'] : []));
  });

  it('ranks hot topics cluster-wide by events and by fan-out, flushed and pending minutes together', { timeout: 120_000 }, async () => {
    const { servers, clock } = await startCluster();
    const [first, second] = servers;
    const watchers = await Promise.all([openAcknowledgedSocket(first.wsUrl), openAcknowledgedSocket(second.wsUrl), openAcknowledgedSocket(second.wsUrl)]);
    watchers.forEach((watcher) => subscribeEvents(watcher, 's', { topic: 'cold' }));
    await waitForSubscribers(first, 1);
    await waitForSubscribers(second, 2);

    // Flushed minute: hot 4, warm 2.
    await publishToTopics(first, ['hot', 'hot', 'warm']);
    await publishToTopics(second, ['hot', 'hot', 'warm']);
    await waitUntilPushed(second, 'warm', 2, 0);
    clock.nextMinutes(1);
    // Pending (current) minute: cold 1 (three subscribers), hot 1.
    await publishToTopics(second, ['cold', 'hot']);
    await Promise.all(watchers.map((watcher) => takeEvents(watcher, 's', 1)));
    await waitUntilPushed(first, 'cold', 1, 3);

    const byEvents = await hotTopics(first, { window: 'FIFTEEN_MINUTES', by: 'EVENTS' });
    expect(byEvents.map((entry) => [entry.topic, entry.count])).toEqual([
      ['hot', 5],
      ['warm', 2],
      ['cold', 1],
    ]);
    expect(byEvents.every((entry) => entry.tenant === 'default' && entry.eventsPerSecond > 0)).toBe(true);
    const byFanout = await hotTopics(second, { window: 'ONE_HOUR', by: 'FANOUT', limit: 5 });
    expect(byFanout.map((entry) => [entry.topic, entry.deliveries])).toEqual([['cold', 3]]);
    const byLatency = await hotTopics(second, { window: 'ONE_HOUR', by: 'LATENCY_P99' });
    expect(byLatency.map((entry) => entry.topic)).toEqual(['cold']);
    expect(await hotTopics(first, { window: 'ONE_HOUR', by: 'EVENTS', limit: 1 })).toHaveLength(1);

    // The same over REST, with the same (development) principal.
    const response = await fetch(`${first.url}/api/metrics/hot-topics?window=15m&by=events&limit=2`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { window: string; by: string; topics: { topic: string; count: number }[] };
    expect(body).toMatchObject({ window: '15m', by: 'events' });
    expect(body.topics.map((entry) => [entry.topic, entry.count])).toEqual([
      ['hot', 5],
      ['warm', 2],
    ]);
  });
});
