/**
 * `publish(idempotencyKey:)`: a retry with the key is answered with the first try's event and
 * places nothing more; when the first try failed after its event went out (the platform database
 * away, so its webhook deliveries were not stored), the retry stores them.
 */
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { EVENT_FIELDS, MODES, modeEnv, subscribeEvents, takeEvents, waitForSubscribers, type DeliveredEvent } from '../helpers/events.ts';
import { Redis } from 'ioredis';
import { createRedisPublishKeys } from '../../src/pipeline/idempotency/redis-publish-keys.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const PUBLISH = `mutation($topic: String!, $payload: JSON!, $key: String) { publish(topic: $topic, payload: $payload, idempotencyKey: $key) { ${EVENT_FIELDS} } }`;

function publisher(tenant = 'tenant-a'): Promise<string> {
  return signHs256({ tenant, permissions: ['orders.publish', 'orders.read'] });
}

function publish(server: TestServer, token: string, payload: Record<string, unknown>, key?: string): Promise<GraphQLResponseBody> {
  return gql(server, token, PUBLISH, { topic: 'orders', payload, key });
}

function published(body: GraphQLResponseBody): DeliveredEvent {
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data?.['publish'] as DeliveredEvent;
}

/** The events of `orders` after `cursor`, up to and including a marker published now: what the log holds since. */
async function eventsSince(server: TestServer, token: string, cursor: string): Promise<DeliveredEvent[]> {
  const marker = published(await publish(server, token, { marker: true }));
  const client = await openAcknowledgedSocket(server.wsUrl, token);
  subscribeEvents(client, 'since', { topic: 'orders', after: cursor });
  const events: DeliveredEvent[] = [];
  while (events.at(-1)?.id !== marker.id) events.push(...(await takeEvents(client, 'since', 1)));
  client.socket.close();
  return events;
}

async function topicCursor(server: TestServer, token: string): Promise<string> {
  const body = await gql(server, token, 'query { topicCursor(topic: "orders") }');
  return body.data?.['topicCursor'] as string;
}

describe.each(MODES)('publish with an idempotency key (%s)', (mode) => {
  it('answers a retry with the first event, places it once, and keeps keys apart per request and per tenant', { timeout: 30_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, ...modeEnv(mode) });
    const token = await publisher();
    const before = await topicCursor(server, token);

    const first = published(await publish(server, token, { orderId: 7 }, 'order-7-shipped'));
    const retry = published(await publish(server, token, { orderId: 7 }, 'order-7-shipped'));
    expect(retry).toEqual(first);
    // Without a key, the same request is a new event each time.
    const unkeyed = published(await publish(server, token, { orderId: 7 }));
    expect(unkeyed.id).not.toBe(first.id);

    // The same key for another request is the caller's mistake, not a retry.
    const other = await publish(server, token, { orderId: 8 }, 'order-7-shipped');
    expect(other.errors?.map((error) => [error.extensions?.['code'], error.extensions?.['field']])).toEqual([
      ['CONFLICT', 'idempotencyKey'],
    ]);
    // Keys are per scope: another tenant's same key is its own event.
    const otherTenant = published(await publish(server, await publisher('tenant-b'), { orderId: 7 }, 'order-7-shipped'));
    expect(otherTenant.id).not.toBe(first.id);

    const bad = await publish(server, token, { orderId: 7 }, 'has a space');
    expect(bad.errors?.map((error) => error.extensions?.['code'])).toEqual(['BAD_USER_INPUT']);

    const log = await eventsSince(server, token, before);
    expect(log.map((event) => event.id)).toEqual([first.id, unkeyed.id, log.at(-1)!.id]);
  });

  it('places one event for publishes with one key sent at once; the others are answered with it or told to retry', { timeout: 30_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, ...modeEnv(mode) });
    const token = await publisher();
    const before = await topicCursor(server, token);
    const answers = await Promise.all(Array.from({ length: 8 }, () => publish(server, token, { orderId: 11 }, 'order-11')));
    const events = answers.flatMap((body) => (body.errors === undefined ? [body.data?.['publish'] as DeliveredEvent] : []));
    const refusals = answers.flatMap((body) => body.errors ?? []);
    expect(events.length).toBeGreaterThan(0);
    expect(new Set(events.map((event) => event.id)).size).toBe(1);
    expect(refusals.map((error) => [error.extensions?.['code'], error.extensions?.['inFlight']])).toEqual(refusals.map(() => ['CONFLICT', true]));
    const log = await eventsSince(server, token, before);
    expect(log.map((event) => event.id)).toEqual([events[0]!.id, log.at(-1)!.id]);
  });

  it('stores the webhook deliveries a first try could not, when the retry comes, without a second event', { timeout: 60_000 }, async () => {
    // The platform database behind a proxy the test can cut: the log (memory or Redis) stays up.
    const database = await createTestDatabase();
    const url = new URL(database.url);
    const proxy = await startTcpProxy(Number(url.port));
    url.port = String(proxy.port);
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', DATABASE_URL: url.toString(), ...modeEnv(mode) });
    const receiver = await startWebhookReceiver();
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const created = await gql(server, admin, 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
      input: { url: receiver.url, events: ['orders.*'] },
    });
    expect(created.errors, JSON.stringify(created.errors)).toBeUndefined();
    const token = await publisher();
    const before = await topicCursor(server, token);
    const live = await openAcknowledgedSocket(server.wsUrl, token);
    subscribeEvents(live, 'live', { topic: 'orders' });
    await waitForSubscribers(server, 1);

    proxy.refuse(true);
    proxy.dropAll();
    const failed = await publish(server, token, { orderId: 9 }, 'order-9');
    // The database away is a reason to retry.
    expect(failed.errors?.map((error) => error.extensions?.['code'])).toEqual(['UNAVAILABLE']);
    expect(failed.data?.['publish'] ?? null).toBeNull();
    // It failed after its event went out: its subscribers have it.
    const [seen] = await takeEvents(live, 'live', 1);
    expect(seen!.payload).toEqual({ orderId: 9 });

    proxy.refuse(false);
    const retry = published(await publish(server, token, { orderId: 9 }, 'order-9'));
    expect(retry.id).toBe(seen!.id);
    const [delivery] = await receiver.waitForCount(1);
    expect(delivery!.headers['webhook-id']).toBe(retry.id);
    expect(delivery!.json).toMatchObject({ id: retry.id, data: { orderId: 9 } });

    const log = await eventsSince(server, token, before);
    expect(log.map((event) => event.id)).toEqual([retry.id, log.at(-1)!.id]);
    // A later retry answers the same, and stores nothing more.
    expect(published(await publish(server, token, { orderId: 9 }, 'order-9'))).toEqual(retry);
    const deliveries = await gql(server, admin, 'query { webhookDeliveries { nodes { eventId } } }');
    expect((deliveries.data?.['webhookDeliveries'] as { nodes: { eventId: string }[] }).nodes.map((node) => node.eventId).filter((id) => id === retry.id)).toHaveLength(1);
    live.socket.close();
  });
});

describe('publish keys in Redis', () => {
  it('lets one try hold a key, frees it only for that try, and keeps a remembered event for every instance', async () => {
    const redis = new Redis(testRedisUrl());
    const second = redis.duplicate();
    try {
      const options = { keyPrefix: uniquePrefix(), ttlMs: 60_000, inFlightMs: 60_000 };
      const one = createRedisPublishKeys({ redis, ...options });
      const other = createRedisPublishKeys({ redis: second, ...options });
      expect(await one.claim('k', 'f', 't1')).toEqual({ claimed: true });
      expect(await other.claim('k', 'f', 't2')).toEqual({ claimed: false, record: { state: 'in-flight', fingerprint: 'f', token: 't1' } });
      await other.release('k', 'f', 't2');
      expect((await one.claim('k', 'f', 't3')).claimed).toBe(false);
      await one.release('k', 'f', 't1');
      expect(await other.claim('k', 'f', 't4')).toEqual({ claimed: true });
      const event = { id: 'evt_1', topic: 'orders', source: 'socket' as const, type: 'message', cursor: 'c', metadata: { timestamp: 1, scope: { app: 'a', env: 'e', tenant: 't' } } };
      await other.remember('k', { state: 'done', fingerprint: 'f', event });
      await other.release('k', 'f', 't4');
      expect(await one.claim('k', 'f', 't5')).toEqual({ claimed: false, record: { state: 'done', fingerprint: 'f', event } });
      expect(await redis.pttl(`${options.keyPrefix}publish-key:k`)).toBeGreaterThan(30_000);
    } finally {
      redis.disconnect();
      second.disconnect();
    }
  });
});
