/**
 * client.publish against a real server whose platform database goes away: the first try fails
 * after its event went out (UNAVAILABLE: its webhook deliveries could not be stored), the client
 * retries with the same idempotency key once the database is back, and the event is placed once
 * and delivered to the webhook once.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, documents, SessionEndedError, type TopicEvent } from '@tributary/client';
import { gql } from '../../../../test/helpers/cdc.ts';
import { freePort } from '../../../../test/helpers/free-port.ts';
import { createTestDatabase } from '../../../../test/helpers/services.ts';
import { startTcpProxy } from '../../../../test/helpers/tcp-proxy.ts';
import { signHs256, TEST_SECRET } from '../../../../test/helpers/tokens.ts';
import { startTestServer } from '../../../../test/helpers/tributary.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { startWebhookReceiver } from '../../../../test/helpers/webhook-receiver.ts';

const PUBLISHER = { sub: 'publisher', tenant: 'tenant-a', permissions: ['orders.publish', 'orders.read'] };

describe('client.publish', () => {
  it('retries a publish the server could not finish with the same key: one event, one webhook delivery', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase();
    const url = new URL(database.url);
    const proxy = await startTcpProxy(Number(url.port));
    url.port = String(proxy.port);
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', DATABASE_URL: url.toString() });
    const receiver = await startWebhookReceiver();
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const created = await gql(server, admin, 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
      input: { url: receiver.url, events: ['orders'] },
    });
    expect(created.errors, JSON.stringify(created.errors)).toBeUndefined();

    const client = createClient({ url: server.wsUrl, getToken: () => signHs256(PUBLISHER) });
    onTestFinished(() => client.close());
    const { topicCursor } = await client.request(documents.TributaryTopicCursorDocument, { topic: 'orders' });
    const seen: TopicEvent[] = [];
    client.subscribeEvents('orders', { after: topicCursor, onEvent: (event) => seen.push(event) });

    proxy.refuse(true);
    proxy.dropAll();
    const retried: unknown[] = [];
    let restored: Promise<void> | undefined;
    const event = await client.publish(
      'orders',
      { orderId: 12 },
      {
        attempts: 100,
        backoff: { initialMs: 10, maxMs: 10 },
        onRetry: (error) => {
          retried.push((error as { code?: string }).code);
          // The database comes back once the first try's event has reached its subscriber: that try
          // placed it, and failed after (its webhook deliveries could not be stored).
          restored ??= waitFor(() => seen.length === 1, { message: 'the first try’s event' }).then(() => proxy.refuse(false));
        },
      },
    );
    await restored;
    expect(retried.length).toBeGreaterThan(0);
    expect(new Set(retried)).toEqual(new Set(['UNAVAILABLE']));
    expect(event).toMatchObject({ id: seen[0]!.id, topic: 'orders', payload: { orderId: 12 } });

    const [delivery] = await receiver.waitForCount(1);
    expect(delivery!.json).toMatchObject({ id: event.id, data: { orderId: 12 } });
    // Placed once: a marker published after it is the next event.
    const marker = await client.publish('orders', { marker: true });
    await waitFor(() => seen.some((item) => item.id === marker.id), { message: 'the marker' });
    expect(seen.map((item) => item.id)).toEqual([event.id, marker.id]);
    const deliveries = await gql(server, admin, 'query { webhookDeliveries { nodes { eventId } } }');
    expect((deliveries.data?.['webhookDeliveries'] as { nodes: { eventId: string }[] }).nodes.map((node) => node.eventId).sort()).toEqual([event.id, marker.id].sort());
  });

  it('does not retry a publish whose message the server closed the socket for (1009: too big)', { timeout: 30_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_PAYLOAD_BYTES: '4096' });
    const client = createClient({ url: server.wsUrl, getToken: () => signHs256(PUBLISHER), backoff: { initialMs: 10, maxMs: 10 } });
    onTestFinished(() => client.close());
    const retried: unknown[] = [];
    const failure = await client.publish('orders', { blob: 'x'.repeat(8_000) }, { onRetry: (error) => retried.push(error) }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(SessionEndedError);
    expect((failure as SessionEndedError).closeCode).toBe(1009);
    expect(retried).toEqual([]);
    // The client goes on: a new socket, and a publish of a fitting size.
    const event = await client.publish('orders', { small: true });
    expect(event.payload).toEqual({ small: true });
  });

  it("ends a publish waiting for a socket once the caller's signal aborts, with the signal's reason", { timeout: 30_000 }, async () => {
    // Nothing listens there: every socket is refused, and the publish waits for one.
    const port = await freePort();
    const client = createClient({ url: `ws://127.0.0.1:${port}/graphql`, getToken: () => signHs256(PUBLISHER), backoff: { initialMs: 10, maxMs: 10 } });
    onTestFinished(() => client.close());
    const caller = new AbortController();
    const pending = client.publish('orders', { n: 1 }, { signal: caller.signal });
    await waitFor(() => client.state === 'reconnecting', { message: 'a refused socket' });
    caller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    // Only that publish ended: the client goes on trying.
    expect(client.state).not.toBe('closed');
    const before = new AbortController();
    before.abort(new Error('already gone'));
    await expect(client.publish('orders', { n: 2 }, { signal: before.signal })).rejects.toThrow('already gone');
  });
});
