/**
 * When the minute store (a private, non-persistent Redis) loses what an instance pushed before the
 * workers wrote it — FLUSHALL, or a restart — the instance's pusher finds the store's generation
 * changed: the minutes that cannot have been written yet are logged at warn and counted in
 * `tributary_analytics_minutes_lost_total`. A store that emptied because the workers wrote
 * everything starts a new generation too, and loses nothing: nothing is counted. The clock of the
 * minutes stands still unless the test moves it.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createAnalyticsPusher } from '../../src/pipeline/analytics/pusher.ts';
import { createAnalyticsRecorder } from '../../src/pipeline/analytics/recorder.ts';
import { createRedisMinuteStore } from '../../src/pipeline/analytics/redis-minute-store.ts';
import { MINUTE_MS } from '../../src/pipeline/analytics/topic-counts.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createRedisClient } from '../../src/redis-clients.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const ORDERS = streamOf({ app: 'shop', env: 'prod', tenant: 'acme' }, 'orders').key;

async function setUp() {
  const redisServer = await startPrivateRedis();
  const logs = captureLogs();
  const logger = createLogger({ level: 'info', destination: logs });
  // The server's command connection: fails fast while Redis is away, never queues.
  const redis = createRedisClient(redisServer.url, 'analytics-store-lost', createLogger({ level: 'silent' }), 'command', { commandTimeoutMs: 1000 });
  onTestFinished(() => void redis.disconnect());
  await waitFor(() => redis.status === 'ready', { timeoutMs: 10_000, message: 'the command connection' });
  const start = Date.now();
  let time = start - (start % MINUTE_MS) + 10_000;
  const now = () => time;
  const store = createRedisMinuteStore({ redis, keyPrefix: uniquePrefix() });
  const recorder = createAnalyticsRecorder({ now });
  const pusher = createAnalyticsPusher({ recorder, store, intervalMs: 5_000, logger, now });
  onTestFinished(() => pusher.close());
  const metrics = createMetrics({ processMetrics: false });
  metrics.sample({ analytics: () => ({ ...recorder.figures.snapshot(), hotTopics: [] }) });
  const publish = async (events: number) => {
    for (let index = 0; index < events; index += 1) recorder.routed(ORDERS, 'socket');
    await pusher.pushNow();
  };
  const minute = time - (time % MINUTE_MS);
  const eventsIn = async (at: number) => (await store.read(at)).get(ORDERS)?.eventsSocket ?? 0;
  const lostWarnings = () => logs.lines.filter((line) => line.level === 40 && /minute store lost/.test(line.msg)).map((line) => line['minutes']);
  const scrapedLost = async () => /^tributary_analytics_minutes_lost_total (\S+)$/m.exec(await metrics.registry.metrics())?.[1];
  return { redisServer, redis, store, recorder, publish, minute, eventsIn, lostWarnings, scrapedLost, advance: (ms: number) => void (time += ms) };
}

describe('analytics counts the minute store loses', () => {
  it('are logged and counted when Redis is flushed before the workers wrote the minute', async () => {
    const { redis, recorder, publish, minute, eventsIn, lostWarnings, scrapedLost, advance } = await setUp();
    await publish(60);
    expect(await eventsIn(minute)).toBe(60);

    advance(6_000);
    await redis.flushall();
    await publish(15);

    // What the workers will write of the minute: the 15 pushed since.
    expect(await eventsIn(minute)).toBe(15);
    expect(recorder.figures.snapshot().minutesLost).toBe(1);
    expect(lostWarnings()).toEqual([[new Date(minute).toISOString()]]);
    expect(await scrapedLost()).toBe('1');
  });

  it('are logged and counted when Redis restarts empty, the minute having ended while it was away', { timeout: 30_000 }, async () => {
    const { redisServer, redis, recorder, publish, minute, eventsIn, lostWarnings, advance } = await setUp();
    await publish(60);

    advance(2_000);
    await redisServer.stop();
    // Kept by the pusher while the store fails, then pushed into the new store.
    await publish(5);
    advance(2 * MINUTE_MS);
    await redisServer.start();
    await waitFor(() => redis.status === 'ready', { timeoutMs: 10_000, message: 'the command connection after the restart' });
    await publish(1);

    expect(await eventsIn(minute)).toBe(5);
    expect(recorder.figures.snapshot().minutesLost).toBe(1);
    expect(lostWarnings()).toEqual([[new Date(minute).toISOString()]]);
  });

  it('counts nothing when the store emptied because every minute in it was written', async () => {
    const { store, recorder, publish, minute, lostWarnings, advance } = await setUp();
    await publish(3);
    // The workers wrote the minute, after its end and their grace: the store holds no minute now.
    advance(MINUTE_MS + 10_000);
    await store.remove(minute, await store.read(minute));
    expect(await store.minutes()).toEqual([]);

    await publish(2);

    expect(await store.minutes()).toEqual([minute + MINUTE_MS]);
    expect(recorder.figures.snapshot().minutesLost).toBe(0);
    expect(lostWarnings()).toEqual([]);
  });
});
