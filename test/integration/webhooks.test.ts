/**
 * Webhooks end to end, as an environment's admin and a receiver see them, in both delivery modes
 * (embedded: the in-process loop over the platform database; redis: BullMQ): signed deliveries
 * in order per entity, tenant isolation, retries, Retry-After, timeouts, 410 Gone disabling the
 * endpoint (and telling another one), dead letters and their redelivery, replay, secret rotation,
 * SSRF refusal.
 */
import { hostname } from 'node:os';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { verifyWebhook } from '@tributary/client/webhooks';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv, type PipelineMode } from '../helpers/events.ts';
import { saveOutboxSourceBeforeStart } from '../helpers/outbox-source.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver, type ReceivedWebhook } from '../helpers/webhook-receiver.ts';

const BASE_ENV = { JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' };

const CREATE = `mutation($input: WebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id url events tenant enabled } }
}`;
const PUBLISH = 'mutation($topic: String!, $type: String!, $payload: JSON!) { publish(topic: $topic, type: $type, payload: $payload) { id } }';

async function admin(tenant?: string): Promise<string> {
  return signHs256({ roles: ['admin'], tenant, permissions: [] });
}

async function createEndpoint(server: TestServer, input: Record<string, unknown>, token?: string): Promise<{ id: string; secret: string }> {
  const body = await gql(server, token ?? (await admin()), CREATE, { input });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  const created = body.data?.['createWebhookEndpoint'] as { secret: string; endpoint: { id: string } };
  return { id: created.endpoint.id, secret: created.secret };
}

/** Publishes as a service of `tenant` (an `entity` in the payload orders per entity). */
async function publish(server: TestServer, tenant: string, topic: string, payload: Record<string, unknown>, type = 'order.updated'): Promise<string> {
  const token = await signHs256({ tenant, permissions: [`${topic}.publish`] });
  const body = await gql(server, token, PUBLISH, { topic, type, payload });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['publish'] as { id: string }).id;
}

function startServer(mode: PipelineMode, env: Record<string, string> = {}): Promise<TestServer> {
  return startTestServer({ ...BASE_ENV, ...modeEnv(mode), ...env });
}

async function deliveries(server: TestServer, endpointId: string, state?: string): Promise<{ id: string; eventId: string; state: string; attempts: number }[]> {
  const body = await gql(server, await admin(), 'query($e: ID, $s: WebhookDeliveryState) { webhookDeliveries(endpointId: $e, state: $s) { nodes { id eventId state attempts } } }', {
    e: endpointId,
    s: state,
  });
  expect(body.errors).toBeUndefined();
  return (body.data?.['webhookDeliveries'] as { nodes: { id: string; eventId: string; state: string; attempts: number }[] }).nodes;
}

async function attempts(
  server: TestServer,
  endpointId: string,
): Promise<{ attempt: number; trigger: string; outcome: string; status: number | null; error: string | null; nextAttemptAt: string | null; createdAt: string }[]> {
  const body = await gql(server, await admin(), 'query($e: ID) { webhookAttempts(endpointId: $e) { nodes { attempt trigger outcome status error nextAttemptAt createdAt } } }', { e: endpointId });
  expect(body.errors).toBeUndefined();
  return (body.data?.['webhookAttempts'] as { nodes: never[] }).nodes;
}

describe.each(MODES)('webhooks (%s delivery)', (mode) => {
  it('delivers selected events signed (webhook-id = event id), each tenant’s only to its endpoints', { timeout: 60_000 }, async () => {
    const server = await startServer(mode);
    const all = await startWebhookReceiver();
    const tenantA = await startWebhookReceiver();
    const allEndpoint = await createEndpoint(server, { url: all.url, events: ['orders.*'], description: 'every tenant' });
    expect(allEndpoint.secret).toMatch(/^whsec_/);
    const tenantAEndpoint = await createEndpoint(server, { url: tenantA.url, events: ['order.updated'], tenant: 'a' });

    const ids: string[] = [];
    for (let seq = 0; seq < 10; seq += 1) ids.push(await publish(server, seq % 2 === 0 ? 'a' : 'b', 'orders.changes', { seq }));
    // Tenant a's, but neither of the topic `orders.*` nor of the type `order.updated`: no endpoint selects it.
    await publish(server, 'a', 'invoices', { seq: 99 }, 'invoice.created');

    const received = await all.waitForCount(10);
    expect(new Set(received.map((request) => request.json.id))).toEqual(new Set(ids));

    // Signed: by our verifier, by the reference Standard Webhooks library, webhook-id = event id.
    const first = received[0]!;
    expect(first.headers['webhook-id']).toBe(first.json.id);
    expect(verifyWebhook(first.body, first.headers as Record<string, string>, allEndpoint.secret).id).toBe(first.json.id);
    expect(new Webhook(allEndpoint.secret).verify(first.body, first.headers as Record<string, string>)).toMatchObject({ id: first.json.id });
    expect(first.headers['x-tributary-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}/);

    // Tenant a's endpoint got tenant a's order events only (and no invoice): its deliveries were
    // stored before each publish was answered, so the list is complete by now.
    const aReceived = await tenantA.waitForCount(5);
    expect(aReceived.slice(0, 5).map((request) => request.json.tenant)).toEqual(['a', 'a', 'a', 'a', 'a']);
    const tenantAOrders = ids.filter((_, seq) => seq % 2 === 0);
    expect(new Set((await deliveries(server, tenantAEndpoint.id)).map((delivery) => delivery.eventId))).toEqual(new Set(tenantAOrders));
    expect(new Set(tenantA.received.map((request) => request.json.id))).toEqual(new Set(tenantAOrders));
    expect(all.received).toHaveLength(10);

    // The secret is shown once: the endpoint list has none.
    const listed = await gql(server, await admin(), '{ webhookEndpoints { id url events tenant enabled } }');
    expect(JSON.stringify(listed.data)).not.toContain('whsec_');
  });

  it('keeps each entity’s order per endpoint: a later event waits until the earlier one was delivered', { timeout: 180_000 }, async () => {
    const [platform, appDb] = await Promise.all([createTestDatabase({ migrated: true }), createTestDatabase()]);
    const app = openTestPool(appDb.url, { max: 4 });
    // Saved before the server starts: its pollers load it at once (outbox-source.ts).
    expect(await saveOutboxSourceBeforeStart(platform.url, { databaseUrl: appDb.url, createTable: true, mode: 'POLL' })).toMatchObject({ readMode: 'POLL' });
    const server = await startServer(mode, { OUTBOX_POLL_INTERVAL_MS: '50', DATABASE_URL: platform.url, WEBHOOK_RETRY_BASE_MS: '100' });
    const receiver = await startWebhookReceiver();
    // Every third request fails (503) when it first arrives: its entity's later events must wait for its retry.
    const accepted: boolean[] = [];
    const seen = new Set<string>();
    receiver.respond = (request, index) => {
      const first = !seen.has(request.json.id);
      seen.add(request.json.id);
      accepted[index] = !(first && index % 3 === 0);
      return accepted[index] ? 200 : 503;
    };
    await createEndpoint(server, { url: receiver.url, events: ['orders'], maxConcurrency: 8 });
    // Five events an entity: each failure holds its entity's later events for its retry (100 ms: WEBHOOK_RETRY_BASE_MS).
    for (let seq = 0; seq < 5; seq += 1) {
      for (const entity of ['e1', 'e2', 'e3']) await enqueueOutboxEvent(app, { topic: 'orders', type: 'order.updated', payload: { entity, seq }, tenant: 'a', entity });
    }
    await waitFor(() => accepted.filter(Boolean).length === 15, { timeoutMs: 150_000, message: 'every event delivered' });
    // Per entity, in arrival order: each event until it is accepted, and only then the next one.
    const next = new Map<string, number>();
    receiver.received.forEach((request, index) => {
      const entity = String(request.json.data['entity']);
      const expected = next.get(entity) ?? 0;
      expect(Number(request.json.data['seq']), `entity ${entity}, request ${index}`).toBe(expected);
      if (accepted[index]) next.set(entity, expected + 1);
    });
    expect(Object.fromEntries(next)).toEqual({ e1: 5, e2: 5, e3: 5 });
    expect(accepted.filter((ok) => !ok).length).toBeGreaterThan(0);
  });

  it('holds an endpoint to its maxConcurrency, and a hanging endpoint never holds up another', { timeout: 60_000 }, async () => {
    const server = await startServer(mode, { WEBHOOK_CONCURRENCY: '4', WEBHOOK_TIMEOUT_MS: '60000' });
    const hanging = await startWebhookReceiver();
    hanging.respond = () => 'hang';
    const healthy = await startWebhookReceiver();
    let open = 0;
    let mostOpen = 0;
    const capped = await startWebhookReceiver();
    // Counts requests in flight; each takes the receiver 20 ms of "work".
    capped.respond = async () => {
      open += 1;
      mostOpen = Math.max(mostOpen, open);
      await new Promise((resolve) => setTimeout(resolve, 20));
      open -= 1;
      return 200;
    };
    await createEndpoint(server, { url: hanging.url, events: ['orders'], maxConcurrency: 2 });
    await createEndpoint(server, { url: healthy.url, events: ['orders'] });
    await createEndpoint(server, { url: capped.url, events: ['orders'], maxConcurrency: 1 });
    // Events without an entity: separate lanes, free to go out in parallel.
    for (let n = 0; n < 10; n += 1) await publish(server, 'a', 'orders', { n });

    // The hanging endpoint holds two requests open (its maximum); the others still get everything.
    await healthy.waitForCount(10);
    await capped.waitForCount(10);
    await hanging.waitForCount(2);
    expect(hanging.received).toHaveLength(2);
    expect(mostOpen).toBe(1);
  });

  it('does not hold up an endpoint while hanging endpoints have taken every slot of the process', { timeout: 60_000 }, async () => {
    // Four slots; two hanging endpoints of maxConcurrency 2 take them all.
    const server = await startServer(mode, { WEBHOOK_CONCURRENCY: '4', WEBHOOK_TIMEOUT_MS: '60000' });
    const hanging = [await startWebhookReceiver(), await startWebhookReceiver()];
    for (const receiver of hanging) receiver.respond = () => 'hang';
    const healthy = await startWebhookReceiver();
    for (const receiver of hanging) await createEndpoint(server, { url: receiver.url, events: ['slow'], maxConcurrency: 2 });
    await createEndpoint(server, { url: healthy.url, events: ['orders'] });
    for (let n = 0; n < 2; n += 1) await publish(server, 'a', 'slow', { n });
    await Promise.all(hanging.map((receiver) => receiver.waitForCount(2)));

    // Sent once the hanging attempts have gone to the slow endpoints' share — long before they time out.
    const eventId = await publish(server, 'a', 'orders', { n: 0 });
    const [received] = await healthy.waitForCount(1);
    expect(received!.json.id).toBe(eventId);
    expect(hanging.map((receiver) => receiver.received.length)).toEqual([2, 2]);
  });

  it('does not hold up an endpoint on the same host as hanging ones: the connections per host count the slow share too', { timeout: 60_000 }, async () => {
    // As above, but one receiver (one origin) for all three endpoints: the hanging attempts hold four
    // of its connections, and the healthy endpoint's attempt needs one more.
    const server = await startServer(mode, { WEBHOOK_CONCURRENCY: '4', WEBHOOK_TIMEOUT_MS: '60000' });
    const receiver = await startWebhookReceiver();
    receiver.respond = (request) => (request.json.topic === 'slow' ? 'hang' : 204);
    for (let n = 0; n < 2; n += 1) await createEndpoint(server, { url: receiver.url, events: ['slow'], maxConcurrency: 2 });
    await createEndpoint(server, { url: receiver.url, events: ['orders'] });
    for (let n = 0; n < 2; n += 1) await publish(server, 'a', 'slow', { n });
    await receiver.waitForCount(4);

    const eventId = await publish(server, 'a', 'orders', { n: 0 });
    const received = await receiver.waitForCount(5);
    expect(received[4]!.json.id).toBe(eventId);
    expect(received.filter((request) => request.json.topic === 'slow')).toHaveLength(4);
  });

  it('stores nothing more for an endpoint with more than WEBHOOK_MAX_PENDING pending, tells it once, and stores again once it is worked off', { timeout: 90_000 }, async () => {
    const server = await startServer(mode, { WEBHOOK_MAX_PENDING: '3', WEBHOOK_HOUSEKEEPING_INTERVAL_MS: '500' });
    const receiver = await startWebhookReceiver();
    let answer = () => {};
    const answered = new Promise<void>((resolve) => (answer = resolve));
    receiver.respond = async () => {
      await answered;
      return 204;
    };
    const watcher = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders'], maxConcurrency: 1 });
    await createEndpoint(server, { url: watcher.url, events: ['webhooks.*'] });
    const backlogFullSince = async () => {
      const listed = await gql(server, await admin(), '{ webhookEndpoints { id backlogFullSince } }');
      return (listed.data?.['webhookEndpoints'] as { id: string; backlogFullSince: string | null }[]).find(({ id }) => id === endpoint.id)!.backlogFullSince;
    };
    // Four pending (the first held by its receiver), more than 3: the housekeeping (every 500 ms here) finds it full.
    for (let n = 0; n < 4; n += 1) await publish(server, 'a', 'orders', { n });
    const [notice] = await watcher.waitForCount(1);
    expect(notice!.json).toMatchObject({ type: 'endpoint.backlog_full', topic: 'webhooks.endpoints', data: { endpointId: endpoint.id, pending: 4, limit: 3 } });
    expect(await backlogFullSince()).toBe(notice!.json.data['since']);

    // Routed while it is full: nothing stored for it (the event is in the log, for a replay).
    const skipped = await publish(server, 'a', 'orders', { n: 'while full' });
    const stored = await deliveries(server, endpoint.id);
    expect(stored).toHaveLength(4);
    expect(stored.map(({ eventId }) => eventId)).not.toContain(skipped);

    // Its receiver answers: the backlog is worked off, the mark goes, and its events are stored again.
    answer();
    await waitFor(async () => (await backlogFullSince()) === null, { timeoutMs: 30_000, message: 'the backlog mark cleared' });
    // The routing tap reads the cleared mark a moment after the row has it (its cache's reload):
    // published until one is stored.
    let after = '';
    await waitFor(
      async () => {
        after = await publish(server, 'a', 'orders', { n: 'after' });
        return (await deliveries(server, endpoint.id)).some(({ eventId }) => eventId === after);
      },
      { timeoutMs: 30_000, message: 'an event stored again' },
    );
    const received = await receiver.waitForCount(5);
    expect(received.map((request) => request.json.id)).toContain(after);
    expect(received.map((request) => request.json.id)).not.toContain(skipped);
    expect(watcher.received).toHaveLength(1);
  });

  it('retries a failing receiver with the same webhook-id, honours Retry-After, and logs every attempt', { timeout: 60_000 }, async () => {
    // The curve starts at 100 ms (WEBHOOK_RETRY_BASE_MS) instead of 1 s: the 429 answers the second
    // attempt, after which the curve alone would wait 200-240 ms (retry-schedule.ts: 100·2^(2−1)
    // plus up to 20% jitter): a Retry-After of 3 s is only kept if it is honoured.
    const server = await startServer(mode, { WEBHOOK_RETRY_BASE_MS: '100' });
    const receiver = await startWebhookReceiver();
    receiver.respond = (_request, index) => (index === 0 ? 500 : index === 1 ? { status: 429, headers: { 'retry-after': '3' } } : index === 2 ? 'drop' : 200);
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['*'] });
    const eventId = await publish(server, 'a', 'orders', { n: 1 });

    const received = await receiver.waitForCount(4);
    expect(received.map((request) => request.headers['webhook-id'])).toEqual([eventId, eventId, eventId, eventId]);
    await waitFor(async () => (await deliveries(server, endpoint.id))[0]?.state === 'DELIVERED', { timeoutMs: 10_000, message: 'delivered' });
    const log = (await attempts(server, endpoint.id)).reverse();
    expect(log.map(({ attempt, trigger, outcome, status }) => ({ attempt, trigger, outcome, status }))).toEqual([
      { attempt: 1, trigger: 'INITIAL', outcome: 'failed', status: 500 },
      { attempt: 2, trigger: 'RETRY', outcome: 'throttled', status: 429 },
      { attempt: 3, trigger: 'RETRY', outcome: 'failed', status: null },
      { attempt: 4, trigger: 'RETRY', outcome: 'delivered', status: 200 },
    ]);
    // The 429's Retry-After (3 s) set the next attempt at least that far out — past anything the
    // curve alone would (240 ms) —, and it came no earlier.
    const throttled = log[1]!;
    expect(Date.parse(throttled.nextAttemptAt!) - Date.parse(throttled.createdAt)).toBeGreaterThanOrEqual(2_900);
    expect(received[2]!.receivedAt - received[1]!.receivedAt).toBeGreaterThanOrEqual(2_900);
    expect(log[2]!.error).not.toBeNull();
  });

  it('gives up on a receiver that does not answer within the timeout, and dead-letters after the window; a redelivery carries the same webhook-id', { timeout: 60_000 }, async () => {
    const server = await startServer(mode, { WEBHOOK_TIMEOUT_MS: '300', WEBHOOK_RETRY_WINDOW_SECONDS: '2' });
    const receiver = await startWebhookReceiver();
    receiver.respond = () => 'hang';
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders'] });
    const eventId = await publish(server, 'a', 'orders', { n: 1 });

    await waitFor(async () => (await deliveries(server, endpoint.id, 'DEAD')).length === 1, { timeoutMs: 20_000, message: 'dead-lettered' });
    const log = await attempts(server, endpoint.id);
    expect(log[0]).toMatchObject({ outcome: 'dead', status: null });
    expect(log.every((entry) => entry.error !== null)).toBe(true);

    receiver.respond = () => 200;
    const [dead] = await deliveries(server, endpoint.id, 'DEAD');
    const redelivered = await gql(server, await admin(), 'mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { id eventId state } }', { d: dead!.id });
    const copy = redelivered.data?.['redeliverWebhook'] as { eventId: string; state: string };
    expect(copy.eventId).toBe(eventId);
    // Scheduled at once: the embedded loop may have delivered it before the answer is read back.
    expect(['PENDING', 'DELIVERED']).toContain(copy.state);
    await waitFor(() => receiver.received.some((request, index) => index > 0 && request.headers['webhook-id'] === eventId && request.json.id === eventId), {
      timeoutMs: 10_000,
      message: 'redelivered',
    });
    await waitFor(async () => (await deliveries(server, endpoint.id, 'DELIVERED')).length === 1, { timeoutMs: 10_000, message: 'the redelivery is delivered' });
  });

  it('disables an endpoint that answers 410 Gone and tells an endpoint that listens to webhooks.*', { timeout: 60_000 }, async () => {
    const server = await startServer(mode);
    const gone = await startWebhookReceiver();
    gone.respond = () => 410;
    const watcher = await startWebhookReceiver();
    const goneEndpoint = await createEndpoint(server, { url: gone.url, events: ['orders'] });
    await createEndpoint(server, { url: watcher.url, events: ['webhooks.*'] });
    await publish(server, 'a', 'orders', { n: 1 });

    const [notice] = await watcher.waitForCount(1);
    expect(notice!.json).toMatchObject({ type: 'endpoint.disabled', topic: 'webhooks.endpoints', data: { endpointId: goneEndpoint.id, reason: expect.stringContaining('410') as unknown } });
    const listed = await gql(server, await admin(), '{ webhookEndpoints { id enabled disabledReason } }');
    expect((listed.data?.['webhookEndpoints'] as { id: string; enabled: boolean }[]).find((endpoint) => endpoint.id === goneEndpoint.id)).toMatchObject({ enabled: false });
    expect(gone.received).toHaveLength(1);
    // Held for the endpoint's enable (its lane's head), not dead-lettered.
    expect((await deliveries(server, goneEndpoint.id))[0]).toMatchObject({ state: 'PENDING', attempts: 1 });
    expect(await attempts(server, goneEndpoint.id)).toMatchObject([{ outcome: 'gone', status: 410 }]);
  });

  it('leaves an endpoint as it is when set to the state it is in: enabled again, its streak and a Retry-After stand; disabled again, its reason and time', { timeout: 60_000 }, async () => {
    const server = await startServer(mode);
    const receiver = await startWebhookReceiver();
    receiver.respond = () => ({ status: 429, headers: { 'retry-after': '3600' } });
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders'] });
    const STATE = `query($id: ID!) {
      webhookEndpoint(id: $id) { enabled disabledReason failingSince updatedAt }
      webhookDeliveries(endpointId: $id) { nodes { eventId state attempts nextAttemptAt } }
    }`;
    type State = { webhookEndpoint: { enabled: boolean; disabledReason: string | null; failingSince: string | null; updatedAt: string }; webhookDeliveries: { nodes: { eventId: string; attempts: number; nextAttemptAt: string }[] } };
    const state = async () => (await gql(server, await admin(), STATE, { id: endpoint.id })).data as State;
    const SET = 'mutation($id: ID!, $on: Boolean!) { setWebhookEndpointEnabled(id: $id, enabled: $on) { enabled disabledReason failingSince updatedAt } }';
    const set = async (on: boolean) => (await gql(server, await admin(), SET, { id: endpoint.id, on })).data?.['setWebhookEndpointEnabled'];

    // Throttled for an hour: the attempt recorded, its next one set by the Retry-After, the streak begun.
    const waiting = await publish(server, 'a', 'orders', { n: 1 });
    await receiver.waitForCount(1);
    await waitFor(async () => (await state()).webhookEndpoint.failingSince !== null && (await state()).webhookDeliveries.nodes[0]?.attempts === 1, { timeoutMs: 10_000, message: 'the 429 recorded' });
    const throttled = await state();
    expect(throttled.webhookDeliveries.nodes).toMatchObject([{ eventId: waiting, state: 'PENDING', attempts: 1 }]);
    expect(Date.parse(throttled.webhookDeliveries.nodes[0]!.nextAttemptAt)).toBeGreaterThan(Date.now() + 30 * 60_000);

    // A script applying its configuration again: answered the endpoint as it was, and nothing moved —
    // the delivery still waits the hour its receiver asked for, and the streak still counts toward disabling it.
    expect(await set(true)).toEqual(throttled.webhookEndpoint);
    expect(await state()).toEqual(throttled);

    // Disabled by a 410 Gone (the event's own entity goes at once), then by an admin: the reason and the time stay the 410's.
    receiver.respond = () => 410;
    await publish(server, 'a', 'orders', { n: 2, entity: 'order-2' });
    await waitFor(async () => (await state()).webhookEndpoint.enabled === false, { timeoutMs: 10_000, message: 'disabled by the 410' });
    const gone = (await state()).webhookEndpoint;
    expect(gone.disabledReason).toContain('410');
    expect(await set(false)).toEqual(gone);
    expect((await state()).webhookEndpoint).toEqual(gone);
  });

  it('tells an endpoint disabled once, however many attempts in flight answer 410 Gone', { timeout: 60_000 }, async () => {
    const server = await startServer(mode);
    const gone = await startWebhookReceiver();
    // Five events of five entities in flight at once; all answered 410 once the fifth is in.
    const allIn = gone.waitForCount(5);
    gone.respond = async () => {
      await allIn;
      return 410;
    };
    const watcher = await startWebhookReceiver();
    const goneEndpoint = await createEndpoint(server, { url: gone.url, events: ['orders'], maxConcurrency: 5 });
    // Tributary's notices, and the check below (`webhooks.*` is Tributary's own: nobody may publish there).
    await createEndpoint(server, { url: watcher.url, events: ['webhooks.*', 'watch.check'] });
    for (let n = 0; n < 5; n += 1) await publish(server, 'a', 'orders', { n, entity: `order-${n}` });

    await allIn;
    await waitFor(async () => (await deliveries(server, goneEndpoint.id, 'PENDING')).filter((delivery) => delivery.attempts === 1).length === 5, { timeoutMs: 10_000, message: 'every 410 recorded' });
    // Each attempt tells (or not) right after its record: by the time an event published after the
    // last record reached the watcher, every notice was stored for it — one.
    await publish(server, 'a', 'watch.check', { n: 0 }, 'check');
    await waitFor(() => watcher.received.some((request) => request.json.type === 'check'), { timeoutMs: 10_000, message: 'the check event' });
    const watcherEndpoint = (await gql(server, await admin(), '{ webhookEndpoints { id url } }')).data?.['webhookEndpoints'] as { id: string; url: string }[];
    const watcherId = watcherEndpoint.find((endpoint) => endpoint.url === watcher.url)!.id;
    expect(await deliveries(server, watcherId)).toHaveLength(2);
    // The notice and the check are on lanes of their own: either may reach the watcher first.
    await waitFor(async () => (await deliveries(server, watcherId, 'DELIVERED')).length === 2, { timeoutMs: 10_000, message: 'the notice delivered too' });
    expect(watcher.received).toHaveLength(2);
    expect(watcher.received.filter((request) => request.json.type === 'endpoint.disabled')).toHaveLength(1);
  });

  it('replays a time range, oldest first, each event with its own webhook-id', { timeout: 60_000 }, async () => {
    const server = await startServer(mode);
    const receiver = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders'] });
    const since = new Date(Date.now() - 1_000).toISOString();
    const ids = [await publish(server, 'a', 'orders', { n: 1 }), await publish(server, 'a', 'orders', { n: 2 })];
    await receiver.waitForCount(2);
    const replayed = await gql(server, await admin(), 'mutation($e: ID!, $s: DateTime!) { replayWebhooks(endpointId: $e, since: $s) }', { e: endpoint.id, s: since });
    expect(replayed.data).toEqual({ replayWebhooks: 2 });
    const received = await receiver.waitForCount(4);
    // Events without an entity have no order to keep: each is its own lane.
    expect(new Set(received.slice(2).map((request: ReceivedWebhook) => request.headers['webhook-id']))).toEqual(new Set(ids));
    expect(received.slice(2).map((request) => request.body).sort()).toEqual(received.slice(0, 2).map((request) => request.body).sort());
  });

  it('replays from the event log to an endpoint created after the events, and replays only the dead letters with onlyFailed', { timeout: 60_000 }, async () => {
    const server = await startServer(mode, { WEBHOOK_RETRY_WINDOW_SECONDS: '1' });
    const since = new Date(Date.now() - 1_000).toISOString();
    const before = [await publish(server, 'a', 'orders', { n: 1 }), await publish(server, 'b', 'orders', { n: 2 })];
    await publish(server, 'a', 'invoices', { n: 3 });
    const receiver = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders'], tenant: 'a' });
    const replayed = await gql(server, await admin(), 'mutation($e: ID!, $s: DateTime!) { replayWebhooks(endpointId: $e, since: $s) }', { e: endpoint.id, s: since });
    // Tenant a's order event only: never attempted before, found in the log.
    expect(replayed.data).toEqual({ replayWebhooks: 1 });
    const [first] = await receiver.waitForCount(1);
    expect(first!.headers['webhook-id']).toBe(before[0]);

    // A dead letter, and a replay of the dead ones only.
    receiver.respond = () => 500;
    const failing = await publish(server, 'a', 'orders', { n: 4 });
    await waitFor(async () => (await deliveries(server, endpoint.id, 'DEAD')).length === 1, { timeoutMs: 20_000, message: 'dead-lettered' });
    receiver.respond = () => 200;
    const onlyFailed = await gql(server, await admin(), 'mutation($e: ID!, $s: DateTime!) { replayWebhooks(endpointId: $e, since: $s, onlyFailed: true) }', { e: endpoint.id, s: since });
    expect(onlyFailed.data).toEqual({ replayWebhooks: 1 });
    await waitFor(() => receiver.received.at(-1)?.headers['webhook-id'] === failing && receiver.received.length >= 3, { timeoutMs: 10_000, message: 'the dead letter replayed' });
  });

  it('disables an endpoint that fails without a success for WEBHOOK_DISABLE_AFTER_SECONDS', { timeout: 60_000 }, async () => {
    const server = await startServer(mode, { WEBHOOK_DISABLE_AFTER_SECONDS: '1' });
    // A credential in the query, as in a Slack webhook URL: the notice must not carry it.
    const receiver = await startWebhookReceiver('/hook?token=s3cret');
    receiver.respond = () => 503;
    const watcher = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders'] });
    await createEndpoint(server, { url: watcher.url, events: ['webhooks.*'] });
    await publish(server, 'a', 'orders', { n: 1 });
    await waitFor(
      async () => {
        const listed = await gql(server, await admin(), '{ webhookEndpoints { id enabled disabledReason } }');
        return (listed.data?.['webhookEndpoints'] as { id: string; enabled: boolean }[]).find(({ id }) => id === endpoint.id)?.enabled === false;
      },
      { timeoutMs: 20_000, message: 'the endpoint is disabled' },
    );
    const listed = await gql(server, await admin(), '{ webhookEndpoints { disabledReason } }');
    expect(JSON.stringify(listed.data)).toContain('no successful delivery');
    // Told as on the 410 path, naming the endpoint by its URL's origin only.
    const [notice] = await watcher.waitForCount(1);
    expect(notice!.json).toMatchObject({
      type: 'endpoint.disabled',
      topic: 'webhooks.endpoints',
      data: { endpointId: endpoint.id, origin: new URL(receiver.url).origin, reason: expect.stringContaining('no successful delivery') as unknown },
    });
    expect(notice!.json.data).not.toHaveProperty('url');
    expect(notice!.body).not.toContain('s3cret');
    // Its delivery waits (pending) rather than being retried against a disabled endpoint.
    expect((await deliveries(server, endpoint.id))[0]).toMatchObject({ state: 'PENDING' });
  });

  it('sends an event too large for WEBHOOK_MAX_BODY_BYTES without its data, saying so', { timeout: 60_000 }, async () => {
    const server = await startServer(mode, { WEBHOOK_MAX_BODY_BYTES: '2048' });
    const receiver = await startWebhookReceiver();
    await createEndpoint(server, { url: receiver.url, events: ['orders'] });
    const id = await publish(server, 'a', 'orders', { blob: 'x'.repeat(4_000) });
    const [request] = await receiver.waitForCount(1);
    expect(request!.json).toMatchObject({ id, data: null, dataOmitted: expect.stringContaining('2048') as unknown });
  });

  it('updates, disables (deliveries wait) and enables an endpoint, sends a test event, and pages through the attempt log', { timeout: 60_000 }, async () => {
    const server = await startServer(mode);
    const receiver = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders'] });
    const token = await admin();

    const updated = await gql(server, token, 'mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: { events: ["orders", "invoices"], description: "billing" }) { events description } }', { id: endpoint.id });
    expect(updated.data).toEqual({ updateWebhookEndpoint: { events: ['orders', 'invoices'], description: 'billing' } });
    const disabled = await gql(server, token, 'mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: false) { enabled disabledReason } }', { id: endpoint.id });
    expect(disabled.data).toEqual({ setWebhookEndpointEnabled: { enabled: false, disabledReason: 'disabled by an admin' } });

    // A test event goes out even while disabled; routed events wait.
    const test = await gql(server, token, 'mutation($id: ID!) { sendTestWebhook(endpointId: $id) { eventType trigger } }', { id: endpoint.id });
    expect(test.data).toEqual({ sendTestWebhook: { eventType: 'webhook.test', trigger: 'TEST' } });
    const waiting = [await publish(server, 'a', 'invoices', { n: 1 }), await publish(server, 'a', 'orders', { n: 2 })];
    const [first] = await receiver.waitForCount(1);
    expect(first!.json.type).toBe('webhook.test');
    // The test event's attempt is recorded once its receiver has answered (not before it read the
    // request): then only the routed events are pending.
    const pending = async () => (await deliveries(server, endpoint.id, 'PENDING')).map((delivery) => delivery.eventId).sort();
    await waitFor(async () => (await pending()).length === waiting.length, { timeoutMs: 10_000, message: 'the test event recorded' });
    expect(await pending()).toEqual([...waiting].sort());

    await gql(server, token, 'mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: true) { enabled } }', { id: endpoint.id });
    const received = await receiver.waitForCount(3);
    expect(new Set(received.slice(1).map((request) => request.json.id))).toEqual(new Set(waiting));

    // Three attempts, one page of two and the next of one, newest first.
    const page = async (after?: string) =>
      (await gql(server, token, 'query($e: ID, $a: String) { webhookAttempts(endpointId: $e, first: 2, after: $a) { nodes { eventType outcome } endCursor hasNextPage } }', { e: endpoint.id, a: after }))
        .data?.['webhookAttempts'] as { nodes: { eventType: string; outcome: string }[]; endCursor: string; hasNextPage: boolean };
    await waitFor(async () => (await attempts(server, endpoint.id)).length === 3, { timeoutMs: 10_000, message: 'three attempts logged' });
    const one = await page();
    expect(one.nodes).toHaveLength(2);
    expect(one.hasNextPage).toBe(true);
    const two = await page(one.endCursor);
    expect(two).toMatchObject({ nodes: [{ eventType: 'webhook.test', outcome: 'delivered' }], hasNextPage: false });
    const bad = await gql(server, token, '{ webhookAttempts(first: 1000) { hasNextPage } }');
    expect(bad.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'first' } });
  });


  it('signs with both secrets during a rotation’s overlap, then with the new one only', { timeout: 60_000 }, async () => {
    const server = await startServer(mode);
    const receiver = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: receiver.url, events: ['orders'] });
    const rotated = await gql(server, await admin(), 'mutation($id: ID!) { rotateWebhookSecret(id: $id, overlapSeconds: 2) { secret endpoint { previousSecretExpiresAt } } }', { id: endpoint.id });
    const { secret: newSecret, endpoint: after } = rotated.data?.['rotateWebhookSecret'] as { secret: string; endpoint: { previousSecretExpiresAt: string } };
    expect(newSecret).not.toBe(endpoint.secret);

    await publish(server, 'a', 'orders', { n: 1 });
    const [during] = await receiver.waitForCount(1);
    expect(String(during!.headers['webhook-signature']).split(' ')).toHaveLength(2);
    for (const secret of [endpoint.secret, newSecret]) expect(verifyWebhook(during!.body, during!.headers as Record<string, string>, secret).id).toBe(during!.json.id);

    await waitFor(() => Date.now() > Date.parse(after.previousSecretExpiresAt), { timeoutMs: 5_000, message: 'the overlap ends' });
    await publish(server, 'a', 'orders', { n: 2 });
    const received = await receiver.waitForCount(2);
    const late = received[1]!;
    expect(String(late.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(verifyWebhook(late.body, late.headers as Record<string, string>, newSecret).id).toBe(late.json.id);
    expect(() => verifyWebhook(late.body, late.headers as Record<string, string>, endpoint.secret)).toThrow();
  });
});

describe('webhook endpoints', () => {
  it('refuses loopback, private and metadata targets unless allowed, bad selections and non-admins, with stable codes', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const token = await admin();
    // Names refused after DNS at creation: test/integration/webhook-delivery-dns.test.ts (a DNS server of its own).
    for (const url of ['http://127.0.0.1:9/hook', 'http://localhost/hook', 'http://10.0.0.8/hook', 'http://169.254.169.254/latest/meta-data', 'http://[::1]/hook', 'ftp://example.com/x']) {
      const body = await gql(server, token, CREATE, { input: { url, events: ['*'] } });
      expect(body.errors?.[0], url).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'url' } });
    }
    // A public address (a literal: nothing to resolve on a machine without a network).
    const publicUrl = 'https://1.1.1.1/hook';
    const badEvents = await gql(server, token, CREATE, { input: { url: publicUrl, events: ['orders..x'] } });
    expect(badEvents.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'events' } });
    // DNS is asked last: what else is wrong is said first, also of a URL DNS refuses (or cannot answer for now).
    const ownName = `http://${hostname()}:9/hook`;
    const badEventsAndHost = await gql(server, token, CREATE, { input: { url: ownName, events: ['orders..x'] } });
    expect(badEventsAndHost.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'events' } });
    const notAdmin = await gql(server, await signHs256({}), CREATE, { input: { url: publicUrl, events: ['*'] } });
    expect(notAdmin.errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    // Another tenant's admin cannot see or change an endpoint.
    const { id } = await createEndpoint(server, { url: publicUrl, events: ['*'], tenant: 'a' });
    const other = await gql(server, await admin('b'), 'mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }', { id });
    expect(other.errors?.[0]).toMatchObject({ extensions: { code: 'NOT_FOUND' } });
    const listed = await gql(server, await admin('b'), '{ webhookEndpoints { id } }');
    expect(listed.data).toEqual({ webhookEndpoints: [] });
  });

  it('answers bad admin input with stable codes — never an internal error — and tells nothing of another tenant', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase({ migrated: true });
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, DATABASE_URL: database.url });
    const token = await admin();
    const publicUrl = 'https://1.1.1.1/hook';
    const codeOf = async (query: string, variables: Record<string, unknown>, as = token) => (await gql(server, as, query, variables)).errors?.[0]?.extensions;
    const create = (input: Record<string, unknown>) => codeOf(CREATE, { input: { url: publicUrl, events: ['*'], ...input } });

    expect(await create({ description: 'x'.repeat(1_001) })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'description' });
    expect(await create({ description: 'a\u0000b' })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'description' });
    for (const tenant of ['', ' a', 'x'.repeat(201), 'a\u0000']) expect(await create({ tenant }), JSON.stringify(tenant)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'tenant' });
    // Ids that are no endpoint's never reach a query.
    for (const id of ['ep_\u0000', 'x'.repeat(10_000), 'ep_AAAAAAAAAAAAAAAA']) {
      expect(await codeOf('mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }', { id })).toMatchObject({ code: 'NOT_FOUND', field: 'id' });
    }
    expect(await codeOf('mutation($e: ID!) { sendTestWebhook(endpointId: $e) { id } }', { e: 'nope' })).toMatchObject({ code: 'NOT_FOUND', field: 'endpointId' });
    const list = 'query($o: String, $t: String, $s: DateTime, $u: DateTime) { webhookAttempts(outcome: $o, eventType: $t, since: $s, until: $u) { nodes { id } } }';
    expect(await codeOf(list, { o: 'bogus' })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'outcome' });
    expect(await codeOf(list, { t: 'a\u0000' })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'eventType' });
    expect(await codeOf(list, { s: '2026-01-02T00:00:00Z', u: '2026-01-01T00:00:00Z' })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'until' });

    // A tenant's endpoint, one delivery to it; another tenant's admin learns nothing of either.
    const { id } = await createEndpoint(server, { url: publicUrl, events: ['orders'], tenant: 'a' });
    await publish(server, 'a', 'orders', { n: 1 });
    const [delivery] = await deliveries(server, id);
    const other = await gql(server, await admin('b'), 'mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { id } }', { d: delivery!.id });
    expect(other.errors?.[0]).toMatchObject({ extensions: { code: 'NOT_FOUND', field: 'deliveryId' } });
    expect(other.errors?.[0]?.message).not.toContain(id);
    const replay = 'mutation($e: ID!, $s: DateTime!) { replayWebhooks(endpointId: $e, since: $s) }';
    for (const since of ['1950-01-01T00:00:00Z', '2999-01-01T00:00:00Z']) expect(await codeOf(replay, { e: id, s: since })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'since' });
    // A rotation without overlap leaves no previous secret signing.
    const rotated = await gql(server, token, 'mutation($id: ID!) { rotateWebhookSecret(id: $id, overlapSeconds: 0) { endpoint { previousSecretExpiresAt } } }', { id });
    expect(rotated.data).toEqual({ rotateWebhookSecret: { endpoint: { previousSecretExpiresAt: null } } });

    // At most 100 endpoints of one tenant: tenant a's 100th is created, its 101st refused, whoever
    // asks; tenant b still has room.
    const pool = openTestPool(database.url);
    await pool.query(
      `INSERT INTO webhook_endpoints (id, app, env, tenant, url, events, secret, max_concurrency)
       SELECT 'ep_a' || lpad(n::text, 15, '0'), app, env, tenant, url, events, secret, max_concurrency FROM webhook_endpoints, generate_series(1, 98) n WHERE id = $1`,
      [id],
    );
    const full = async (tenant: string, as: string) => (await gql(server, as, CREATE, { input: { url: publicUrl, events: ['*'], tenant } })).errors?.[0];
    // Five at once for its last place: one is created (creations of an environment go one at a time).
    const tenantAdmin = await admin('a');
    const racing = await Promise.all(Array.from({ length: 5 }, () => full('a', tenantAdmin)));
    expect(racing.filter((error) => error === undefined)).toHaveLength(1);
    expect(racing.filter((error) => error?.extensions?.['code'] === 'CONFLICT')).toHaveLength(4);
    for (const as of [token, await admin('a')]) {
      expect(await full('a', as)).toMatchObject({ message: expect.stringContaining('This tenant has 100 webhook endpoints') as unknown, extensions: { code: 'CONFLICT' } });
    }
    expect(await create({ tenant: 'b' })).toBeUndefined();

    // At most 1,000 endpoints in an environment; a tenant's caller is not told how many the others have.
    await pool.query(
      `INSERT INTO webhook_endpoints (id, app, env, url, events, secret, max_concurrency)
       SELECT 'ep_' || lpad(n::text, 16, '0'), app, env, url, events, secret, max_concurrency FROM webhook_endpoints, generate_series(1, 899) n WHERE id = $1`,
      [id],
    );
    expect(await create({})).toMatchObject({ code: 'CONFLICT' });
    const asTenant = await full('c', await admin('c'));
    expect(asTenant).toMatchObject({ extensions: { code: 'CONFLICT' } });
    expect(asTenant?.message).not.toMatch(/\d/);
  });
});
