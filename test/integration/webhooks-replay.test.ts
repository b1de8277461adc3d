/**
 * Webhook replays from the event log (`replayWebhooks`), in both delivery modes: the endpoint's
 * events are found however many other events the range holds, an entity's events are replayed
 * across topics in the order they were delivered, and a range with more events than one replay
 * sends is refused rather than cut; a replay of the failed ones (`onlyFailed`) leaves out an event
 * delivered, or pending again, since its latest dead letter; and an endpoint's pending deliveries
 * made by an admin are bounded.
 */
import { describe, expect, it } from 'vitest';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { publishToTopics } from '../helpers/analytics.ts';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv, type PipelineMode } from '../helpers/events.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const BASE_ENV = { JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' };
/** What one replay sends at most (webhook-admin.ts). */
const MAX_REPLAY = 10_000;
/** Pending deliveries made by replays, redeliveries and tests an endpoint may have (webhook-admin.ts). */
const MAX_ADMIN_PENDING = 20_000;

const CREATE = 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }';
const REPLAY = 'mutation($e: ID!, $s: DateTime!) { replayWebhooks(endpointId: $e, since: $s) }';
const REPLAY_FAILED = 'mutation($e: ID!, $s: DateTime!) { replayWebhooks(endpointId: $e, since: $s, onlyFailed: true) }';
const REDELIVER = 'mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { id } }';
const SEND_TEST = 'mutation($e: ID!) { sendTestWebhook(endpointId: $e) { id } }';
const PUBLISH = 'mutation($topic: String!, $type: String!) { publish(topic: $topic, type: $type, payload: {}) { id } }';

/** An admin of the whole environment (no tenant). */
function admin(): Promise<string> {
  return signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
}

function startServer(mode: PipelineMode, env: Record<string, string> = {}): Promise<TestServer> {
  return startTestServer({ ...BASE_ENV, ...modeEnv(mode), ...env });
}

async function createEndpoint(server: TestServer, input: Record<string, unknown>): Promise<string> {
  const body = await gql(server, await admin(), CREATE, { input });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;
}

async function publish(server: TestServer, topic: string, type: string): Promise<string> {
  const body = await gql(server, await admin(), PUBLISH, { topic, type });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['publish'] as { id: string }).id;
}

interface ListedDelivery {
  readonly id: string;
  readonly eventId: string;
  readonly state: 'PENDING' | 'DELIVERED' | 'DEAD';
  readonly trigger: 'INITIAL' | 'REPLAY' | 'MANUAL' | 'TEST';
}

/** The endpoint's deliveries, newest first. */
async function deliveries(server: TestServer, endpointId: string): Promise<ListedDelivery[]> {
  const body = await gql(server, await admin(), 'query($e: ID) { webhookDeliveries(endpointId: $e, first: 200) { nodes { id eventId state trigger } } }', { e: endpointId });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['webhookDeliveries'] as { nodes: ListedDelivery[] }).nodes;
}

async function redeliver(server: TestServer, deliveryId: string): Promise<string> {
  const body = await gql(server, await admin(), REDELIVER, { d: deliveryId });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['redeliverWebhook'] as { id: string }).id;
}

/** Resolves once the clock has passed `time`: what is routed next has a later event time. */
function laterThan(time: number): Promise<boolean> {
  return waitFor(() => Date.now() > time, { intervalMs: 1 });
}

describe.each(MODES)('webhook replays (%s delivery)', (mode) => {
  it('finds the endpoint’s events behind 10,000 events it does not select, and refuses a range with more than one replay sends', { timeout: 120_000 }, async () => {
    // Every stream keeps the whole flood: what the replay finds does not depend on the log's trimming.
    // One admin publishes the flood as fast as it can.
    const server = await startServer(mode, { EVENT_LOG_MAX_EVENTS: '20000', GRAPHQL_MAX_ALIASES: '500', GRAPHQL_MAX_TOKENS: '100000', PUBLISH_RATE_PER_SECOND: '10000000' });
    const token = await admin();
    const since = new Date(Date.now() - 1_000).toISOString();
    // 10,000 events of a type the endpoint does not select (`message`), in a topic one of its event
    // types is in, then one event of each of its selections.
    await publishToTopics(server, Array.from({ length: MAX_REPLAY }, () => 'orders'), 500, token);
    const afterFlood = Date.now();
    await laterThan(afterFlood);
    const selected = [await publish(server, 'orders', 'order.created'), await publish(server, 'invoices', 'invoice.created')];

    const receiver = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['order.created', 'invoices'] });
    const replayed = await gql(server, token, REPLAY, { e: endpoint, s: since });
    expect(replayed.errors, JSON.stringify(replayed.errors)).toBeUndefined();
    expect(replayed.data).toEqual({ replayWebhooks: 2 });
    // Events without an entity: each its own lane, in no order.
    const received = await receiver.waitForCount(2);
    expect(new Set(received.map((request) => request.headers['webhook-id']))).toEqual(new Set(selected));

    // Every event of the range is this one's: 10,002, more than a replay sends. Refused, nothing is
    // stored, and the range after the flood replays.
    const everything = await createEndpoint(server, { url: receiver.url, events: ['orders', 'invoices'] });
    const refused = await gql(server, token, REPLAY, { e: everything, s: since });
    expect(refused.data).toBeNull();
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'until', limit: MAX_REPLAY });
    const stored = await gql(server, token, 'query($e: ID) { webhookDeliveries(endpointId: $e) { nodes { id } } }', { e: everything });
    expect(stored.data).toEqual({ webhookDeliveries: { nodes: [] } });
    const narrowed = await gql(server, token, REPLAY, { e: everything, s: new Date(afterFlood + 1).toISOString() });
    expect(narrowed.data).toEqual({ replayWebhooks: 2 });
  });

  it('replays an entity’s events across topics in the order they were delivered', { timeout: 60_000 }, async () => {
    const appDb = await createTestDatabase();
    const app = openTestPool(appDb.url);
    const server = await startServer(mode, { OUTBOX_POLL_INTERVAL_MS: '50' });
    const token = await admin();
    const source = await gql(server, token, 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, createTable: true, mode: POLL) { mode } }', { url: appDb.url });
    expect(source.errors, JSON.stringify(source.errors)).toBeUndefined();
    const receiver = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders', 'invoices'] });
    const since = new Date(Date.now() - 1_000).toISOString();

    // One event at a time, each routed in a later millisecond than the one before: two topics'
    // events of one millisecond have no order the log keeps.
    const topics = ['orders', 'invoices', 'orders', 'invoices', 'orders'];
    for (const [seq, topic] of topics.entries()) {
      await enqueueOutboxEvent(app, { topic, type: `${topic}.updated`, payload: { seq }, tenant: 'a', entity: 'order-1' });
      await laterThan((await receiver.waitForCount(seq + 1))[seq]!.receivedAt);
    }
    const delivered = receiver.received.map((request) => `${request.json.topic}#${String(request.json.data['seq'])}`);
    expect(delivered).toEqual(['orders#0', 'invoices#1', 'orders#2', 'invoices#3', 'orders#4']);

    const replayed = await gql(server, token, REPLAY, { e: endpoint, s: since });
    expect(replayed.data).toEqual({ replayWebhooks: 5 });
    const received = await receiver.waitForCount(10);
    expect(received.slice(5).map((request) => `${request.json.topic}#${String(request.json.data['seq'])}`)).toEqual(delivered);
  });

  it('replays with onlyFailed the events whose latest delivery is dead, not one delivered or pending again since its dead letter', { timeout: 60_000 }, async () => {
    // A failed attempt past a one-second window dead-letters its delivery; C's hanging attempt
    // stays in flight (pending) for the rest of the test, however slow the machine.
    const server = await startServer(mode, { WEBHOOK_RETRY_WINDOW_SECONDS: '1', WEBHOOK_TIMEOUT_MS: '120000' });
    const token = await admin();
    const receiver = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders'] });
    const since = new Date(Date.now() - 1_000).toISOString();
    const dead = async (count: number) =>
      waitFor(async () => (await deliveries(server, endpoint)).filter((delivery) => delivery.state === 'DEAD').length === count, { timeoutMs: 20_000, message: `${count} dead letters` });

    // D is delivered, then a redelivery of it is dead-lettered; A, B and C are dead-lettered at once.
    const d = await publish(server, 'orders', 'order.created');
    await waitFor(async () => (await deliveries(server, endpoint))[0]?.state === 'DELIVERED', { timeoutMs: 10_000, message: 'D delivered' });
    const [dInitial] = await deliveries(server, endpoint);
    expect(dInitial).toMatchObject({ eventId: d, trigger: 'INITIAL' });
    receiver.respond = () => 500;
    const dRedelivered = await redeliver(server, dInitial!.id);
    const [a, b, c] = [await publish(server, 'orders', 'order.created'), await publish(server, 'orders', 'order.created'), await publish(server, 'orders', 'order.created')];
    await dead(4);
    const deadOf = async (eventId: string) => (await deliveries(server, endpoint)).find((delivery) => delivery.eventId === eventId && delivery.state === 'DEAD')!.id;
    expect(await deadOf(d)).toBe(dRedelivered);

    // B's dead letter redelivered, and delivered; C's redelivered, and still in flight (pending).
    receiver.respond = () => 204;
    const bRedelivered = await redeliver(server, await deadOf(b));
    await waitFor(async () => (await deliveries(server, endpoint)).some((delivery) => delivery.id === bRedelivered && delivery.state === 'DELIVERED'), {
      timeoutMs: 10_000,
      message: 'B delivered again',
    });
    receiver.respond = (request) => (request.headers['webhook-id'] === c ? 'hang' : 204);
    const sent = receiver.received.length;
    const cRedelivered = await redeliver(server, await deadOf(c));
    expect((await receiver.waitForCount(sent + 1))[sent]!.headers['webhook-id']).toBe(c);
    expect((await deliveries(server, endpoint)).find((delivery) => delivery.id === cRedelivered)).toMatchObject({ state: 'PENDING' });

    // A (dead only) and D (dead after a delivery) are replayed; B and C are not.
    const before = receiver.received.length;
    const replayed = await gql(server, token, REPLAY_FAILED, { e: endpoint, s: since });
    expect(replayed.errors, JSON.stringify(replayed.errors)).toBeUndefined();
    expect(replayed.data).toEqual({ replayWebhooks: 2 });
    const replays = (await deliveries(server, endpoint)).filter((delivery) => delivery.trigger === 'REPLAY');
    expect(new Set(replays.map((delivery) => delivery.eventId))).toEqual(new Set([a, d]));
    const received = await receiver.waitForCount(before + 2);
    expect(new Set(received.slice(before).map((request) => request.headers['webhook-id']))).toEqual(new Set([a, d]));
    // A second replay of the failed ones finds A and D pending or delivered now: nothing to send.
    expect((await gql(server, token, REPLAY_FAILED, { e: endpoint, s: since })).data).toEqual({ replayWebhooks: 0 });
  });

  it('refuses a replay, redelivery or test that would leave the endpoint over 20,000 pending deliveries made by an admin, storing nothing', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase();
    const pool = openTestPool(database.url);
    const server = await startServer(mode, { DATABASE_URL: database.url });
    const token = await admin();
    const receiver = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders'] });
    const since = new Date(Date.now() - 1_000).toISOString();
    const eventId = await publish(server, 'orders', 'order.created');
    await receiver.waitForCount(1);
    const initial = await pool.query<{ id: string }>(`SELECT id::text FROM webhook_deliveries WHERE event_id = $1`, [eventId]);
    // One short of the limit: replays of yesterday's events, each its own lane, due tomorrow (nothing sends them meanwhile).
    await pool.query(
      `INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, topic, lane, body, trigger, next_attempt_at, event_time)
       SELECT $1, 'evt_backlog_' || n, 'order.created', 'orders', 'backlog-' || n, '{}', 'replay', now() + interval '1 day', now() - interval '1 day'
         FROM generate_series(1, $2::int) n`,
      [endpoint, MAX_ADMIN_PENDING - 1],
    );
    const adminMade = async () => (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = $1 AND trigger <> 'initial'`, [endpoint])).rows[0]!.n;

    // The last place is taken by a test event, which stays pending (its receiver does not answer it);
    // then each kind of admin delivery is refused.
    receiver.respond = (request) => (request.json.type === 'webhook.test' ? 'hang' : 204);
    const tested = await gql(server, token, SEND_TEST, { e: endpoint });
    expect(tested.errors, JSON.stringify(tested.errors)).toBeUndefined();
    for (const [query, variables] of [
      [REPLAY, { e: endpoint, s: since }],
      [REDELIVER, { d: initial.rows[0]!.id }],
      [SEND_TEST, { e: endpoint }],
    ] as const) {
      const refused = await gql(server, token, query, variables);
      expect(refused.data).toBeNull();
      expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', pending: MAX_ADMIN_PENDING, limit: MAX_ADMIN_PENDING });
    }
    expect(await adminMade()).toBe(MAX_ADMIN_PENDING);

    // One of them has gone out: of two replays asked at once (one event each), one fits and the other is refused.
    // The replay that fits stays pending (its receiver does not answer it): sent and delivered before
    // the other one counted, it would have made room for that one too.
    await receiver.waitForCount(2);
    receiver.respond = () => 'hang';
    await pool.query(`UPDATE webhook_deliveries SET state = 'delivered', finished_at = now() WHERE event_id = 'evt_backlog_1'`);
    const both = await Promise.all([0, 1].map(() => gql(server, token, REPLAY, { e: endpoint, s: since })));
    expect(both.map((answer) => answer.data?.['replayWebhooks'] ?? answer.errors?.[0]?.extensions?.['code']).sort()).toEqual([1, 'RATE_LIMITED']);
    const [, , replayed] = await receiver.waitForCount(3);
    expect(replayed!.headers['webhook-id']).toBe(eventId);
  });
});
