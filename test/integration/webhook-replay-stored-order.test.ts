/**
 * An endpoint of `maxConcurrency: 1`, in both delivery modes (and BullMQ's split deployment): its
 * deliveries are taken in the order they were stored (due time, then id), so with nothing failing
 * the receiver gets a replay's events oldest first, and events published one after another in that
 * order — events without an entity (every `publish`) included.
 */
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv } from '../helpers/events.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const EVENTS = 12;
const BASE_ENV = { JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' };

/**
 * The server the test calls: one process doing all (embedded or BullMQ), or — `split` — a `server`
 * process with a `workers` one beside it on the same database and Redis, whose endpoint cache hears
 * of the new endpoint only at its next refresh (the review's deployment).
 */
async function startDeployment(mode: (typeof MODES)[number] | 'split'): Promise<TestServer> {
  if (mode !== 'split') return startTestServer({ ...BASE_ENV, ...modeEnv(mode) });
  const database = await createTestDatabase();
  const shared = { ...BASE_ENV, DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() };
  await startTestServer({ ...shared, TRIBUTARY_ROLE: 'workers' });
  return startTestServer({ ...shared, TRIBUTARY_ROLE: 'server' });
}

describe.each([...MODES, 'split' as const])('an endpoint of maxConcurrency 1 (%s delivery)', (mode) => {
  it('receives a replay in event order', { timeout: 60_000 }, async () => {
    const server = await startDeployment(mode);
    const token = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const since = new Date(Date.now() - 1_000).toISOString();
    const published: string[] = [];
    for (let n = 0; n < EVENTS; n += 1) {
      const body = await gql(server, token, 'mutation($n: Int!) { publish(topic: "replayed.things", payload: { n: $n }) { id } }', { n });
      expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
      published.push((body.data?.['publish'] as { id: string }).id);
    }
    const receiver = await startWebhookReceiver();
    const created = await gql(server, token, 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
      input: { url: receiver.url, events: ['replayed.*'], maxConcurrency: 1 },
    });
    expect(created.errors, JSON.stringify(created.errors)).toBeUndefined();
    const endpointId = (created.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;

    const replayed = await gql(server, token, 'mutation($e: ID!, $s: DateTime!) { replayWebhooks(endpointId: $e, since: $s) }', { e: endpointId, s: since });
    expect(replayed.data).toEqual({ replayWebhooks: EVENTS });
    const received = await receiver.waitForCount(EVENTS);
    expect(received.map((request) => request.headers['webhook-id'])).toEqual(published);
  });

  it('receives events published one after another in that order', { timeout: 60_000 }, async () => {
    const server = await startDeployment(mode);
    const token = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const receiver = await startWebhookReceiver();
    const created = await gql(server, token, 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }', {
      input: { url: receiver.url, events: ['live.*'], maxConcurrency: 1 },
    });
    expect(created.errors, JSON.stringify(created.errors)).toBeUndefined();
    const published: string[] = [];
    for (let n = 0; n < EVENTS; n += 1) {
      const body = await gql(server, token, 'mutation($n: Int!) { publish(topic: "live.things", payload: { n: $n }) { id } }', { n });
      expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
      published.push((body.data?.['publish'] as { id: string }).id);
    }
    const received = await receiver.waitForCount(EVENTS);
    expect(received.map((request) => request.headers['webhook-id'])).toEqual(published);
  });
});
