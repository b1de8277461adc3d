/**
 * Channel traffic where an operator looks (seed 000, Path 3: "broadcastHook → MetricsUpdater →
 * HotTopicsAnalyzer"; the MetricsUpdater's "ChannelService → connection count"): broadcasts and
 * their deliveries in hot topics (as `~channel:<name>`) and in the dashboard's rates, channel
 * members in its subscriptions, and the channel series on `/metrics` — two instances over Redis.
 */
import { describe, expect, it } from 'vitest';
import { hotTopics } from '../helpers/analytics.ts';
import { gql } from '../helpers/cdc.ts';
import { metricValue } from '../helpers/events.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix, waitFor } from '../helpers/index.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const SHOP = { app: 'shop', env: 'prod' };
const admin = () => signHs256({ sub: 'ops', ...SHOP, tenant: undefined, roles: ['admin'], permissions: [] });

interface Figures {
  readonly subscriptions: number;
  readonly eventsPerSecondBySource: readonly { source: string; perSecond: number }[];
  readonly deliveriesPerSecond: number;
}

async function dashboard(server: TestServer): Promise<Figures> {
  const body = await gql(server, await admin(), '{ dashboard { cluster { subscriptions eventsPerSecondBySource { source perSecond } deliveriesPerSecond } } }');
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['dashboard'] as { cluster: Figures }).cluster;
}

async function broadcast(server: TestServer, token: string, event: string): Promise<void> {
  const sent = await postGraphQL(server.graphqlUrl, { query: `mutation { broadcast(channel: "chat.room-7", event: "${event}", data: { n: 1 }) }` }, { authorization: `Bearer ${token}` });
  expect(sent.body).toEqual({ data: { broadcast: true } });
}

async function received(member: RawSocket, count: number): Promise<string[]> {
  const events: string[] = [];
  while (events.length < count) {
    const message = await member.nextMessage();
    expect(message).toMatchObject({ id: 'room', type: 'next' });
    events.push((message.payload as { data: { channel: { event: string } } }).data.channel.event);
  }
  return events;
}

describe('channel traffic in analytics, the dashboard and /metrics', () => {
  it('counts broadcasts once and deliveries on each instance, in hot topics, /metrics and the dashboard; members count as subscriptions', { timeout: 90_000 }, async () => {
    const database = await createTestDatabase();
    const shared = {
      JWT_SECRET: TEST_SECRET,
      DATABASE_URL: database.url,
      REDIS_URL: testRedisUrl(),
      REDIS_KEY_PREFIX: uniquePrefix(),
      OPERATOR_SCOPE: 'shop/prod',
      DASHBOARD_TICK_SECONDS: '1',
      ANALYTICS_FLUSH_SECONDS: '1',
    };
    const [first, second] = await Promise.all([startTestServer(shared), startTestServer(shared)]);
    const token = await signHs256({ sub: 'alice', ...SHOP, tenant: 'tenant-a', permissions: ['chat.join', 'chat.broadcast', 'orders.read'] });

    // A member on each instance; on the second, an events subscription besides.
    const members = await Promise.all([first, second].map((server) => openAcknowledgedSocket(server.wsUrl, token)));
    for (const member of members) member.send({ id: 'room', type: 'subscribe', payload: { query: 'subscription { channel(name: "chat.room-7") { event } }' } });
    members[1]!.send({ id: 'orders', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { id } }' } });
    await waitFor(() => first.stats().channelMembers === 1 && second.stats().channelMembers === 1 && second.stats().subscribers === 1, { message: 'both members joined' });

    for (let n = 1; n <= 5; n += 1) await broadcast(first, token, `e${n}`);
    for (const member of members) expect(await received(member, 5)).toEqual(['e1', 'e2', 'e3', 'e4', 'e5']);

    // /metrics: a broadcast on the instance that sent it, a delivery on each that has a member.
    expect(await metricValue(first, 'tributary_channel_broadcasts_total')).toBe(5);
    expect(await metricValue(second, 'tributary_channel_broadcasts_total')).toBe(0);
    for (const server of [first, second]) {
      expect(await metricValue(server, 'tributary_channel_deliveries_total')).toBe(5);
      expect(await metricValue(server, 'tributary_channel_members')).toBe(1);
    }
    expect(await metricValue(first, 'tributary_subscriptions')).toBe(1);
    expect(await metricValue(second, 'tributary_subscriptions')).toBe(2);
    expect(await metricValue(first, 'tributary_deliveries_total')).toBe(5);

    // Hot topics: one row for the channel in its tenant, 5 events (counted once, on the sender), 10 deliveries.
    const entry = await waitFor(
      async () => {
        const hot = await hotTopics(first, { window: 'ONE_MINUTE', by: 'EVENTS', limit: 10 }, await admin());
        const row = hot.find((candidate) => candidate.topic === '~channel:chat.room-7');
        return row?.deliveries === 10 ? row : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, message: "the channel's counts never reached hot topics" },
    );
    expect(entry).toMatchObject({ topic: '~channel:chat.room-7', tenant: 'tenant-a', count: 5, deliveries: 10 });
    expect(entry?.bytes).toBeGreaterThan(0);
    // …and its statistics can be asked for by that name (a topic name is refused otherwise).
    const now = Date.now();
    const stats = await postGraphQL(
      first.graphqlUrl,
      { query: 'query($from: DateTime!, $to: DateTime!) { topicStats(topic: "~channel:chat.room-7", granularity: MINUTE, from: $from, to: $to, tenant: "tenant-a") { count } }', variables: { from: new Date(now - 120_000).toISOString(), to: new Date(now + 60_000).toISOString() } },
      { authorization: `Bearer ${await admin()}` },
    );
    expect(stats.body).toMatchObject({ data: { topicStats: expect.any(Array) as unknown } });

    // The dashboard: the three subscriptions (two members, one events), and broadcasts in its rates.
    const figures = await waitFor(
      async () => {
        await broadcast(second, token, 'tick');
        const seen = await dashboard(first);
        const socket = seen.eventsPerSecondBySource.find((rate) => rate.source === 'socket')?.perSecond ?? 0;
        return seen.subscriptions === 3 && socket > 0 && seen.deliveriesPerSecond > 0 ? seen : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, message: 'the dashboard never showed the channel traffic and members' },
    );
    expect(figures?.subscriptions).toBe(3);

    // A member that leaves is no longer counted.
    members[0]!.send({ id: 'room', type: 'complete' });
    await waitFor(() => first.stats().channelMembers === 0, { message: 'the member left' });
    expect(await metricValue(first, 'tributary_channel_members')).toBe(0);
    expect(await metricValue(first, 'tributary_subscriptions')).toBe(0);
  });
});
