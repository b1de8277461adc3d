/**
 * Alerts end to end against a real Postgres and loopback webhook receivers: a failing endpoint's
 * failure rate fires an alert only past the minimum sample, the alert event reaches another
 * endpoint (never the failing one, though it selects `*`), is acknowledged through the API, lives
 * through a restart of the evaluating process and resolves after the receiver recovers
 * (hysteresis); two processes evaluating one database raise one alert; admin-only over GraphQL
 * and REST. Small windows and a 1 s tick via configuration; every wait is on state.
 */
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor, type WaitForOptions } from '../helpers/wait-for.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const ENV = {
  JWT_SECRET: TEST_SECRET,
  WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
  ALERTS_EVALUATE_SECONDS: '1',
  ALERTS_WINDOW_SECONDS: '4',
  ALERTS_MIN_SAMPLES: '8',
  ALERTS_FIRE_AFTER: '2',
  ALERTS_RESOLVE_AFTER: '3',
};

const ALERT_FIELDS = 'id rule subject severity status count value message acknowledgedBy resolvedAt';

interface AlertNode {
  id: string;
  rule: string;
  subject: string;
  severity: string;
  status: string;
  count: number;
  value: number | null;
  acknowledgedBy: string | null;
  resolvedAt: string | null;
}

/** An admin of the whole environment (no tenant). */
const admin = () => signHs256({ sub: 'ops-admin', roles: ['admin'], permissions: [], tenant: undefined });

async function createEndpoint(server: TestServer, url: string, events: string[]): Promise<string> {
  const body = await gql(server, await admin(), 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
    input: { url, events },
  });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;
}

async function publish(server: TestServer, count: number): Promise<void> {
  const token = await signHs256({ tenant: 'a', permissions: ['orders.publish'] });
  for (let index = 0; index < count; index += 1) {
    const body = await gql(server, token, 'mutation($p: JSON!) { publish(topic: "orders", type: "order.updated", payload: $p) { id } }', { p: { index } });
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  }
}

async function alerts(server: TestServer, status?: string[]): Promise<AlertNode[]> {
  const body = await gql(server, await admin(), `query($s: [AlertStatus!]) { alerts(status: $s) { nodes { ${ALERT_FIELDS} } } }`, { s: status });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['alerts'] as { nodes: AlertNode[] }).nodes;
}

/** Resolves after the evaluator renewed its lease `count` more times: that many evaluations ran (a barrier, not a delay). */
async function evaluations(pool: pg.Pool, count: number): Promise<void> {
  const read = async () => (await pool.query<{ at: string }>('SELECT expires_at::text AS at FROM alert_evaluator')).rows[0]?.at;
  let last = await read();
  for (let seen = 0; seen < count; ) {
    const now = await waitFor(async () => {
      const at = await read();
      return at !== undefined && at !== last ? at : undefined;
    }, { timeoutMs: 15_000, message: 'the alert evaluator ran' });
    last = now;
    seen += 1;
  }
}

function alertEvents(receiver: WebhookReceiver, type?: string) {
  return receiver.received.filter((request) => request.json.topic === 'system.alerts' && (type === undefined || request.json.type === type));
}

/** Waits for `probe` to find something. */
async function found<T>(probe: () => Promise<T | undefined>, options: WaitForOptions): Promise<T> {
  return (await waitFor(probe, options)) as T;
}

function platformPool(url: string): pg.Pool {
  return openTestPool(url);
}

describe('alerts', () => {
  it(
    'fires for a failing endpoint only past the minimum sample, tells another endpoint (never the failing one), is acknowledged, survives a restart and resolves after recovery',
    { timeout: 120_000 },
    async () => {
      const database = await createTestDatabase();
      const pool = platformPool(database.url);
      let server = await startTestServer({ ...ENV, DATABASE_URL: database.url }, { autoDispose: false });
      onTestFinished(() => server.dispose());
      const failing = await startWebhookReceiver();
      failing.respond = () => 500;
      const slack = await startWebhookReceiver();
      // The failing endpoint selects everything, alerts included: an alert about it must still never reach it.
      const failingId = await createEndpoint(server, failing.url, ['*']);
      await createEndpoint(server, slack.url, ['system.alerts']);

      // One failure out of one attempt (and its first retries) is below the minimum sample: unknown, nothing fires.
      await publish(server, 1);
      await failing.waitForCount(1);
      await evaluations(pool, 3);
      expect(await alerts(server)).toEqual([]);

      // Ten events failing: over the minimum sample, 100 % failed — critical after two bad evaluations.
      await publish(server, 10);
      const fired = await found(async () => (await alerts(server, ['FIRING']))[0], { timeoutMs: 30_000, message: 'the failure-rate alert fired' });
      expect(fired).toMatchObject({ rule: 'webhook.failure_rate', subject: `endpoint:${failingId}`, severity: 'CRITICAL', status: 'FIRING', count: 1 });
      expect(fired.value).toBeGreaterThan(0.5);

      // The alert event reaches the other endpoint, signed like any event.
      await waitFor(() => alertEvents(slack, 'alert.fired').length === 1, { timeoutMs: 20_000, message: 'alert.fired reached the other endpoint' });
      const notice = alertEvents(slack, 'alert.fired')[0]!;
      expect(notice.json).toMatchObject({ source: 'system', data: { alertId: fired.id, rule: 'webhook.failure_rate', endpointId: failingId, state: 'firing', severity: 'critical' } });
      expect(notice.headers['webhook-id']).toBe(notice.json.id);

      // REST shows it to an admin with the same token.
      const rest = await fetch(`${server.url}/api/alerts?status=firing`, { headers: { authorization: `Bearer ${await admin()}` } });
      expect(rest.status).toBe(200);
      // With GraphQL's names: `status`, as the query parameter says.
      const { alerts: listed } = (await rest.json()) as { alerts: Record<string, unknown>[] };
      expect(listed).toEqual([expect.objectContaining({ id: fired.id, rule: 'webhook.failure_rate', status: 'firing', severity: 'critical', count: 1 })]);
      expect(Object.keys(listed[0]!).sort()).toEqual(
        ['acknowledgedAt', 'acknowledgedBy', 'count', 'firstFiredAt', 'id', 'lastFiredAt', 'message', 'resolvedAt', 'rule', 'severity', 'status', 'subject', 'tenant', 'value'],
      );

      // Restart the evaluating process: the alert and its streaks are in Postgres.
      await server.dispose();
      server = await startTestServer({ ...ENV, DATABASE_URL: database.url }, { autoDispose: false });
      await evaluations(pool, 2);
      expect(await alerts(server)).toEqual([expect.objectContaining({ id: fired.id, status: 'FIRING', count: 1 })]);

      // Acknowledged through the API on the new process; announced too.
      const ack = await gql(server, await admin(), `mutation($id: ID!) { acknowledgeAlert(id: $id) { ${ALERT_FIELDS} } }`, { id: fired.id });
      expect(ack.errors).toBeUndefined();
      expect(ack.data?.['acknowledgeAlert']).toMatchObject({ status: 'ACKNOWLEDGED', acknowledgedBy: 'ops-admin', count: 1 });
      await waitFor(() => alertEvents(slack, 'alert.acknowledged').length === 1, { timeoutMs: 20_000, message: 'alert.acknowledged reached the other endpoint' });

      // The receiver recovers; traffic keeps the sample up until three good evaluations in a row resolve it.
      failing.respond = () => 204;
      const resolved = await found(
        async () => {
          await publish(server, 3);
          const alert = (await alerts(server))[0];
          return alert?.status === 'RESOLVED' ? alert : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200, message: 'the alert resolved' },
      );
      expect(resolved).toMatchObject({ id: fired.id, count: 1, severity: 'CRITICAL' });
      expect(resolved.resolvedAt).not.toBeNull();
      await waitFor(() => alertEvents(slack, 'alert.resolved').length === 1, { timeoutMs: 20_000, message: 'alert.resolved reached the other endpoint' });
      expect(alertEvents(slack).map((request) => request.json.type)).toEqual(['alert.fired', 'alert.acknowledged', 'alert.resolved']);

      // Acknowledging a resolved alert is a conflict with a stable code.
      const late = await gql(server, await admin(), 'mutation($id: ID!) { acknowledgeAlert(id: $id) { id } }', { id: fired.id });
      expect(late.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', status: 'RESOLVED', state: 'RESOLVED' });

      // No delivery of any alert event was ever made for the endpoint it is about.
      const loops = await pool.query("SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = $1 AND topic = 'system.alerts'", [failingId]);
      expect(loops.rows[0]).toEqual({ n: 0 });
      expect(alertEvents(failing)).toEqual([]);
    },
  );

  it('raises one alert when two processes evaluate the same database, and pushes it to alertUpdates', { timeout: 90_000 }, async () => {
    // Two processes of one deployment: one platform database, one Redis (the alert event reaches a socket on either).
    const database = await createTestDatabase();
    const shared = { ...ENV, DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() };
    const first = await startTestServer(shared);
    const second = await startTestServer(shared);
    const socket = await openAcknowledgedSocket(first.wsUrl, await admin());
    socket.send({ id: 'u', type: 'subscribe', payload: { query: 'subscription { alertUpdates { type alert { id rule status count } } }' } });
    await waitFor(() => first.stats().subscribers === 1, { message: 'alertUpdates subscribed' });

    const failing = await startWebhookReceiver();
    failing.respond = () => 503;
    const failingId = await createEndpoint(first, failing.url, ['orders']);
    // Published where the endpoint was made (another process sees a new endpoint within its refresh period).
    await publish(first, 12);

    const update = await socket.waitForMessage((message) => message.type === 'next');
    expect(update.payload).toEqual({ data: { alertUpdates: { type: 'alert.fired', alert: { id: expect.any(String) as unknown, rule: 'webhook.failure_rate', status: 'FIRING', count: 1 } } } });
    const pool = platformPool(database.url);
    await evaluations(pool, 3);
    const rows = await pool.query<{ subject: string; count: number }>('SELECT subject, count FROM alerts');
    expect(rows.rows).toEqual([{ subject: `endpoint:${failingId}`, count: 1 }]);
    expect(await alerts(second)).toHaveLength(1);
    // Nothing else was pushed: one fired event for one alert.
    expect(socket.pending.filter((message) => message.type === 'next')).toEqual([]);
  });

  it('is admin-only over GraphQL and REST, with stable error codes', { timeout: 60_000 }, async () => {
    const server = await startTestServer(ENV);
    const user = await signHs256({ tenant: 'a', permissions: ['orders.read'] });

    const query = await gql(server, user, '{ alerts { nodes { id } } }');
    expect(query.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    const ack = await gql(server, user, 'mutation { acknowledgeAlert(id: "alrt_xxxxxxxxxxxxxxxxxxxxxx") { id } }');
    expect(ack.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    const unknown = await gql(server, await admin(), 'mutation { acknowledgeAlert(id: "alrt_xxxxxxxxxxxxxxxxxxxxxx") { id } }');
    expect(unknown.errors?.[0]?.extensions?.['code']).toBe('NOT_FOUND');

    const anonymous = await fetch(`${server.url}/api/alerts`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
    const forged = await fetch(`${server.url}/api/alerts`, { headers: { authorization: 'Bearer not-a-token' } });
    expect(forged.status).toBe(401);
    const forbidden = await fetch(`${server.url}/api/alerts`, { headers: { authorization: `Bearer ${user}` } });
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({ errors: [{ extensions: { code: 'FORBIDDEN' } }] });
    const badStatus = await fetch(`${server.url}/api/alerts?status=burning`, { headers: { authorization: `Bearer ${await admin()}` } });
    expect(badStatus.status).toBe(400);
    expect(await badStatus.json()).toMatchObject({ errors: [{ extensions: { code: 'BAD_USER_INPUT', field: 'status' } }] });
    const empty = await fetch(`${server.url}/api/alerts?status=firing,acknowledged`, { headers: { authorization: `Bearer ${await admin()}` } });
    expect(empty.status).toBe(200);
    expect(await empty.json()).toEqual({ alerts: [], endCursor: null, hasNextPage: false });
  });
});
