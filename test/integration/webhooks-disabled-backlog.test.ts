/**
 * A disabled endpoint's deliveries, in both delivery modes: events routed to it are stored and
 * wait — claimed, found disabled and put back for an hour, unleased, never attempted — and go out
 * once it is enabled. Put back together when claimed together (one read of the endpoint, one
 * statement); with BullMQ, one delayed job names them for the hour's look, not one job each (a
 * full backlog of a million deliveries held a million jobs in Redis). A backlog of more lanes than
 * the enable makes due before it answers drains all the same, the rest in the background, each
 * entity's deliveries in order.
 */
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { WEBHOOK_QUEUE, type DeliveryJob } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import { RESUME_PAGE_LANES } from '../../src/pipeline/webhooks/endpoint-resume.ts';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv } from '../helpers/events.ts';
import { saveOutboxSourceBeforeStart } from '../helpers/outbox-source.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

/** Events routed in one outbox batch: their deliveries are stored, and claimed, together — more than the endpoint's maxConcurrency (10). */
const EVENTS = 30;

describe.each(MODES)('a disabled endpoint’s deliveries (%s delivery)', (mode) => {
  it('are put back together for an hour without an attempt, and sent once the endpoint is enabled', { timeout: 60_000 }, async () => {
    const [platform, appDb] = await Promise.all([createTestDatabase({ migrated: true }), createTestDatabase()]);
    const platformPool = openTestPool(platform.url);
    const app = openTestPool(appDb.url);
    const env = modeEnv(mode);
    // The environment's outbox, saved before the server starts: its pollers load it at once (outbox-source.ts).
    expect(await saveOutboxSourceBeforeStart(platform.url, { databaseUrl: appDb.url, createTable: true, mode: 'POLL' })).toMatchObject({ readMode: 'POLL' });
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', OUTBOX_POLL_INTERVAL_MS: '50', DATABASE_URL: platform.url, ...env });
    const token = await signHs256({ roles: ['admin'], permissions: [] });
    const receiver = await startWebhookReceiver();
    const created = await gql(server, token, 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
      input: { url: receiver.url, events: ['orders'] },
    });
    const endpointId = (created.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;
    const disabled = await gql(server, token, 'mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: false) { enabled } }', { id: endpointId });
    expect(disabled.data).toEqual({ setWebhookEndpointEnabled: { enabled: false } });

    // One transaction: the outbox's reader routes them in one batch.
    const client = await app.connect();
    try {
      await client.query('BEGIN');
      for (let seq = 0; seq < EVENTS; seq += 1) await enqueueOutboxEvent(client, { topic: 'orders', type: 'order.updated', payload: { seq }, tenant: 'tenant-a', entity: `order-${seq}` });
      await client.query('COMMIT');
    } finally {
      client.release();
    }

    // Each stored, claimed and put back: pending, unleased, due in about an hour, never attempted.
    const waiting = async () =>
      (
        await platformPool.query<{ id: string }>(
          `SELECT id::text AS id FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'pending' AND attempts = 0
              AND leased_until IS NULL AND next_attempt_at > now() + interval '55 minutes' ORDER BY id`,
          [endpointId],
        )
      ).rows.map((row) => row.id);
    await waitFor(async () => (await waiting()).length === EVENTS, { timeoutMs: 20_000, message: 'every delivery put back for the hour' });
    const ids = await waiting();
    expect(receiver.received).toHaveLength(0);

    if (env['REDIS_URL'] !== undefined) {
      const connection = new Redis(env['REDIS_URL'], { maxRetriesPerRequest: 2 });
      const queue = new Queue<DeliveryJob>(WEBHOOK_QUEUE, { connection, prefix: `${env['REDIS_KEY_PREFIX']}bull` });
      onTestFinished(async () => {
        await queue.close();
        connection.disconnect();
      });
      // The hour's look at them: every one named (the jobs are added once the rows are put back) …
      const delayedJobs = (): Promise<Job<DeliveryJob>[]> => queue.getJobs(['delayed'], 0, -1, true);
      const named = async () => (await delayedJobs()).flatMap((job) => job.data.deliveryIds ?? []).sort();
      await waitFor(async () => (await named()).length >= EVENTS, { timeoutMs: 10_000, message: 'every delivery named by a delayed job' });
      expect(await named()).toEqual([...ids].sort());
      // … by a job for the batch, not a job each, nor one per maxConcurrency of them.
      const delayed = await delayedJobs();
      expect(delayed.length).toBeLessThan(3);
      for (const job of delayed) expect(job.delay).toBeGreaterThan(55 * 60_000);
    }

    // Enabled: due at once, and sent.
    await gql(server, token, 'mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: true) { enabled } }', { id: endpointId });
    const received = await receiver.waitForCount(EVENTS);
    expect(received.map((request) => Number(request.json.data['seq'])).sort((a, b) => a - b)).toEqual(Array.from({ length: EVENTS }, (_, seq) => seq));
    await waitFor(async () => (await platformPool.query(`SELECT 1 FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'delivered'`, [endpointId])).rowCount === EVENTS, {
      timeoutMs: 10_000,
      message: 'every delivery recorded as delivered',
    });
  });

  it('drains a backlog of more lanes than an enable makes due before it answers, each entity’s deliveries in order', { timeout: 120_000 }, async () => {
    const platform = await createTestDatabase({ migrated: true });
    const platformPool = openTestPool(platform.url);
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', DATABASE_URL: platform.url, ...modeEnv(mode) });
    const token = await signHs256({ roles: ['admin'], permissions: [] });
    const receiver = await startWebhookReceiver();
    const created = await gql(server, token, 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
      input: { url: receiver.url, events: ['orders'], maxConcurrency: 50 },
    });
    const endpointId = (created.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;
    await gql(server, token, 'mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: false) { enabled } }', { id: endpointId });

    // A disabled endpoint's backlog as the workers leave it: each entity's first delivery (its
    // lane's head) put back for the hour, the ones behind it due and waiting for it.
    const entities = RESUME_PAGE_LANES + 200;
    const perEntity = 3;
    await platformPool.query(
      `INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, topic, lane, body, trigger, event_time, next_attempt_at)
       SELECT $1, 'ev-' || e || '-' || n, 'order.updated', 'orders', '|order-' || e,
              json_build_object('id', 'ev-' || e || '-' || n, 'type', 'order.updated', 'topic', 'orders', 'entity', 'order-' || e, 'data', json_build_object('seq', n))::text,
              'initial', now(), CASE WHEN n = 0 THEN now() + interval '1 hour' ELSE now() END
         FROM generate_series(0, $3::int - 1) n, generate_series(1, $2::int) e ORDER BY n, e`,
      [endpointId, entities, perEntity],
    );

    const enabled = await gql(server, token, 'mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: true) { enabled } }', { id: endpointId });
    expect(enabled.data).toEqual({ setWebhookEndpointEnabled: { enabled: true } });
    const received = await receiver.waitForCount(entities * perEntity);
    const seen = new Map<string, number[]>();
    for (const { json } of received) seen.set(json.entity!, [...(seen.get(json.entity!) ?? []), Number(json.data['seq'])]);
    expect(seen.size).toBe(entities);
    for (const seqs of seen.values()) expect(seqs).toEqual([0, 1, 2]);
    await waitFor(async () => (await platformPool.query(`SELECT 1 FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'delivered'`, [endpointId])).rowCount === entities * perEntity, {
      timeoutMs: 20_000,
      message: 'every delivery recorded as delivered',
    });
  });
});
