/**
 * The routing tap against a real Postgres and the BullMQ scheduler on a Redis of the test's own,
 * whose writes are paused (`CLIENT PAUSE … WRITE`): a job add then gets no answer. The next
 * events' deliveries are stored meanwhile — only the inserts wait for one another, not an earlier
 * batch's job add — and each `deliver` still ends only once its own lane heads are queued.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createBullmqScheduler } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import { createDeliveryStatistics } from '../../src/pipeline/webhooks/delivery-statistics.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createWebhookTap } from '../../src/pipeline/webhooks/webhook-tap.ts';
import { createDeliveryFixture, placedEvent } from '../helpers/delivery-fixture.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
/** Longer than the test may take: the endpoint cache is read once; Redis stays paused until unpaused. */
const NEVER_MS = 600_000;

describe('the webhook tap', () => {
  it('stores the next events while an earlier batch’s job add gets no answer, and answers each once its own heads are queued', { timeout: 60_000 }, async () => {
    const fixture = await createDeliveryFixture();
    onTestFinished(() => fixture.dispose());
    const { db } = fixture;
    const redis = await startPrivateRedis();
    const scheduler = createBullmqScheduler({ redisUrl: redis.url, prefix: uniquePrefix(), logger });
    onTestFinished(() => scheduler.close());
    const admin = new Redis(redis.url);
    onTestFinished(async () => void (await admin.quit()));
    const endpoints = await createEndpointCache({ db, refreshMs: NEVER_MS, logger });
    onTestFinished(() => endpoints.close());
    const statistics = createDeliveryStatistics({ db, logger });
    onTestFinished(() => statistics.close());
    const tap = createWebhookTap({ db, endpoints, scheduler, statistics, logger, maxBodyBytes: 65_536 });
    const storedEvents = async () => (await db.query<{ event_id: string }>(`SELECT event_id FROM webhook_deliveries ORDER BY id`)).rows.map((row) => row.event_id);

    // The queue answers; then Redis takes no more writes (job adds wait) until it is unpaused.
    expect(await scheduler.waiting()).toBe(0);
    await admin.call('CLIENT', 'PAUSE', String(NEVER_MS), 'WRITE');
    onTestFinished(async () => void (await admin.call('CLIENT', 'UNPAUSE')));
    const done: string[] = [];
    const first = tap.deliver([placedEvent('evt_first')]).then(() => done.push('evt_first'));
    await waitFor(async () => (await storedEvents()).length === 1, { message: 'the first event’s delivery stored' });
    // Another entity's event, routed while the first's job add waits for Redis.
    const second = tap.deliver([placedEvent('evt_second')]).then(() => done.push('evt_second'));
    await waitFor(async () => (await storedEvents()).length === 2, { message: 'the second event’s delivery stored while the first’s job add waits' });
    expect(await storedEvents()).toEqual(['evt_first', 'evt_second']);
    expect(done).toEqual([]);

    await admin.call('CLIENT', 'UNPAUSE');
    await Promise.all([first, second]);
    expect(done.sort()).toEqual(['evt_first', 'evt_second']);
    expect(await scheduler.waiting()).toBe(2);
  });
});
