/**
 * A `410 Gone` end to end, in both delivery modes: answering several entities' deliveries in flight
 * at once, it holds each of them as its lane's head (not dead-lettered), so after
 * `setWebhookEndpointEnabled(enabled: true)` every entity's events arrive in order, with no replay.
 * The events come from an outbox, whose rows carry their entity (a `publish` has none: each of its
 * events is a lane of its own).
 */
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv, type PipelineMode } from '../helpers/events.ts';
import { saveOutboxSourceBeforeStart } from '../helpers/outbox-source.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver, type ReceivedWebhook } from '../helpers/webhook-receiver.ts';

const BASE_ENV = { JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' };

/** An admin of the environment (no tenant: its endpoints receive every tenant's events). */
const admin = () => signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });

async function createEndpoint(server: TestServer, input: Record<string, unknown>): Promise<string> {
  const body = await gql(server, await admin(), 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', { input });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;
}

type DeliveryRow = { id: string; eventId: string; state: string; attempts: number; nextAttemptAt: string | null };
async function deliveries(server: TestServer, endpointId: string): Promise<DeliveryRow[]> {
  const body = await gql(server, await admin(), 'query($e: ID) { webhookDeliveries(endpointId: $e, first: 200) { nodes { id eventId state attempts nextAttemptAt } } }', { e: endpointId });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['webhookDeliveries'] as { nodes: DeliveryRow[] }).nodes;
}

type AttemptRow = { eventId: string; attempt: number; outcome: string; status: number | null; nextAttemptAt: string | null; createdAt: string };
async function attempts(server: TestServer, endpointId: string): Promise<AttemptRow[]> {
  const body = await gql(server, await admin(), 'query($e: ID) { webhookAttempts(endpointId: $e, first: 200) { nodes { eventId attempt outcome status nextAttemptAt createdAt } } }', { e: endpointId });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['webhookAttempts'] as { nodes: AttemptRow[] }).nodes;
}

async function endpointEnabled(server: TestServer, id: string): Promise<boolean | undefined> {
  const body = await gql(server, await admin(), 'query($id: ID!) { webhookEndpoint(id: $id) { enabled } }', { id });
  return (body.data?.['webhookEndpoint'] as { enabled: boolean } | null)?.enabled;
}

const entityOf = (request: ReceivedWebhook) => (request.json.data as { entity: string }).entity;
const seqOf = (request: ReceivedWebhook) => (request.json.data as { seq: number }).seq;

describe.each(MODES)('webhooks: a 410 Gone and the enable (%s delivery)', (mode: PipelineMode) => {
  it('holds the deliveries in flight that a 410 answered, and sends each entity’s events in order after the enable: nothing dead-lettered, no replay', { timeout: 90_000 }, async () => {
    const [platform, appDb] = await Promise.all([createTestDatabase({ migrated: true }), createTestDatabase()]);
    const app = openTestPool(appDb.url, { max: 4 });
    // Saved before the server starts: its pollers load it at once (outbox-source.ts).
    expect(await saveOutboxSourceBeforeStart(platform.url, { databaseUrl: appDb.url, createTable: true, mode: 'POLL' })).toMatchObject({ readMode: 'POLL' });
    const server = await startTestServer({ ...BASE_ENV, ...modeEnv(mode), OUTBOX_POLL_INTERVAL_MS: '50', DATABASE_URL: platform.url });
    const receiver = await startWebhookReceiver();
    const ENTITIES = 4;
    const EVENTS = 3;
    // The first event of each entity in flight at once; all four answered 410 once the fourth is in.
    const allIn = receiver.waitForCount(ENTITIES);
    receiver.respond = async (_request, index) => {
      if (index >= ENTITIES) return 204;
      await allIn;
      return 410;
    };
    const endpointId = await createEndpoint(server, { url: receiver.url, events: ['orders'], maxConcurrency: 10 });
    for (let seq = 0; seq < EVENTS; seq += 1) {
      for (let entity = 0; entity < ENTITIES; entity += 1) {
        await enqueueOutboxEvent(app, { topic: 'orders', type: 'order.updated', payload: { entity: `order-${entity}`, seq }, tenant: 'a', entity: `order-${entity}` });
      }
    }

    await allIn;
    await waitFor(async () => (await endpointEnabled(server, endpointId)) === false, { timeoutMs: 10_000, message: 'disabled by the 410' });
    await waitFor(async () => (await attempts(server, endpointId)).length === ENTITIES, { timeoutMs: 10_000, message: 'every 410 recorded' });
    // Each 410 logged as gone; its delivery held (pending, its lane's head), none dead-lettered.
    expect((await attempts(server, endpointId)).map((attempt) => [attempt.outcome, attempt.status])).toEqual(Array.from({ length: ENTITIES }, () => ['gone', 410]));
    // The outbox is polled every 50 ms: the later rows may be routed (and their deliveries stored,
    // held behind their heads) after the first four were answered.
    const held = await waitFor(
      async () => {
        const stored = await deliveries(server, endpointId);
        return stored.length === ENTITIES * EVENTS ? stored : undefined;
      },
      { timeoutMs: 10_000, message: 'every event stored for the endpoint' },
    ) ?? [];
    expect(held.filter((delivery) => delivery.state !== 'PENDING')).toEqual([]);
    expect(held.filter((delivery) => delivery.attempts === 1)).toHaveLength(ENTITIES);
    // Nothing went out meanwhile: the held heads keep their entities' later events back.
    expect(receiver.received).toHaveLength(ENTITIES);

    const enabled = await gql(server, await admin(), 'mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: true) { enabled } }', { id: endpointId });
    expect(enabled.data).toEqual({ setWebhookEndpointEnabled: { enabled: true } });
    await waitFor(() => receiver.received.length >= ENTITIES + ENTITIES * EVENTS, { timeoutMs: 20_000, message: 'every event after the enable' });
    const received = receiver.received;
    const accepted = received.slice(ENTITIES);
    for (let entity = 0; entity < ENTITIES; entity += 1) {
      expect(accepted.filter((request) => entityOf(request) === `order-${entity}`).map(seqOf)).toEqual([0, 1, 2]);
    }
    // The held ones went again with the same webhook-id, and everything is delivered.
    expect(new Set(accepted.map((request) => request.headers['webhook-id']))).toEqual(new Set(held.map((delivery) => delivery.eventId)));
    await waitFor(async () => (await deliveries(server, endpointId)).every((delivery) => delivery.state === 'DELIVERED'), { timeoutMs: 10_000, message: 'all delivered' });
  });
});
