/**
 * `publish` may not forge what `sendTestWebhook` sends: the topics `webhooks.test` and
 * `webhooks.endpoints` and the type `webhook.test` are Tributary's (FORBIDDEN, naming the field),
 * while the admin's test call still reaches the endpoint as a `webhook.test` on `webhooks.test`.
 */
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const PUBLISH = 'mutation($topic: String!, $type: String!) { publish(topic: $topic, type: $type, payload: {}) { id } }';

describe('publishing under webhook names', () => {
  it('refuses the webhook names Tributary sends under, and sendTestWebhook still sends its webhook.test', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' });
    const token = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    for (const [topic, type, field] of [
      ['webhooks.test', 'webhook.test', 'topic'],
      ['webhooks.test', 'message', 'topic'],
      ['webhooks.endpoints', 'message', 'topic'],
      ['orders', 'webhook.test', 'type'],
    ] as const) {
      const refused = await gql(server, token, PUBLISH, { topic, type });
      expect(refused.data, `${topic} ${type}`).toBeNull();
      expect(refused.errors?.[0]?.extensions, `${topic} ${type}`).toMatchObject({ code: 'FORBIDDEN', field });
    }
    expect((await gql(server, token, PUBLISH, { topic: 'orders', type: 'order.created' })).errors).toBeUndefined();
    // An application's own names beside them stay its own.
    expect((await gql(server, token, PUBLISH, { topic: 'webhooks.orders', type: 'webhook.created' })).errors).toBeUndefined();

    const receiver = await startWebhookReceiver();
    const created = await gql(server, token, 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
      input: { url: receiver.url, events: ['webhook.test'] },
    });
    expect(created.errors, JSON.stringify(created.errors)).toBeUndefined();
    const endpointId = (created.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;
    const sent = await gql(server, token, 'mutation($e: ID!) { sendTestWebhook(endpointId: $e) { id } }', { e: endpointId });
    expect(sent.errors, JSON.stringify(sent.errors)).toBeUndefined();
    const [received] = await receiver.waitForCount(1);
    expect(JSON.parse(received!.body)).toMatchObject({ type: 'webhook.test', topic: 'webhooks.test' });
  });
});
