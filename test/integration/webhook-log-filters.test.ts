/**
 * The delivery log's filters through GraphQL, against a real Postgres: `webhookAttempts(outcome:
 * "cut")` lists the attempts a shutdown cut (an outcome the schema, README and metrics name), and
 * `webhookDeliveries` / `webhookAttempts` by `eventId` answer "did evt_X reach this endpoint?" —
 * that event's rows only, a bad id refused naming its field.
 */
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const admin = () => signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });

async function data<T>(server: TestServer, query: string, variables: Record<string, unknown>): Promise<T> {
  const body = await gql(server, await admin(), query, variables);
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data as T;
}

async function publish(server: TestServer, n: number): Promise<string> {
  return (await data<{ publish: { id: string } }>(server, 'mutation($n: Int!) { publish(topic: "filtered.things", payload: { n: $n }) { id } }', { n })).publish.id;
}

interface Nodes {
  readonly nodes: readonly { readonly id: string; readonly eventId: string; readonly outcome?: string }[];
}

const DELIVERIES = 'query($e: ID, $ev: String) { webhookDeliveries(endpointId: $e, eventId: $ev) { nodes { id eventId } } }';
const ATTEMPTS = 'query($e: ID, $ev: String, $o: String) { webhookAttempts(endpointId: $e, eventId: $ev, outcome: $o) { nodes { id eventId outcome } } }';

describe('the webhook delivery log’s filters', () => {
  it('lists attempts by outcome `cut` and deliveries and attempts by event id', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase();
    const platform = openTestPool(database.url);
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', DATABASE_URL: database.url });
    const receiver = await startWebhookReceiver();
    const { createWebhookEndpoint } = await data<{ createWebhookEndpoint: { endpoint: { id: string } } }>(
      server,
      'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }',
      { input: { url: receiver.url, events: ['filtered.*'] } },
    );
    const endpointId = createWebhookEndpoint.endpoint.id;
    const first = await publish(server, 1);
    const second = await publish(server, 2);
    await receiver.waitForCount(2);
    const attempted = async () => (await data<{ webhookAttempts: Nodes }>(server, ATTEMPTS, { e: endpointId })).webhookAttempts.nodes.length === 2;
    await waitFor(attempted);

    // One event's deliveries and attempts, and nothing for an event the endpoint never had.
    const byFirst = await data<{ webhookDeliveries: Nodes }>(server, DELIVERIES, { e: endpointId, ev: first });
    expect(byFirst.webhookDeliveries.nodes.map((node) => node.eventId)).toEqual([first]);
    const attemptsOfSecond = await data<{ webhookAttempts: Nodes }>(server, ATTEMPTS, { ev: second });
    expect(attemptsOfSecond.webhookAttempts.nodes.map((node) => [node.eventId, node.outcome])).toEqual([[second, 'delivered']]);
    expect(await data(server, DELIVERIES, { ev: 'evt_neverRouted' })).toEqual({ webhookDeliveries: { nodes: [] } });
    const refused = await gql(server, await admin(), DELIVERIES, { ev: 'evt with spaces' });
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'eventId' });

    // An attempt cut by a shutdown, as the record statement logs it (migration 0028).
    const delivery = byFirst.webhookDeliveries.nodes[0]!.id;
    await platform.query(
      `INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, event_type, attempt, trigger, outcome, duration_ms, error)
       VALUES ($1, $2, $3, 'message', 1, 'initial', 'cut', 5, 'cut by shutdown')`,
      [delivery, endpointId, first],
    );
    const cut = await data<{ webhookAttempts: Nodes }>(server, ATTEMPTS, { e: endpointId, o: 'cut' });
    expect(cut.webhookAttempts.nodes.map((node) => [node.eventId, node.outcome])).toEqual([[first, 'cut']]);
    const cutOfFirst = await data<{ webhookAttempts: Nodes }>(server, ATTEMPTS, { ev: first });
    expect(cutOfFirst.webhookAttempts.nodes.map((node) => node.outcome)).toEqual(['cut', 'delivered']);
  });
});
