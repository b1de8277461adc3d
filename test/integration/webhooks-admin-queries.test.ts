/**
 * The admin's view of the webhook log and endpoints: `webhookAttempts` and `webhookDeliveries`
 * filters each return exactly their rows — checked against a known mix of deliveries (two event
 * types, two endpoints, a receiver that fails once) — and `deleteWebhookEndpoint` takes the
 * endpoint and its pending deliveries away; a delivery's `body` is the bytes its receiver got, and
 * `webhookEndpoint(id)` answers one endpoint to its admins, null to anyone else's. The filters are
 * SQL over the platform database, the same in every delivery mode: the embedded one is used, but
 * for deletion, which BullMQ's delayed jobs make different.
 */
import { describe, expect, it } from 'vitest';
import { verifyWebhook } from '@tributary/client/webhooks';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv, type PipelineMode } from '../helpers/events.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const CREATE = 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }';
const PUBLISH = 'mutation($topic: String!, $type: String!) { publish(topic: $topic, type: $type, payload: {}) { id } }';
const ATTEMPTS = `query($e: ID, $d: ID, $o: String, $t: String, $s: DateTime, $u: DateTime) {
  webhookAttempts(endpointId: $e, deliveryId: $d, outcome: $o, eventType: $t, since: $s, until: $u) { nodes { endpointId eventId attempt outcome status createdAt } }
}`;
const DELIVERIES = `query($e: ID, $t: String, $s: DateTime, $u: DateTime) {
  webhookDeliveries(endpointId: $e, eventType: $t, since: $s, until: $u) { nodes { id endpointId eventId eventType state eventTime } }
}`;

interface Attempt {
  readonly endpointId: string;
  readonly eventId: string;
  readonly attempt: number;
  readonly outcome: string;
  readonly status: number | null;
  readonly createdAt: string;
}

interface Delivery {
  readonly id: string;
  readonly endpointId: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly state: string;
  readonly eventTime: string;
}

/** An admin of the whole environment (no tenant: the default claims have one), or of `claims`' tenant or environment. */
function admin(claims: { readonly tenant?: string; readonly env?: string } = {}): Promise<string> {
  return signHs256({ roles: ['admin'], tenant: undefined, permissions: [], ...claims });
}

function startServer(mode: PipelineMode = 'memory', env: Record<string, string> = {}): Promise<TestServer> {
  return startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', ...modeEnv(mode), ...env });
}

async function createEndpoint(server: TestServer, input: Record<string, unknown>): Promise<string> {
  const body = await gql(server, await admin(), CREATE, { input });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;
}

async function publish(server: TestServer, topic: string, type: string): Promise<string> {
  const body = await gql(server, await signHs256({ tenant: 'a', permissions: [`${topic}.publish`] }), PUBLISH, { topic, type });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['publish'] as { id: string }).id;
}

async function attempts(server: TestServer, filter: Record<string, string> = {}): Promise<Attempt[]> {
  const body = await gql(server, await admin(), ATTEMPTS, filter);
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['webhookAttempts'] as { nodes: Attempt[] }).nodes;
}

async function deliveries(server: TestServer, filter: Record<string, string> = {}): Promise<Delivery[]> {
  const body = await gql(server, await admin(), DELIVERIES, filter);
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['webhookDeliveries'] as { nodes: Delivery[] }).nodes;
}

/** Attempts as `endpoint event #attempt outcome`, sorted: a set of rows to compare whole. */
function rowsOf(list: readonly Attempt[], names: Record<string, string>): string[] {
  return list.map((each) => `${names[each.endpointId]} ${names[each.eventId]} #${each.attempt} ${each.outcome}`).sort();
}

/** Just after the latest of `times` (ISO, as the API gives them, to the ms): a bound between it and anything later. */
function justAfter(times: readonly string[]): string {
  return new Date(Math.max(...times.map((time) => Date.parse(time))) + 1).toISOString();
}

describe('webhook log queries', () => {
  it('filters attempts by outcome, event type, delivery and time, and deliveries by event type and event time, to exactly their rows', { timeout: 60_000 }, async () => {
    const server = await startServer();
    // The billing receiver fails the first order event once (its retry, ~1 s later, succeeds).
    const billing = await startWebhookReceiver();
    let failed = false;
    billing.respond = (request) => {
      if (failed || request.json.type !== 'order.updated') return 204;
      failed = true;
      return 500;
    };
    const search = await startWebhookReceiver();
    const billingId = await createEndpoint(server, { url: billing.url, events: ['orders', 'invoices'] });
    const searchId = await createEndpoint(server, { url: search.url, events: ['orders'] });

    const order = await publish(server, 'orders', 'order.updated');
    const invoice = await publish(server, 'invoices', 'invoice.paid');
    const names: Record<string, string> = { [billingId]: 'billing', [searchId]: 'search', [order]: 'order', [invoice]: 'invoice' };
    // Four attempts: the order to billing twice (500, then 204), the invoice to billing, the order to search.
    await waitFor(async () => (await attempts(server)).length === 4, { timeoutMs: 15_000, message: 'four attempts logged' });
    const firstRound = await attempts(server);
    expect(rowsOf(firstRound, names)).toEqual(['billing invoice #1 delivered', 'billing order #1 failed', 'billing order #2 delivered', 'search order #1 delivered']);

    // A later order event: two more attempts, every one of them after `between`.
    const between = justAfter(firstRound.map((each) => each.createdAt));
    const betweenEvents = justAfter((await deliveries(server)).map((each) => each.eventTime));
    const later = await publish(server, 'orders', 'order.updated');
    names[later] = 'later';
    await waitFor(async () => (await attempts(server)).length === 6, { timeoutMs: 15_000, message: 'six attempts logged' });

    expect(rowsOf(await attempts(server, { o: 'failed' }), names)).toEqual(['billing order #1 failed']);
    expect(rowsOf(await attempts(server, { o: 'delivered', e: searchId }), names)).toEqual(['search later #1 delivered', 'search order #1 delivered']);
    expect(await attempts(server, { o: 'gone' })).toEqual([]);
    expect(rowsOf(await attempts(server, { t: 'invoice.paid' }), names)).toEqual(['billing invoice #1 delivered']);
    expect(rowsOf(await attempts(server, { t: 'order.updated', e: billingId, u: between }), names)).toEqual(['billing order #1 failed', 'billing order #2 delivered']);
    expect(rowsOf(await attempts(server, { s: between }), names)).toEqual(['billing later #1 delivered', 'search later #1 delivered']);
    expect(rowsOf(await attempts(server, { u: between }), names)).toEqual(rowsOf(firstRound, names));

    // One delivery's attempts, newest first.
    const billingOrder = (await deliveries(server, { e: billingId, t: 'order.updated', u: betweenEvents }))[0]!;
    expect(billingOrder).toMatchObject({ eventId: order, state: 'DELIVERED' });
    const ofDelivery = await attempts(server, { d: billingOrder.id });
    expect(ofDelivery.map(({ eventId, attempt, status }) => ({ eventId, attempt, status }))).toEqual([
      { eventId: order, attempt: 2, status: 204 },
      { eventId: order, attempt: 1, status: 500 },
    ]);

    // Deliveries by event type and by event time.
    const deliveryRows = (list: readonly Delivery[]) => list.map((each) => `${names[each.endpointId]} ${names[each.eventId]}`).sort();
    expect(deliveryRows(await deliveries(server, { t: 'invoice.paid' }))).toEqual(['billing invoice']);
    expect(deliveryRows(await deliveries(server, { t: 'order.updated' }))).toEqual(['billing later', 'billing order', 'search later', 'search order']);
    expect(deliveryRows(await deliveries(server, { s: betweenEvents }))).toEqual(['billing later', 'search later']);
    expect(deliveryRows(await deliveries(server, { u: betweenEvents }))).toEqual(['billing invoice', 'billing order', 'search order']);
    expect(deliveryRows(await deliveries(server, { e: searchId, s: betweenEvents }))).toEqual(['search later']);
  });
});

describe.each(MODES)('deleting a webhook endpoint (%s delivery)', (mode) => {
  it('removes it from the list with its pending deliveries, and sends it nothing published afterwards', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase();
    const server = await startServer(mode, { DATABASE_URL: database.url });
    const platform = openTestPool(database.url);
    // Throttled for an hour after its first attempt: its delivery stays pending, nothing in flight.
    const doomed = await startWebhookReceiver();
    doomed.respond = () => ({ status: 503, headers: { 'retry-after': '3600' } });
    const kept = await startWebhookReceiver();
    const doomedId = await createEndpoint(server, { url: doomed.url, events: ['orders'] });
    const keptId = await createEndpoint(server, { url: kept.url, events: ['orders'] });
    await publish(server, 'orders', 'order.updated');
    await waitFor(async () => (await attempts(server, { e: doomedId })).length === 1, { timeoutMs: 10_000, message: 'the first attempt logged' });
    expect(await deliveries(server, { e: doomedId })).toMatchObject([{ state: 'PENDING' }]);

    const deleted = await gql(server, await admin(), 'mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }', { id: doomedId });
    expect(deleted).toEqual({ data: { deleteWebhookEndpoint: true } });
    const listed = await gql(server, await admin(), '{ webhookEndpoints { id } }');
    expect(listed.data).toEqual({ webhookEndpoints: [{ id: keptId }] });
    const left = await platform.query('SELECT id FROM webhook_deliveries WHERE endpoint_id = $1', [doomedId]);
    expect(left.rows).toEqual([]);
    // Gone for the admin too: its log is NOT_FOUND, as is a second delete.
    const again = await gql(server, await admin(), 'mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }', { id: doomedId });
    expect(again.errors?.[0]).toMatchObject({ extensions: { code: 'NOT_FOUND' } });

    // Published after: stored for the kept endpoint only (before the publish was answered), and sent to it.
    const after = await publish(server, 'orders', 'order.updated');
    const stored = await platform.query<{ endpoint_id: string }>('SELECT endpoint_id FROM webhook_deliveries WHERE event_id = $1', [after]);
    expect(stored.rows).toEqual([{ endpoint_id: keptId }]);
    await waitFor(() => kept.received.some((request) => request.json.id === after), { timeoutMs: 10_000, message: 'the kept endpoint got it' });
    expect(doomed.received).toHaveLength(1);
  });
});

describe('deleting a webhook endpoint in a cluster', () => {
  it('fails no publish on another instance that has not reloaded its endpoints yet, and sends the deleted endpoint nothing', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase();
    const cluster = { ...modeEnv('redis'), DATABASE_URL: database.url };
    const first = await startServer('redis', cluster);
    const doomed = await startWebhookReceiver();
    const kept = await startWebhookReceiver();
    const doomedId = await createEndpoint(first, { url: doomed.url, events: ['orders'] });
    await createEndpoint(first, { url: kept.url, events: ['orders'] });
    // Started after the creations, the second instance has loaded both endpoints, and does not look
    // again within the test: its publish finds the deleted one still in its cache, every time.
    const second = await startServer('redis', { ...cluster, WEBHOOK_ENDPOINT_REFRESH_MS: '600000' });
    const deleted = await gql(first, await admin(), 'mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }', { id: doomedId });
    expect(deleted).toEqual({ data: { deleteWebhookEndpoint: true } });

    const after = await publish(second, 'orders', 'order.updated');
    await waitFor(() => kept.received.some((request) => request.json.id === after), { timeoutMs: 10_000, message: 'the kept endpoint got it' });
    expect(doomed.received).toHaveLength(0);
  });
});

describe('webhook admin lookups', () => {
  it("shows each delivery's body: the bytes its receiver got and verified, a too-large event's without its data", { timeout: 60_000 }, async () => {
    const server = await startServer('memory', { WEBHOOK_MAX_BODY_BYTES: '1024' });
    const receiver = await startWebhookReceiver();
    const created = await gql(server, await admin(), 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } secret } }', {
      input: { url: receiver.url, events: ['orders'] },
    });
    expect(created.errors, JSON.stringify(created.errors)).toBeUndefined();
    const { endpoint, secret } = created.data?.['createWebhookEndpoint'] as { endpoint: { id: string }; secret: string };
    const publisher = await signHs256({ tenant: 'a', permissions: ['orders.publish'] });
    const publishData = async (payload: Record<string, unknown>) => {
      const body = await gql(server, publisher, 'mutation($payload: JSON!) { publish(topic: "orders", type: "order.updated", payload: $payload) { id } }', { payload });
      expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
      return (body.data?.['publish'] as { id: string }).id;
    };
    // Not ASCII, and past the limit: both are stored as sent.
    const small = await publishData({ note: 'café ✓ 🚚', n: 1 });
    const large = await publishData({ blob: 'x'.repeat(2_000) });
    const received = await receiver.waitForCount(2);

    const listed = await gql(server, await admin(), 'query($e: ID) { webhookDeliveries(endpointId: $e) { nodes { eventId body } } }', { e: endpoint.id });
    expect(listed.errors, JSON.stringify(listed.errors)).toBeUndefined();
    const bodies = new Map((listed.data?.['webhookDeliveries'] as { nodes: { eventId: string; body: string }[] }).nodes.map((each) => [each.eventId, each.body]));
    expect([...bodies.keys()].sort()).toEqual([small, large].sort());
    for (const request of received) {
      const body = bodies.get(request.json.id)!;
      expect(Buffer.from(body, 'utf8').equals(Buffer.from(request.body, 'utf8')), request.json.id).toBe(true);
      // The bytes signed: the receiver's signature verifies over the body the API shows.
      expect(verifyWebhook(body, request.headers as Record<string, string>, secret).id).toBe(request.json.id);
    }
    expect(JSON.parse(bodies.get(small)!)).toMatchObject({ id: small, type: 'order.updated', topic: 'orders', data: { note: 'café ✓ 🚚', n: 1 } });
    const largeBody = bodies.get(large)!;
    expect(Buffer.byteLength(largeBody)).toBeLessThanOrEqual(1024);
    expect(JSON.parse(largeBody)).toMatchObject({ id: large, data: null, dataOmitted: expect.stringContaining('1024') as unknown });
  });

  it('answers webhookEndpoint(id) to its admins, null to another tenant or environment and for an id of no endpoint, FORBIDDEN to a non-admin', { timeout: 60_000 }, async () => {
    const server = await startServer();
    const receiver = await startWebhookReceiver();
    const id = await createEndpoint(server, { url: receiver.url, events: ['orders'], tenant: 'a', description: 'billing' });
    const FIELDS = 'id url description events tenant enabled disabledReason rateLimitPerSecond maxConcurrency createdAt updatedAt';
    const one = (token: string, endpointId: string) => gql(server, token, `query($id: ID!) { webhookEndpoint(id: $id) { ${FIELDS} } }`, { id: endpointId });

    // As the list shows it, to the environment's admin and to its tenant's.
    const listed = await gql(server, await admin(), `{ webhookEndpoints { ${FIELDS} } }`);
    const expected = (listed.data?.['webhookEndpoints'] as { id: string }[]).find((each) => each.id === id);
    expect(expected).toMatchObject({ id, url: receiver.url, description: 'billing', events: ['orders'], tenant: 'a' });
    expect(await one(await admin(), id)).toEqual({ data: { webhookEndpoint: expected } });
    expect(await one(await admin({ tenant: 'a' }), id)).toEqual({ data: { webhookEndpoint: expected } });

    // Another tenant's or environment's admin: null, exactly as for an endpoint that does not exist.
    expect(await one(await admin({ tenant: 'b' }), id)).toEqual({ data: { webhookEndpoint: null } });
    expect(await one(await admin({ env: 'staging' }), id)).toEqual({ data: { webhookEndpoint: null } });
    expect(await one(await admin(), 'ep_0000000000000000')).toEqual({ data: { webhookEndpoint: null } });
    // Not an endpoint id's shape: null too, never an error.
    for (const malformed of ['nope', '', `${id}x`, "ep_' OR 1=1 --xxxx", '12345']) {
      expect(await one(await admin(), malformed), malformed).toEqual({ data: { webhookEndpoint: null } });
    }

    // Not an admin: FORBIDDEN, as for the list.
    const notAdmin = await signHs256({ tenant: 'a', permissions: ['orders.publish'] });
    expect((await one(notAdmin, id)).errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    expect((await gql(server, notAdmin, '{ webhookEndpoints { id } }')).errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
  });
});
