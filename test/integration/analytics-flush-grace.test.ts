/**
 * The workers' flush waits for the last push any instance may make for a minute, whatever the
 * workers' own ANALYTICS_FLUSH_SECONDS: a server keeps the default (60 s, so it pushes every 5 s)
 * while the workers flush every second. The grace was the workers' own push interval + 2 s (3 s):
 * a server's push 3–5 s after the minute's end found the minute flushed and was dropped (the
 * review's 1,235 publishes counted 1,230). Real Postgres, the memory minute store, a clock the test
 * moves (no waiting).
 */
import { expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createMemoryMinuteStore } from '../../src/pipeline/analytics/memory-minute-store.ts';
import { createMinuteFlusher } from '../../src/pipeline/analytics/minute-flusher.ts';
import { emptyCounts, MINUTE_MS, type TopicCounts } from '../../src/pipeline/analytics/topic-counts.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createTestDatabase } from '../helpers/index.ts';

const logger = createLogger({ level: 'silent' });
const topicKey = streamOf({ app: 'app', env: 'env', tenant: 'acme' }, 'orders.steady').key;

function socketEvents(count: number): Map<string, TopicCounts> {
  const counts = emptyCounts();
  counts.eventsSocket = count;
  return new Map([[topicKey, counts]]);
}

it('counts a server’s last push of a minute, one push interval after its end, when the workers flush every second', async () => {
  const database = await createTestDatabase({ migrated: true });
  const db = createPostgresDatabase({ url: database.url, logger });
  onTestFinished(() => db.close());
  const server = loadConfig({ TRIBUTARY_ROLE: 'server', DATABASE_URL: database.url, REDIS_URL: 'redis://127.0.0.1:1' }).analytics;
  const workers = loadConfig({ TRIBUTARY_ROLE: 'workers', DATABASE_URL: database.url, REDIS_URL: 'redis://127.0.0.1:1', ANALYTICS_FLUSH_SECONDS: '1' }).analytics;
  expect(server.pushIntervalMs).toBe(5_000);

  const store = createMemoryMinuteStore();
  const minute = Date.UTC(2030, 0, 1, 10, 0);
  const end = minute + MINUTE_MS;
  let time = end;
  const flusher = createMinuteFlusher({ db, store, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: workers.flushGraceMs, retentionMs: workers.retentionMs, now: () => time });

  // The server's pushes of the minute: one during it, the last a push interval after its end,
  // holding what was counted in its last seconds. The workers flush every second meanwhile.
  await store.push({ id: 'during', minute, topics: socketEvents(1_000) });
  let pushedLast = false;
  const written: number[] = [];
  for (time = end; time <= end + 10_000; time += workers.flushSeconds * 1000) {
    if (!pushedLast && time >= end + server.pushIntervalMs) {
      await store.push({ id: 'last', minute, topics: socketEvents(235) });
      pushedLast = true;
    }
    written.push(...(await flusher.flush()));
  }
  expect(written).toEqual([minute]);
  const { rows } = await db.query<{ events: number }>('SELECT events_socket::float8 AS events FROM topic_stats_minute WHERE start_time = $1', [new Date(minute)]);
  expect(rows.map((row) => row.events)).toEqual([1_235]);
});
