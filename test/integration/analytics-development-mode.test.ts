/**
 * Analytics in development mode: the development principal (tenant `default`, standing for every
 * caller) is its environment's admin here too — `hotTopics` shows it every topic of the
 * environment, and `statsUpdates` without a tenant counts every tenant. Its environment is the
 * operators' (default/default), where the dashboard ticks: Tributary's own periodic traffic
 * (`system.dashboard`) is never counted, so an idle screen shows no hot topic of its own making.
 */
import { describe, expect, it } from 'vitest';
import { hotTopics, publishToTopics, testClock, topicStats, type HotTopicEntry } from '../helpers/analytics.ts';
import { waitForSubscribers } from '../helpers/events.ts';
import { waitFor } from '../helpers/index.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

describe('analytics in development mode', () => {
  it('shows the development principal its environment’s topics, without Tributary’s own system.dashboard ticking in it', { timeout: 90_000 }, async () => {
    const clock = testClock();
    const from = new Date(clock.now() - 60_000);
    // The dashboard routes `system.dashboard` every second in the operators' environment, default/default, with no tenant.
    const server = await startTestServer({ ANALYTICS_FLUSH_SECONDS: '1', DASHBOARD_TICK_SECONDS: '1' }, { embedded: true, now: clock.now });
    const dashboards = await openAcknowledgedSocket(server.wsUrl);
    dashboards.send({ id: 'dash', type: 'subscribe', payload: { query: 'subscription { dashboardUpdates { at } }' } });
    const screen = await openAcknowledgedSocket(server.wsUrl);
    screen.send({ id: 'stats', type: 'subscribe', payload: { query: 'subscription { statsUpdates(topic: "orders") { topic count } }' } });
    await waitForSubscribers(server, 2);
    // Two ticks delivered (one may have been routed before the subscriber joined): the dashboard was routed and delivered within this minute.
    for (let tick = 0; tick < 2; tick += 1) expect(await dashboards.nextMessage()).toMatchObject({ id: 'dash', type: 'next' });
    await publishToTopics(server, ['orders', 'orders']);

    const hot = (await waitFor(async () => {
      const topics = await hotTopics(server, { window: 'ONE_MINUTE', by: 'EVENTS' });
      return topics.some((entry) => entry.topic === 'orders' && entry.count === 2) && topics;
    }, { message: 'hotTopics shows orders' })) as HotTopicEntry[];
    expect(hot.map((entry) => [entry.topic, entry.tenant, entry.count])).toEqual([['orders', 'default', 2]]);

    clock.nextMinutes();
    const update = await screen.nextMessage();
    expect(update).toMatchObject({ id: 'stats', type: 'next', payload: { data: { statsUpdates: { topic: 'orders', count: 2 } } } });
    expect(await topicStats(server, { topic: 'system.dashboard', granularity: 'MINUTE', from, to: new Date(clock.now()) })).toEqual([]);
  });
});
