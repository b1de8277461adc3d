/**
 * The cluster dashboard against real Redis and Postgres: two instances report every tick, the
 * dashboard (GraphQL and REST) shows both and the cluster they make, `dashboardUpdates` pushes it,
 * an instance that stops drops out, only the operators' environment admins see it, REST answers
 * the GraphQL type's fields under their names, and the cluster alert rules read its figures (a
 * connections alert fires).
 */
import { describe, expect, it } from 'vitest';
import { gql, setUpCdc } from '../helpers/cdc.ts';
import { expectRefusedSubscription } from '../helpers/events.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const OPERATORS = { app: 'ops', env: 'prod' };

const ENV = {
  JWT_SECRET: TEST_SECRET,
  OPERATOR_SCOPE: 'ops/prod',
  DASHBOARD_TICK_SECONDS: '1',
  ALERTS_EVALUATE_SECONDS: '1',
  ALERTS_MAX_CONNECTIONS: '1',
  ALERTS_FIRE_AFTER: '2',
};

const operator = () => signHs256({ sub: 'ops-admin', ...OPERATORS, roles: ['admin'], permissions: [], tenant: undefined });

interface Figures {
  connections: number;
  eventsPerSecondBySource: { source: string; perSecond: number }[];
  deliveriesPerSecond: number;
  latencyP99Ms: number | null;
}

interface DashboardView {
  cluster: Figures;
  instances: { instance: string; role: string; figures: Figures }[];
}

const FIGURES = 'connections eventsPerSecondBySource { source perSecond } deliveriesPerSecond latencyP99Ms';

async function dashboard(server: TestServer): Promise<DashboardView> {
  const body = await gql(server, await operator(), `{ dashboard { cluster { ${FIGURES} } instances { instance role figures { ${FIGURES} } } } }`);
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data?.['dashboard'] as DashboardView;
}

/** Waits for `probe` to find something. */
async function found<T>(probe: () => Promise<T | undefined>, options: Parameters<typeof waitFor>[1]): Promise<T> {
  return (await waitFor(probe, options)) as T;
}

const socketRate = (figures: Figures) => figures.eventsPerSecondBySource.find((rate) => rate.source === 'socket')?.perSecond ?? 0;

/** Every field of `DashboardFigures`, for comparing REST with GraphQL. */
const EVERY_FIGURE = `connections subscriptions eventsPerSecond eventsPerSecondBySource { source perSecond } deliveriesPerSecond bytesPerSecond
  latencyP50Ms latencyP99Ms webhooks { deliveredPerSecond failedPerSecond failureRate pending oldestPendingSeconds }
  cdc { source lagBytes retainedWalBytes safeWalBytes } outboxes { outbox pending oldestPendingSeconds } resyncsPerSecond slowConsumerClosesPerSecond`;

interface GraphQLDashboard {
  cluster: { cdc: unknown[] };
  instances: { instance: string; startedAt: string; reportedAt: string; figures: { cdc: unknown[] } }[];
}

/** The field names of a JSON value at every level, sorted (a list: its first item's). */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shapeOf(value[0])];
  if (typeof value !== 'object' || value === null) return 'value';
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, shapeOf((value as Record<string, unknown>)[key])]));
}

describe('cluster dashboard', () => {
  it('shows every instance and the cluster they make, pushes it every tick, and drops an instance that stopped', { timeout: 90_000 }, async () => {
    const database = await createTestDatabase();
    const shared = { ...ENV, DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() };
    const first = await startTestServer(shared);
    const second = await startTestServer(shared, { autoDispose: false });

    // A subscriber on the first instance, events published on the second (delivered through Redis).
    const subscriber = await openAcknowledgedSocket(first.wsUrl, await signHs256({ ...OPERATORS, tenant: undefined, permissions: ['orders.read'] }));
    subscriber.send({ id: 'orders', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { id } }' } });
    const publisher = await signHs256({ ...OPERATORS, tenant: undefined, permissions: ['orders.publish'] });
    const publish = async () => {
      const body = await gql(second, publisher, 'mutation { publish(topic: "orders", payload: { n: 1 }) { id } }');
      expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
    };

    // Publishing until a tick has counted some: both instances report, the cluster sums them.
    const view: DashboardView = await found(
      async () => {
        await publish();
        const seen = await dashboard(first);
        return seen.instances.length === 2 && socketRate(seen.cluster) > 0 && seen.cluster.deliveriesPerSecond > 0 ? seen : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, message: 'the dashboard showed both instances with traffic' },
    );
    expect(view.cluster.connections).toBe(1);
    expect(view.instances.map((instance) => instance.figures.connections).sort()).toEqual([0, 1]);
    expect(view.instances.every((instance) => instance.role === 'all')).toBe(true);
    expect(view.cluster.latencyP99Ms).not.toBeNull();
    // Counts are each instance's own: the cluster's rate is their sum.
    const summed = view.instances.reduce((sum, instance) => sum + socketRate(instance.figures), 0);
    expect(socketRate(view.cluster)).toBeCloseTo(summed, 6);

    // dashboardUpdates pushes it every tick.
    const screen = await openAcknowledgedSocket(first.wsUrl, await operator());
    screen.send({ id: 'live', type: 'subscribe', payload: { query: 'subscription { dashboardUpdates { cluster { connections } instances { instance } } }' } });
    const pushed = await screen.waitForMessage((message) => message.type === 'next' && message.id === 'live');
    const live = (pushed.payload as { data: { dashboardUpdates: { cluster: { connections: number }; instances: unknown[] } } }).data.dashboardUpdates;
    expect(live.cluster.connections).toBeGreaterThanOrEqual(1);
    expect(live.instances.length).toBeGreaterThanOrEqual(1);

    // REST, same token.
    const rest = await fetch(`http://127.0.0.1:${first.port}/api/metrics/dashboard`, { headers: { authorization: `Bearer ${await operator()}` } });
    expect(rest.status).toBe(200);
    expect(((await rest.json()) as { instances: unknown[] }).instances.length).toBeGreaterThanOrEqual(1);

    // An instance that stops leaves the view at once.
    await second.dispose();
    await waitFor(async () => (await dashboard(first)).instances.length === 1, { timeoutMs: 10_000, message: 'the stopped instance dropped out' });
  });

  it('raises the cluster connections alert from the instances’ reports', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ ...ENV, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    // Two sockets: over ALERTS_MAX_CONNECTIONS (1).
    await openAcknowledgedSocket(server.wsUrl, await operator());
    await openAcknowledgedSocket(server.wsUrl, await operator());
    const fired = await waitFor(
      async () => {
        const body = await gql(server, await operator(), '{ alerts(status: [FIRING]) { nodes { rule subject value } } }');
        expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
        return (body.data?.['alerts'] as { nodes: { rule: string; subject: string; value: number }[] }).nodes.find((alert) => alert.rule === 'cluster.connections');
      },
      { timeoutMs: 30_000, message: 'the cluster connections alert fired' },
    );
    expect(fired).toMatchObject({ subject: 'cluster', value: 2 });
  });

  it('answers over REST with the GraphQL type’s fields under the same names, times in ms', { timeout: 90_000 }, async () => {
    // A CDC source, so that the figures list a reader (the internal view holds its whole status).
    const setup = await setUpCdc({ env: { OPERATOR_SCOPE: 'shop/prod', DASHBOARD_TICK_SECONDS: '1' } });
    const query = `{ dashboard { at cluster { ...f } instances { instance role startedAt reportedAt gone figures { ...f } } warnings } } fragment f on DashboardFigures { ${EVERY_FIGURE} }`;
    const graphql = await found(
      async () => {
        const body = await gql(setup.server, setup.admin, query);
        expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
        const view = body.data?.['dashboard'] as GraphQLDashboard;
        return view.cluster.cdc.length === 1 && view.instances[0]?.figures.cdc.length === 1 ? view : undefined;
      },
      { timeoutMs: 30_000, message: 'the dashboard listed the CDC reader' },
    );
    const response = await fetch(`${setup.server.url}/api/metrics/dashboard`, { headers: { authorization: `Bearer ${setup.admin}` } });
    expect(response.status).toBe(200);
    const rest = (await response.json()) as { at: unknown; instances: { instance: string; startedAt: unknown; reportedAt: unknown }[] };
    // The same names at every level (values move with each tick), only the times differ in form.
    expect(shapeOf(rest)).toEqual(shapeOf(graphql));
    expect(typeof rest.at).toBe('number');
    const [restInstance] = rest.instances;
    const [graphqlInstance] = graphql.instances;
    expect(restInstance?.instance).toBe(graphqlInstance?.instance);
    expect(restInstance?.startedAt).toBe(Date.parse(graphqlInstance?.startedAt ?? ''));
    expect(typeof restInstance?.reportedAt).toBe('number');
  });

  it('is for the admins of the operators’ environment only, over GraphQL and REST', { timeout: 60_000 }, async () => {
    const server = await startTestServer(ENV, { embedded: true });
    const otherAdmin = await signHs256({ sub: 'shop-admin', app: 'shop', env: 'prod', roles: ['admin'], tenant: undefined });
    const notAdmin = await signHs256({ ...OPERATORS, tenant: undefined, roles: [] });
    // An admin of the operators' environment whose token names a tenant administers that tenant only.
    const tenantAdmin = await signHs256({ sub: 'acme-admin', ...OPERATORS, roles: ['admin'], tenant: 'acme' });
    for (const token of [otherAdmin, notAdmin, tenantAdmin]) {
      const body = await gql(server, token, '{ dashboard { cluster { connections } } }');
      expect(body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
      const rest = await fetch(`http://127.0.0.1:${server.port}/api/metrics/dashboard`, { headers: { authorization: `Bearer ${token}` } });
      expect(rest.status).toBe(403);
      const screen = await openAcknowledgedSocket(server.wsUrl, token);
      screen.send({ id: 'live', type: 'subscribe', payload: { query: 'subscription { dashboardUpdates { at } }' } });
      await expectRefusedSubscription(screen, 'live', 'FORBIDDEN');
    }
    const anonymous = await fetch(`http://127.0.0.1:${server.port}/api/metrics/dashboard`);
    expect(anonymous.status).toBe(401);
    // Nobody publishes on Tributary's own topics, not even an admin: a forged dashboard or alert is refused.
    for (const topic of ['system.dashboard', 'system.alerts', 'webhooks.endpoints']) {
      const body = await gql(server, await operator(), 'mutation($t: String!) { publish(topic: $t, payload: { forged: true }) { id } }', { t: topic });
      expect(body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    }
    // The embedded default (one process) reports too.
    const view = await waitFor(async () => (await dashboard(server)).instances.length === 1, { timeoutMs: 10_000, message: 'the embedded instance reported' });
    expect(view).toBe(true);
  });
});
