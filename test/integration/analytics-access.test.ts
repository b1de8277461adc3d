/**
 * Analytics is for admins: GraphQL (queries and the subscription) and REST refuse anyone else
 * with stable codes, and an admin whose token names a tenant sees that tenant only (an empty
 * tenant argument names none).
 */
import { describe, expect, it } from 'vitest';
import { hotTopics, hotTopicsRaw, publishToTopics, testClock, topicStatsRaw, type HotTopicEntry } from '../helpers/analytics.ts';
import { expectRefused } from '../helpers/cdc.ts';
import { expectRefusedSubscription, waitForSubscribers } from '../helpers/events.ts';
import { waitFor } from '../helpers/index.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

function codesOf(body: { errors?: readonly { extensions?: Record<string, unknown> }[] }): unknown[] {
  return body.errors?.map((error) => error.extensions?.['code']) ?? [];
}

describe('analytics access', () => {
  it('refuses non-admins over GraphQL and REST with stable codes, and answers admins', { timeout: 60_000 }, async () => {
    const clock = testClock();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, ANALYTICS_FLUSH_SECONDS: '1' }, { now: clock.now });
    const member = await signHs256({ roles: [] });
    const admin = await signHs256({ roles: ['admin'] });
    const range = { topic: 'orders', granularity: 'HOUR' as const, from: new Date(Date.now() - 3_600_000), to: new Date(Date.now() + 3_600_000) };

    expect(codesOf((await topicStatsRaw(server, range, member)).body)).toEqual(['FORBIDDEN']);
    expect(codesOf((await hotTopicsRaw(server, { window: 'ONE_HOUR', by: 'EVENTS' }, member)).body)).toEqual(['FORBIDDEN']);
    expect(codesOf((await topicStatsRaw(server, range)).body)).toEqual(['UNAUTHENTICATED']);
    expect((await topicStatsRaw(server, range, admin)).body).toEqual({ data: { topicStats: [] } });
    expect(codesOf((await topicStatsRaw(server, { ...range, granularity: 'MINUTE', to: new Date(Date.now() + 30 * 86_400_000) }, admin)).body)).toEqual(['BAD_USER_INPUT']);
    expect(codesOf((await hotTopicsRaw(server, { window: 'ONE_HOUR', by: 'EVENTS', limit: 0 }, admin)).body)).toEqual(['BAD_USER_INPUT']);

    const socket = await openAcknowledgedSocket(server.wsUrl, member);
    socket.send({ id: 's', type: 'subscribe', payload: { query: 'subscription { statsUpdates(topic: "orders", tenant: "tenant-a") { count } }' } });
    await expectRefusedSubscription(socket, 's', 'FORBIDDEN');

    const rest = (path: string, token?: string) =>
      fetch(`${server.url}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }).then(async (response) => ({
        status: response.status,
        body: (await response.json()) as { errors?: { message: string; extensions: { code: string } }[]; topics?: unknown[] },
      }));
    const anonymous = await rest('/api/metrics/hot-topics');
    expect(anonymous.status).toBe(401);
    expect(codesOf(anonymous.body)).toEqual(['UNAUTHENTICATED']);
    const forged = await rest('/api/metrics/hot-topics', await signHs256({ roles: ['admin'] }, { secret: 'another-secret-that-is-32-bytes-long!!' }));
    expect(forged.status).toBe(401);
    const refused = await rest('/api/metrics/hot-topics?window=1h', member);
    expect(refused.status).toBe(403);
    expect(codesOf(refused.body)).toEqual(['FORBIDDEN']);
    // The role before the parameters, on every route: a non-admin learns nothing of what a route accepts.
    for (const path of ['/api/metrics/hot-topics?window=2m', '/api/metrics/hot-topics?by=nothing&limit=x', '/api/alerts?status=bogus&first=x']) {
      const early = await rest(path, member);
      expect({ path, status: early.status, codes: codesOf(early.body) }).toEqual({ path, status: 403, codes: ['FORBIDDEN'] });
    }
    const wrong = await rest('/api/metrics/hot-topics?window=2d', admin);
    expect(wrong.status).toBe(400);
    expect(codesOf(wrong.body)).toEqual(['BAD_USER_INPUT']);
    expect((await rest('/api/metrics/nothing', admin)).status).toBe(404);
    const answered = await rest('/api/metrics/hot-topics?window=1h&by=bytes&limit=3', admin);
    expect(answered).toEqual({ status: 200, body: { window: '1h', by: 'bytes', topics: [] } });
  });

  it('shows an admin whose token names a tenant only that tenant; an application-wide admin sees every tenant', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, ANALYTICS_FLUSH_SECONDS: '1' });
    const adminA = await signHs256({ roles: ['admin'], tenant: 'tenant-a' });
    const adminB = await signHs256({ roles: ['admin'], tenant: 'tenant-b' });
    const appAdmin = await signHs256({ roles: ['admin'], tenant: undefined });
    await publishToTopics(server, ['orders', 'orders'], 20, adminA);
    await publishToTopics(server, ['orders'], 20, adminB);

    const all = (await waitFor(async () => {
      const hot = await hotTopics(server, { window: 'ONE_MINUTE', by: 'EVENTS' }, appAdmin);
      return hot.length === 2 && hot;
    })) as HotTopicEntry[];
    expect(all.map((entry) => [entry.tenant, entry.topic, entry.count])).toEqual([
      ['tenant-a', 'orders', 2],
      ['tenant-b', 'orders', 1],
    ]);
    const own = await hotTopics(server, { window: 'ONE_MINUTE', by: 'EVENTS' }, adminB);
    expect(own.map((entry) => [entry.tenant, entry.count])).toEqual([['tenant-b', 1]]);
    const other = await postHot(server, adminB, 'tenant-a');
    expect(codesOf(other)).toEqual(['FORBIDDEN']);

    // `tenant=` in the REST query names no tenant: as if absent, for either admin.
    const restHot = async (token: string, tenant: string) => {
      const response = await fetch(`${server.url}/api/metrics/hot-topics?window=1h&tenant=${tenant}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: response.status, topics: ((await response.json()) as { topics?: HotTopicEntry[] }).topics?.map((entry) => [entry.tenant, entry.count]) };
    };
    expect(await restHot(appAdmin, '')).toEqual({ status: 200, topics: [['tenant-a', 2], ['tenant-b', 1]] });
    expect(await restHot(adminB, '')).toEqual({ status: 200, topics: [['tenant-b', 1]] });
    // So does `tenant: ""` in GraphQL.
    expect(codesOf(await postHot(server, adminB, ''))).toEqual([]);
    const graphHot = await postHot(server, appAdmin, '');
    expect((graphHot as { data?: { hotTopics: unknown[] } }).data?.hotTopics).toHaveLength(2);
  });

  it('takes statsUpdates(tenant: "") for no tenant: a tenant-limited admin must name its own, an application-wide admin counts every tenant', { timeout: 90_000 }, async () => {
    const clock = testClock();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, ANALYTICS_FLUSH_SECONDS: '1' }, { now: clock.now });
    const adminA = await signHs256({ roles: ['admin'], tenant: 'tenant-a' });
    const adminB = await signHs256({ roles: ['admin'], tenant: 'tenant-b' });
    const appAdmin = await signHs256({ roles: ['admin'], tenant: undefined });
    // One document for everyone: equal documents and variables share a cohort (its filter and render).
    const subscribe = async (token: string, tenant: string) => {
      const socket = await openAcknowledgedSocket(server.wsUrl, token);
      socket.send({ id: 's', type: 'subscribe', payload: { query: 'subscription($t: String) { statsUpdates(topic: "orders", tenant: $t) { count } }', variables: { t: tenant } } });
      return socket;
    };

    // `""` names no tenant: refused to a token limited to one, whichever subscribes first.
    for (const token of [adminA, adminB]) {
      const socket = await subscribe(token, '');
      // Settled either way: refused (a message came) or served (one more subscriber) — it must be refused.
      await waitFor(() => socket.pending.length > 0 || server.stats().subscribers > 0, { message: 'the subscription was refused or served' });
      expect(server.stats().subscribers).toBe(0);
      await expectRefused(socket, 's', { code: 'FORBIDDEN', field: 'tenant' });
    }
    const everyTenant = await subscribe(appAdmin, '');
    const ownTenant = await subscribe(adminB, 'tenant-b');
    const appAdminOfB = await subscribe(appAdmin, 'tenant-b');
    await waitForSubscribers(server, 3);

    await publishToTopics(server, ['orders', 'orders'], 20, adminA);
    await publishToTopics(server, ['orders'], 20, adminB);
    await waitFor(async () => (await hotTopics(server, { window: 'ONE_MINUTE', by: 'EVENTS' }, appAdmin)).length === 2, { message: 'both tenants counted' });
    clock.nextMinutes();

    const countOf = async (socket: RawSocket) => {
      const update = await socket.nextMessage();
      expect(update).toMatchObject({ id: 's', type: 'next' });
      return (update.payload as { data: { statsUpdates: { count: number } } }).data.statsUpdates.count;
    };
    expect(await countOf(everyTenant)).toBe(3);
    expect(await countOf(ownTenant)).toBe(1);
    expect(await countOf(appAdminOfB)).toBe(1);
  });

  it('refuses over REST a window or order named like a property every object has with BAD_USER_INPUT', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined });
    for (const query of ['window=constructor', 'window=toString', 'window=__proto__', 'by=constructor', 'by=hasOwnProperty', 'by=__proto__']) {
      const response = await fetch(`${server.url}/api/metrics/hot-topics?${query}`, { headers: { authorization: `Bearer ${admin}` } });
      const body = (await response.json()) as { errors?: { extensions?: Record<string, unknown> }[] };
      expect({ query, status: response.status, codes: codesOf(body) }).toEqual({ query, status: 400, codes: ['BAD_USER_INPUT'] });
    }
  });
});

describe('analytics tenant arguments', () => {
  it('refuses a tenant holding a NUL, or longer than any tenant, with BAD_USER_INPUT over GraphQL and REST (Postgres cannot compare a NUL)', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined });
    const range = { topic: 'orders', granularity: 'HOUR' as const, from: new Date(Date.now() - 3_600_000), to: new Date(Date.now() + 3_600_000) };
    for (const tenant of ['a\u0000b', 'x'.repeat(10_000)]) {
      const { status, body } = await topicStatsRaw(server, { ...range, tenant }, admin);
      expect({ status, codes: codesOf(body), field: body.errors?.[0]?.extensions?.['field'] }).toEqual({ status: 200, codes: ['BAD_USER_INPUT'], field: 'tenant' });
      expect(codesOf(await postHot(server, admin, tenant))).toEqual(['BAD_USER_INPUT']);
    }
    const response = await fetch(`${server.url}/api/metrics/hot-topics?tenant=a%00b`, { headers: { authorization: `Bearer ${admin}` } });
    expect({ status: response.status, codes: codesOf((await response.json()) as { errors?: { extensions?: Record<string, unknown> }[] }) }).toEqual({ status: 400, codes: ['BAD_USER_INPUT'] });
  });
});

async function postHot(server: Awaited<ReturnType<typeof startTestServer>>, token: string, tenant: string) {
  const response = await fetch(server.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: `{ hotTopics(window: ONE_HOUR, by: EVENTS, tenant: ${JSON.stringify(tenant)}) { topic } }` }),
  });
  return (await response.json()) as { errors?: { extensions?: Record<string, unknown> }[] };
}
