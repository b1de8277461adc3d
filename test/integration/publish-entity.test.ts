/**
 * `publish(entity:)`: a published event may name what it is about, and webhook endpoints then
 * receive one entity's events in order, as they do an outbox row's or a document's — where events
 * without one go out side by side. The entity is checked at the edge, shown in the event's
 * metadata, and part of what an idempotency key's retry must repeat.
 */
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv } from '../helpers/events.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const PUBLISH = `mutation($payload: JSON!, $entity: String, $key: String) {
  publish(topic: "orders", type: "order.updated", payload: $payload, entity: $entity, idempotencyKey: $key) { id metadata { entity } }
}`;

async function publish(server: TestServer, variables: { payload: Record<string, unknown>; entity?: string; key?: string }) {
  return gql(server, await signHs256({ tenant: 'a', permissions: ['orders.publish'] }), PUBLISH, variables);
}

async function published(server: TestServer, payload: Record<string, unknown>, entity: string): Promise<string> {
  const body = await publish(server, { payload, entity });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  expect(body.data?.['publish']).toMatchObject({ metadata: { entity } });
  return (body.data?.['publish'] as { id: string }).id;
}

describe.each(MODES)('publish with an entity (%s delivery)', (mode) => {
  it("holds an entity's later events behind its first at a webhook endpoint, while another entity's go", { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', ...modeEnv(mode) });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const receiver = await startWebhookReceiver();
    // The first request is asked to come back in an hour; the rest are taken.
    receiver.respond = (_request, index) => (index === 0 ? { status: 429, headers: { 'retry-after': '3600' } } : 204);
    const created = await gql(server, admin, 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
      input: { url: receiver.url, events: ['orders'] },
    });
    const endpointId = (created.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;

    const first = await published(server, { n: 1 }, 'order-1');
    await receiver.waitForCount(1);
    const second = await published(server, { n: 2 }, 'order-1');
    const other = await published(server, { n: 1 }, 'order-2');
    // order-2's goes; order-1's second waits for its first, an hour away.
    await receiver.waitForCount(2);
    const pending = async () =>
      (
        (await gql(server, admin, 'query($e: ID) { webhookDeliveries(endpointId: $e, state: PENDING) { nodes { eventId attempts } } }', { e: endpointId })).data?.['webhookDeliveries'] as {
          nodes: { eventId: string; attempts: number }[];
        }
      ).nodes;
    await waitFor(async () => (await pending()).length === 2, { timeoutMs: 10_000, message: "order-2's delivery done" });
    expect(new Map((await pending()).map((delivery) => [delivery.eventId, delivery.attempts]))).toEqual(new Map([[first, 1], [second, 0]]));
    expect(receiver.received.map((request) => [request.headers['webhook-id'], request.json.entity])).toEqual([
      [first, 'order-1'],
      [other, 'order-2'],
    ]);

    expect(await gql(server, admin, 'mutation($e: ID!) { retryPendingWebhooks(endpointId: $e) }', { e: endpointId })).toEqual({ data: { retryPendingWebhooks: 1 } });
    await receiver.waitForCount(4);
    expect(receiver.received.slice(2).map((request) => request.headers['webhook-id'])).toEqual([first, second]);
  });
});

describe('publish(entity:) at the edge', () => {
  it('refuses an empty entity, one over 1,024 bytes and one with a control character (BAD_USER_INPUT), and a keyed retry with another entity (CONFLICT)', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    for (const entity of ['', 'é'.repeat(513), 'line\nbreak']) {
      const body = await publish(server, { payload: { n: 1 }, entity });
      expect(body.errors?.[0]?.extensions, JSON.stringify(entity)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'entity' });
    }
    // 1,024 bytes exactly is taken.
    expect((await publish(server, { payload: { n: 1 }, entity: 'é'.repeat(512) })).errors).toBeUndefined();

    const once = await publish(server, { payload: { n: 1 }, entity: 'order-1', key: 'k-1' });
    expect(once.errors).toBeUndefined();
    expect((await publish(server, { payload: { n: 1 }, entity: 'order-1', key: 'k-1' })).data).toEqual(once.data);
    expect((await publish(server, { payload: { n: 1 }, entity: 'order-2', key: 'k-1' })).errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT' });
    expect((await publish(server, { payload: { n: 1 }, key: 'k-1' })).errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT' });
  });
});
