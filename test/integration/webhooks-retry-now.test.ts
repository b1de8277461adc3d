/**
 * `retryPendingWebhooks`: a receiver back after an outage gets what waits for it now, not at each
 * delivery's next attempt (an hour away here: the receiver's own Retry-After), in both delivery
 * modes — each entity's deliveries still in order, with their webhook-ids, their attempts counted on.
 */
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv } from '../helpers/events.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const RETRY = 'mutation($e: ID!) { retryPendingWebhooks(endpointId: $e) }';
const CREATE = 'mutation($id: ID!) { createDocument(service: "notes", id: $id, data: { n: 1 }) { revision } }';
const MERGE = 'mutation($id: ID!) { mergeDocument(service: "notes", id: $id, patch: { n: 2 }) { revision } }';
const DELIVERIES = 'query($e: ID) { webhookDeliveries(endpointId: $e) { nodes { eventId state attempts } } }';

const admin = (tenant?: string) => signHs256({ roles: ['admin'], tenant, permissions: [] });

/** A document change: its event has the document as its entity, so one document's changes reach an endpoint in order. */
async function write(server: TestServer, mutation: string, id: string): Promise<void> {
  const body = await gql(server, await signHs256({ tenant: 'a', permissions: ['sync.notes.write'] }), mutation, { id });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
}

describe.each(MODES)('retryPendingWebhooks (%s delivery)', (mode) => {
  it('sends the deliveries waiting out an hour-long Retry-After now, each entity in order, and counts their attempts on', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', ...modeEnv(mode) });
    const receiver = await startWebhookReceiver();
    // Down: asks for an hour's pause, then answers again.
    let down = true;
    receiver.respond = () => (down ? { status: 429, headers: { 'retry-after': '3600' } } : 204);
    const created = await gql(server, await admin(), 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
      input: { url: receiver.url, events: ['sync.notes.*'] },
    });
    const endpointId = (created.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;
    const nothingWaits = await gql(server, await admin(), RETRY, { e: endpointId });
    expect(nothingWaits).toEqual({ data: { retryPendingWebhooks: 0 } });

    // Two documents: each one's first event refused (429); n1's second change waits behind its first.
    await write(server, CREATE, 'n1');
    await write(server, CREATE, 'n2');
    await write(server, MERGE, 'n1');
    await receiver.waitForCount(2);
    const deliveries = async () => (await gql(server, await admin(), DELIVERIES, { e: endpointId })).data?.['webhookDeliveries'] as { nodes: { eventId: string; state: string; attempts: number }[] };
    await waitFor(async () => (await deliveries()).nodes.filter((delivery) => delivery.attempts === 1).length === 2, { timeoutMs: 10_000, message: 'both 429s recorded' });
    const eventOf = (type: string, id: string) => receiver.received.find((request) => request.json.topic === type && request.json.entity?.endsWith(id))?.headers['webhook-id'] as string | undefined;
    const [first, other] = [eventOf('sync.notes.created', 'n1'), eventOf('sync.notes.created', 'n2')];
    expect(first).toBeDefined();
    expect(other).toBeDefined();
    expect(receiver.received).toHaveLength(2);
    const second = (await deliveries()).nodes.find((delivery) => delivery.eventId !== first && delivery.eventId !== other)?.eventId;
    expect(second).toBeDefined();

    down = false;
    expect(await gql(server, await admin(), RETRY, { e: endpointId })).toEqual({ data: { retryPendingWebhooks: 2 } });
    const all = await receiver.waitForCount(5);
    const sentAgain = all.slice(2).map((request) => request.headers['webhook-id'] as string);
    expect([...sentAgain].sort()).toEqual([first, other, second].sort());
    // n1's second change only after its first was delivered.
    expect(sentAgain.indexOf(second!)).toBeGreaterThan(sentAgain.indexOf(first!));
    await waitFor(async () => (await deliveries()).nodes.every((delivery) => delivery.state === 'DELIVERED'), { timeoutMs: 10_000, message: 'all delivered' });
    const byEvent = new Map((await deliveries()).nodes.map((delivery) => [delivery.eventId, delivery.attempts]));
    expect(Object.fromEntries(byEvent)).toEqual({ [first!]: 2, [other!]: 2, [second!]: 1 });
    expect(receiver.received).toHaveLength(5);
  });

  it('refuses an endpoint of another tenant (NOT_FOUND) and a disabled one (BAD_USER_INPUT), naming the argument', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', ...modeEnv(mode) });
    const receiver = await startWebhookReceiver();
    const created = await gql(server, await admin('a'), 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
      input: { url: receiver.url, events: ['sync.notes.*'] },
    });
    const endpointId = (created.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;

    const foreign = await gql(server, await admin('b'), RETRY, { e: endpointId });
    expect(foreign.errors?.[0]?.extensions).toMatchObject({ code: 'NOT_FOUND', field: 'endpointId' });

    await gql(server, await admin('a'), 'mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: false) { enabled } }', { id: endpointId });
    const disabled = await gql(server, await admin('a'), RETRY, { e: endpointId });
    expect(disabled.errors?.[0]).toMatchObject({ message: expect.stringContaining('disabled') as unknown, extensions: { code: 'BAD_USER_INPUT', field: 'endpointId' } });
  });
});
