/**
 * The admin reads while Redis is down, on a real server whose private Redis is stopped: the
 * cluster dashboard (its instances' reports are in Redis) and the hot topics (the minutes not
 * flushed yet are too) answer UNAVAILABLE — HTTP 503 over REST and GraphQL, as with Postgres
 * down — not a masked INTERNAL_SERVER_ERROR with an error logged per request; the outage is
 * logged once per read, and its end once. `topicStats` reads Postgres only and still answers;
 * the live views (`dashboardUpdates`, `statsUpdates`) are refused UNAVAILABLE by the event log.
 */
import { describe, expect, it } from 'vitest';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { captureLogs, postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const OPERATORS = { app: 'ops', env: 'prod' };

interface Answer {
  readonly status: number;
  readonly codes: unknown[];
}

function codesOf(body: { errors?: readonly { extensions?: Record<string, unknown> }[] | undefined }): unknown[] {
  return body.errors?.map((error) => error.extensions?.['code']) ?? [];
}

async function rest(server: TestServer, path: string, token: string): Promise<Answer> {
  const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, codes: codesOf((await response.json()) as { errors?: { extensions?: Record<string, unknown> }[] }) };
}

async function graphql(server: TestServer, query: string, token: string, variables: Record<string, unknown> = {}): Promise<Answer & { data: unknown }> {
  const { status, body } = await postGraphQL(server.graphqlUrl, { query, variables }, { authorization: `Bearer ${token}` });
  return { status, codes: codesOf(body), data: body.data ?? null };
}

describe('dashboard and analytics reads while Redis is down', () => {
  it('answer UNAVAILABLE (503) over REST and GraphQL, log the outage once per read, and answer again once Redis is back', { timeout: 60_000 }, async () => {
    const redis = await startPrivateRedis();
    const logs = captureLogs();
    const server = await startTestServer(
      { JWT_SECRET: TEST_SECRET, OPERATOR_SCOPE: 'ops/prod', REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), REDIS_COMMAND_TIMEOUT_MS: '1000', LOG_LEVEL: 'debug', DASHBOARD_TICK_SECONDS: '1' },
      { logDestination: logs },
    );
    const operator = await signHs256({ sub: 'ops-admin', ...OPERATORS, roles: ['admin'], permissions: [], tenant: undefined });
    const DASHBOARD = '{ dashboard { at instances { instance } } }';
    const HOT = '{ hotTopics(window: ONE_HOUR, by: EVENTS) { topic } }';
    const STATS = 'query($from: DateTime!, $to: DateTime!) { topicStats(topic: "orders", granularity: HOUR, from: $from, to: $to) { count } }';
    const range = { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3_600_000).toISOString() };
    await waitFor(async () => (await rest(server, '/api/metrics/dashboard', operator)).status === 200, { timeoutMs: 10_000, message: 'the dashboard before the outage' });
    const dashboardSocket = await openAcknowledgedSocket(server.wsUrl, operator);
    const statsSocket = await openAcknowledgedSocket(server.wsUrl, operator);

    await redis.stop();

    const refusals: unknown[] = [];
    for (let round = 0; round < 3; round += 1) {
      refusals.push(
        await rest(server, '/api/metrics/dashboard', operator),
        await rest(server, '/api/metrics/hot-topics?window=15m', operator),
        await graphql(server, DASHBOARD, operator),
        await graphql(server, HOT, operator),
      );
    }
    const unavailable = { status: 503, codes: ['UNAVAILABLE'] };
    expect(refusals).toEqual(Array.from({ length: 3 }, () => [unavailable, unavailable, { ...unavailable, data: null }, { ...unavailable, data: null }]).flat());
    // Postgres only: the flushed windows are still there.
    expect(await graphql(server, STATS, operator, range)).toEqual({ status: 200, codes: [], data: { topicStats: [] } });
    // Live views: refused by the event log (graphql-ws `error`), the client retries.
    dashboardSocket.send({ id: 'd', type: 'subscribe', payload: { query: 'subscription { dashboardUpdates { at } }' } });
    expect(await dashboardSocket.nextMessage()).toMatchObject({ id: 'd', type: 'error', payload: [{ extensions: { code: 'UNAVAILABLE' } }] });
    statsSocket.send({ id: 's', type: 'subscribe', payload: { query: 'subscription { statsUpdates(topic: "orders") { count } }' } });
    expect(await statsSocket.nextMessage()).toMatchObject({ id: 's', type: 'error', payload: [{ extensions: { code: 'UNAVAILABLE' } }] });

    // Once an outage per read, never an error per request.
    const told = (pattern: RegExp) => logs.lines.filter((line) => pattern.test(line.msg)).map((line) => ({ level: line.level, read: line['read'] }));
    expect(told(/reads answer UNAVAILABLE/)).toEqual([
      { level: 40, read: 'dashboard' },
      { level: 40, read: 'hotTopics' },
    ]);
    expect(logs.lines.filter((line) => line.level >= 50 && /REST request failed|internal error/.test(line.msg))).toEqual([]);

    await redis.start();
    await waitFor(async () => (await rest(server, '/api/metrics/dashboard', operator)).status === 200, { timeoutMs: 15_000, message: 'the dashboard once Redis is back' });
    await waitFor(async () => (await graphql(server, HOT, operator)).status === 200, { timeoutMs: 15_000, message: 'the hot topics once Redis is back' });
    expect(told(/reads answer again/)).toEqual([
      { level: 30, read: 'dashboard' },
      { level: 30, read: 'hotTopics' },
    ]);
  });
});
