/**
 * Analytics in development mode: the development principal (tenant `default`, standing for every
 * caller) is its environment's admin here too — `hotTopics` shows it every topic of the
 * environment, the application-wide ones (no tenant: Tributary's own `system.dashboard`, an
 * outbox's, CDC's) with the tenant's, and `statsUpdates` without a tenant counts them all.
 */
import { describe, expect, it } from 'vitest';
import { hotTopics, publishToTopics, testClock, type HotTopicEntry } from '../helpers/analytics.ts';
import { waitForSubscribers } from '../helpers/events.ts';
import { waitFor } from '../helpers/index.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

describe('analytics in development mode', () => {
  it('shows the development principal its environment’s application-wide topics as well as tenant default’s', { timeout: 90_000 }, async () => {
    const clock = testClock();
    // The dashboard routes `system.dashboard` every second in the operators' environment, default/default, with no tenant.
    const server = await startTestServer({ ANALYTICS_FLUSH_SECONDS: '1', DASHBOARD_TICK_SECONDS: '1' }, { embedded: true, now: clock.now });
    const screen = await openAcknowledgedSocket(server.wsUrl);
    screen.send({ id: 'stats', type: 'subscribe', payload: { query: 'subscription { statsUpdates(topic: "system.dashboard") { topic count } }' } });
    await waitForSubscribers(server, 1);
    await publishToTopics(server, ['orders', 'orders']);

    const hot = (await waitFor(async () => {
      const topics = await hotTopics(server, { window: 'ONE_MINUTE', by: 'EVENTS' });
      return topics.some((entry) => entry.topic === 'system.dashboard') && topics.some((entry) => entry.topic === 'orders' && entry.count === 2) && topics;
    }, { message: 'hotTopics shows system.dashboard and orders' })) as HotTopicEntry[];
    expect(hot.find((entry) => entry.topic === 'system.dashboard')?.tenant).toBeNull();
    expect(hot.find((entry) => entry.topic === 'orders')?.tenant).toBe('default');

    clock.nextMinutes();
    const update = await screen.nextMessage();
    expect(update).toMatchObject({ id: 'stats', type: 'next', payload: { data: { statsUpdates: { topic: 'system.dashboard' } } } });
    expect((update.payload as { data: { statsUpdates: { count: number } } }).data.statsUpdates.count).toBeGreaterThan(0);
  });
});
