/**
 * Analytics without Redis (the embedded default: PGlite, in-memory store, workers in-process):
 * counts flushed to the embedded database and pushed live to `statsUpdates` subscribers, and what
 * a graceful restart keeps.
 */
import { rm } from 'node:fs/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BUCKET_FIELDS, hotTopics, sourceCount, testClock, topicStats, type StatsBucket } from '../helpers/analytics.ts';
import { publishMany, seqPayloads, subscribeEvents, takeEvents, waitForSubscribers } from '../helpers/events.ts';
import { waitFor } from '../helpers/index.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';
import { pgliteDataDir } from '../helpers/pglite-template.ts';

describe('analytics in the embedded mode', () => {
  it('flushes a minute to the embedded database and pushes it to statsUpdates', { timeout: 90_000 }, async () => {
    const clock = testClock();
    const server = await startTestServer({ ANALYTICS_FLUSH_SECONDS: '1' }, { embedded: true, now: clock.now });
    const from = new Date(clock.now() - 60_000);
    // The development principal is an admin of tenant "default": it passes its tenant.
    const screen = await openAcknowledgedSocket(server.wsUrl);
    screen.send({ id: 'stats', type: 'subscribe', payload: { query: `subscription { statsUpdates(topic: "orders", tenant: "default") { ${BUCKET_FIELDS} } }` } });
    const watcher = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(watcher, 'e', { topic: 'orders' });
    await waitForSubscribers(server, 2);

    await publishMany(server, 'orders', seqPayloads(1, 3));
    await takeEvents(watcher, 'e', 3);
    // Found by name: the development principal sees the environment's application-wide topics too.
    await waitFor(async () => (await hotTopics(server, { window: 'ONE_MINUTE', by: 'EVENTS' })).find((entry) => entry.topic === 'orders')?.count === 3, { timeoutMs: 10_000 });
    clock.nextMinutes();

    const update = await screen.nextMessage();
    expect(update).toMatchObject({ id: 'stats', type: 'next' });
    const bucket = (update.payload as { data: { statsUpdates: StatsBucket } }).data.statsUpdates;
    expect(bucket).toMatchObject({ topic: 'orders', window: '1m', count: 3, deliveries: 3, resyncs: 0 });
    expect(sourceCount(bucket, 'socket')).toBe(3);
    expect(bucket.latencyP99Ms).not.toBeNull();

    const stored = await topicStats(server, { topic: 'orders', granularity: 'MINUTE', from, to: new Date(clock.now()) });
    expect(stored).toEqual([bucket]);
    const days = await topicStats(server, { topic: 'orders', granularity: 'DAY', from: new Date(from.getTime() - 86_400_000), to: new Date(clock.now() + 86_400_000) });
    expect(days.map((day) => [day.window, day.count, day.deliveries])).toEqual([['1d', 3, 3]]);
  });

  // The minute store is the process's memory: what is not in the database when the process stops
  // is gone. The worker's interval is longer than the test, so only the shutdown can write.
  it('writes every minute that has ended at a graceful shutdown, so the restarted process has it', { timeout: 90_000 }, async () => {
    const dataDir = await pgliteDataDir();
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    const clock = testClock();
    const env = { DATA_DIR: dataDir, ANALYTICS_FLUSH_SECONDS: '3600' };
    const from = new Date(clock.now() - 60_000);
    const first = await startTestServer(env, { embedded: true, now: clock.now });
    await publishMany(first, 'orders', seqPayloads(1, 3));
    // The minute has ended, but not its grace: no worker would have taken it before the shutdown.
    clock.nextMinutes(1);
    await publishMany(first, 'orders', seqPayloads(4, 5));
    await first.dispose();

    const second = await startTestServer(env, { embedded: true, now: clock.now });
    const stored = await topicStats(second, { topic: 'orders', granularity: 'MINUTE', from, to: new Date(clock.now() + 60_000) });
    // The minute the process stopped in is not written (docs/operations.md): a restart within it
    // would find it flushed and drop what it counts there.
    expect(stored.map((bucket) => [bucket.count, sourceCount(bucket, 'socket')])).toEqual([[3, 3]]);
  });
});
