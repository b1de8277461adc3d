/**
 * Servers (role `server`, real Redis and Postgres) with no workers process: nothing measures the
 * webhook and outbox backlogs — only the workers roles do — so the dashboard says the figures are
 * unknown (null), never 0, while deliveries pile up in `webhook_deliveries`; and its warning tells
 * when a workers process last reported, also after one that stopped cleanly (which takes its
 * report out of the cluster view at once) — not "in the last 10 minutes" seconds after it stopped.
 */
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const ENV = { JWT_SECRET: TEST_SECRET, OPERATOR_SCOPE: 'ops/prod', DASHBOARD_TICK_SECONDS: '1', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' };
const STOPPED = /: outbox routing, webhook delivery and alerts are stopped$/;

const operator = () => signHs256({ sub: 'ops-admin', app: 'ops', env: 'prod', roles: ['admin'], permissions: [], tenant: undefined });

interface Backlogs {
  webhooks: { pending: number | null; oldestPendingSeconds: number | null };
  outboxes: unknown[] | null;
}

interface View {
  cluster: Backlogs;
  instances: { instance: string; role: string; reportedAt: string; gone: boolean; figures: Backlogs }[];
  warnings: string[];
}

const BACKLOGS = 'webhooks { pending oldestPendingSeconds } outboxes { outbox pending }';

async function dashboard(server: TestServer): Promise<View> {
  const body = await gql(server, await operator(), `{ dashboard { cluster { ${BACKLOGS} } instances { instance role reportedAt gone figures { ${BACKLOGS} } } warnings } }`);
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data?.['dashboard'] as View;
}

async function restDashboard(server: TestServer): Promise<View> {
  const response = await fetch(`${server.url}/api/metrics/dashboard`, { headers: { authorization: `Bearer ${await operator()}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as View;
}

/** Creates an endpoint for `topic` and publishes one event to it; the endpoint's id. */
async function pendingDelivery(server: TestServer, topic: string): Promise<string> {
  const token = await operator();
  const created = await gql(server, token, 'mutation($i: WebhookEndpointInput!) { createWebhookEndpoint(input: $i) { endpoint { id } } }', {
    // Never called: nothing delivers.
    i: { url: 'http://127.0.0.1:9/', events: [topic] },
  });
  expect(created.errors, JSON.stringify(created.errors)).toBeUndefined();
  const published = await gql(server, token, 'mutation($t: String!) { publish(topic: $t, payload: { n: 1 }) { id } }', { t: topic });
  expect(published.errors, JSON.stringify(published.errors)).toBeUndefined();
  return (created.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;
}

describe('the dashboard with no workers process', () => {
  it('reads the backlogs unknown, not 0, while a delivery is pending, and warns since when no workers process has reported after one stopped cleanly', { timeout: 90_000 }, async () => {
    const database = await createTestDatabase({ migrated: true });
    const pool = openTestPool(database.url);
    const shared = { ...ENV, DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() };
    const server = await startTestServer({ ...shared, TRIBUTARY_ROLE: 'server' });
    const workers = await startTestServer({ ...shared, TRIBUTARY_ROLE: 'workers' });

    // With a workers process reporting, the backlogs are measured: numbers.
    const measured = await waitFor(
      async () => {
        const view = await dashboard(server);
        return view.instances.some((instance) => instance.role === 'workers') && view.instances.some((instance) => instance.role === 'server') ? view : undefined;
      },
      { timeoutMs: 20_000, message: 'both instances reported' },
    );
    expect(measured?.cluster.webhooks.pending).toBe(0);
    expect(measured?.cluster.outboxes).toEqual([]);
    expect(measured?.warnings).toEqual([]);
    // A server measures no backlog of its own.
    expect(measured?.instances.find((instance) => instance.role === 'server')?.figures).toEqual({ webhooks: { pending: null, oldestPendingSeconds: null }, outboxes: null });
    const seenReport = Date.parse(measured?.instances.find((instance) => instance.role === 'workers')?.reportedAt ?? '');

    // A clean stop: its report leaves the cluster view at once.
    await workers.dispose();
    const stoppedBy = Date.now();
    await pendingDelivery(server, 'orders.pending');
    const { rows } = await pool.query<{ pending: number }>("SELECT count(*)::int AS pending FROM webhook_deliveries WHERE state = 'pending'");
    expect(rows[0]?.pending).toBe(1);

    for (const view of [await dashboard(server), await restDashboard(server)]) {
      expect(view.instances.map((instance) => instance.role)).toEqual(['server']);
      expect(view.cluster.webhooks).toMatchObject({ pending: null, oldestPendingSeconds: null });
      expect(view.cluster.outboxes).toBeNull();
      expect(view.instances[0]?.figures.webhooks.pending).toBeNull();
      // Since its last report, which the clean stop kept for the warning.
      expect(view.warnings).toHaveLength(1);
      const since = /^no workers process has reported since (\S+): outbox routing, webhook delivery and alerts are stopped$/.exec(view.warnings[0] ?? '');
      expect(since, view.warnings[0]).not.toBeNull();
      const at = Date.parse(since?.[1] ?? '');
      expect(at).toBeGreaterThanOrEqual(seenReport);
      expect(at).toBeLessThanOrEqual(stoppedBy);
    }
  });

  it('reads the backlogs unknown, not 0, when no workers process ever ran, and warns without quoting a time it does not know', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase({ migrated: true });
    const server = await startTestServer({ ...ENV, TRIBUTARY_ROLE: 'server', DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    await pendingDelivery(server, 'orders.never');
    const view = await waitFor(
      async () => {
        const seen = await dashboard(server);
        return seen.instances.length === 1 ? seen : undefined;
      },
      { timeoutMs: 10_000, message: 'the server reported itself' },
    );
    expect(view?.cluster.webhooks).toEqual({ pending: null, oldestPendingSeconds: null });
    expect(view?.cluster.outboxes).toBeNull();
    expect(view?.warnings).toHaveLength(1);
    expect(view?.warnings[0]).toMatch(/^no workers process has reported in the last 10 minutes: /);
    expect(view?.warnings[0]).toMatch(STOPPED);
  });
});
