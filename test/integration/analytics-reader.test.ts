/**
 * The hot-topics reader against a real Postgres while a worker flushes: a minute flushed between
 * the reader's look at Postgres and its look at the minute store must still be counted, once.
 */
import { describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createAnalyticsReader } from '../../src/pipeline/analytics/analytics-reader.ts';
import { createMemoryMinuteStore } from '../../src/pipeline/analytics/memory-minute-store.ts';
import { createMinuteFlusher } from '../../src/pipeline/analytics/minute-flusher.ts';
import type { MinuteStore } from '../../src/pipeline/analytics/minute-store.ts';
import { emptyCounts, MINUTE_MS } from '../../src/pipeline/analytics/topic-counts.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createTestDatabase } from '../helpers/index.ts';

const logger = createLogger({ level: 'silent' });
const scope = { app: 'app', env: 'env', tenant: 'acme' };

describe('analytics reader', () => {
  // A worker's flush of the closed minute (written to Postgres, then removed from the store) lands
  // at one point of the reader's work: as it lists the store's minutes, or once it has read one.
  it.each(['as the store is listed', 'after the store is read'] as const)('counts a minute flushed while it reads exactly once: flushed %s', async (when) => {
    const database = await createTestDatabase();
    const db = createPostgresDatabase({ url: database.url, logger });
    try {
      await migrate(db, { logger });
      const now = Date.now();
      const closedMinute = now - (now % MINUTE_MS) - MINUTE_MS;
      const memory = createMemoryMinuteStore();
      const counts = emptyCounts();
      counts.eventsSocket = 4;
      await memory.push({ id: 'batch-1', minute: closedMinute, topics: new Map([[streamOf(scope, 'orders').key, counts]]) });
      const flusher = createMinuteFlusher({ db, store: memory, router: { routeMany: () => Promise.resolve([]) }, logger, graceMs: 0, retentionMs: 86_400_000, now: () => now });
      let flushes = 0;
      const flushOnce = async () => {
        if (flushes > 0) return;
        flushes += 1;
        expect(await flusher.flush()).toEqual([closedMinute]);
      };
      const racing: MinuteStore = {
        ...memory,
        async minutes() {
          if (when === 'as the store is listed') await flushOnce();
          return memory.minutes();
        },
        async read(minute, accept) {
          const read = await memory.read(minute, accept);
          if (when === 'after the store is read') await flushOnce();
          return read;
        },
      };
      const reader = createAnalyticsReader({ db, store: racing, now: () => now, hotTopicsCacheMs: 0 });
      const hot = await reader.hotTopics({ scope, tenant: undefined, windowMs: 15 * MINUTE_MS, by: 'events', limit: 10 });
      expect(flushes).toBe(1);
      expect(hot.map((entry) => [entry.topic, entry.tenant, entry.counts.eventsSocket])).toEqual([['orders', 'acme', 4]]);
      // Afterwards the minute is only in Postgres: still counted once.
      const again = await reader.hotTopics({ scope, tenant: undefined, windowMs: 15 * MINUTE_MS, by: 'events', limit: 10 });
      expect(again.map((entry) => entry.counts.eventsSocket)).toEqual([4]);
    } finally {
      await db.close();
      await database.dispose();
    }
  });
});
