/**
 * Webhook metrics on `GET /metrics`, in both delivery modes, after real deliveries: attempts by
 * outcome (matching the attempt log), the attempt latency histogram, dead letters, and each
 * endpoint's queue depth and oldest pending age (measured by the workers' housekeeping every 5 s:
 * polled on `/metrics`, never slept on).
 */
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv } from '../helpers/events.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const CREATE = 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }';
const PUBLISH = 'mutation($topic: String!, $payload: JSON!) { publish(topic: $topic, type: "order.updated", payload: $payload) { id } }';

/** An admin of the whole environment (no tenant: the default claims have one). */
function admin(): Promise<string> {
  return signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
}

async function createEndpoint(server: TestServer, input: Record<string, unknown>): Promise<string> {
  const body = await gql(server, await admin(), CREATE, { input });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id;
}

async function publish(server: TestServer, topic: string): Promise<void> {
  const body = await gql(server, await signHs256({ tenant: 'a', permissions: [`${topic}.publish`] }), PUBLISH, { topic, payload: { n: 1 } });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
}

async function deliveryStates(server: TestServer, endpointId: string): Promise<string[]> {
  const body = await gql(server, await admin(), 'query($e: ID) { webhookDeliveries(endpointId: $e) { nodes { state } } }', { e: endpointId });
  return (body.data?.['webhookDeliveries'] as { nodes: { state: string }[] }).nodes.map(({ state }) => state);
}

async function attemptLog(server: TestServer): Promise<{ outcome: string; durationMs: number }[]> {
  const body = await gql(server, await admin(), '{ webhookAttempts { nodes { outcome durationMs } } }');
  return (body.data?.['webhookAttempts'] as { nodes: { outcome: string; durationMs: number }[] }).nodes;
}

/** Every sample of `/metrics`, keyed `name{labels}` as exposed (labels in the order the server writes them). */
async function scrape(server: TestServer): Promise<Map<string, number>> {
  const response = await fetch(`${server.url}/metrics`);
  expect(response.status).toBe(200);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

/** Scrapes until `ready` holds (up to 20 s: four housekeeping runs); resolves with that scrape. */
async function scrapeUntil(server: TestServer, ready: (samples: Map<string, number>) => boolean, message: string): Promise<Map<string, number>> {
  let samples = new Map<string, number>();
  await waitFor(async () => ready((samples = await scrape(server))), { timeoutMs: 20_000, message });
  return samples;
}

describe.each(MODES)('webhook metrics (%s delivery)', (mode) => {
  it('exports attempts by outcome, their latency, dead letters, and each endpoint’s pending count and oldest age', { timeout: 60_000 }, async () => {
    // A 2 s window: a failing delivery fails once, and its retry (1–1.2 s later) is its last.
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_RETRY_WINDOW_SECONDS: '2', ...modeEnv(mode) });
    const ok = await startWebhookReceiver();
    const failing = await startWebhookReceiver();
    failing.respond = () => 500;
    const okEndpoint = await createEndpoint(server, { url: ok.url, events: ['orders'] });
    const failingEndpoint = await createEndpoint(server, { url: failing.url, events: ['invoices'] });
    const before = await scrape(server);
    expect(before.get('tributary_webhook_attempt_seconds_count')).toBe(0);
    expect(before.get('tributary_webhook_dead_letters_total')).toBe(0);

    await publish(server, 'orders');
    await publish(server, 'invoices');
    await waitFor(async () => (await deliveryStates(server, okEndpoint))[0] === 'DELIVERED', { timeoutMs: 10_000, message: 'delivered' });
    await waitFor(async () => (await deliveryStates(server, failingEndpoint))[0] === 'DEAD', { timeoutMs: 20_000, message: 'dead-lettered' });
    // Counted right after each attempt is recorded: the last ones may be a moment behind the log.
    const after = await scrapeUntil(
      server,
      (samples) => samples.get('tributary_webhook_attempts_total{outcome="dead"}') === 1 && samples.get('tributary_webhook_attempts_total{outcome="delivered"}') === 1,
      'the last attempts counted',
    );
    const log = await attemptLog(server);
    const logged = (outcome: string) => log.filter((each) => each.outcome === outcome).length;
    expect(log).toHaveLength(failing.received.length + ok.received.length);
    expect(logged('failed')).toBeGreaterThan(0);
    expect(after.get('tributary_webhook_attempts_total{outcome="failed"}')).toBe(logged('failed'));
    expect(after.get('tributary_webhook_dead_letters_total')).toBe(1);
    // One observation per attempt, of the duration the log has (in ms there, whole; in s here).
    expect(after.get('tributary_webhook_attempt_seconds_count')).toBe(log.length);
    expect(after.get('tributary_webhook_attempt_seconds_bucket{le="+Inf"}')).toBe(log.length);
    expect(after.get('tributary_webhook_attempt_seconds_sum')).toBeCloseTo(log.reduce((sum, each) => sum + each.durationMs, 0) / 1000, 2);

    // A disabled endpoint's delivery waits, pending: measured by the next housekeeping run.
    const waiting = await startWebhookReceiver();
    const waitingEndpoint = await createEndpoint(server, { url: waiting.url, events: ['refunds'] });
    const disabled = await gql(server, await admin(), 'mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: false) { enabled } }', { id: waitingEndpoint });
    expect(disabled.errors).toBeUndefined();
    const publishedAt = Date.now();
    await publish(server, 'refunds');
    const measured = await scrapeUntil(server, (samples) => samples.get(`tributary_webhook_pending{app="shop",env="prod",endpoint="${waitingEndpoint}"}`) === 1, 'the pending delivery measured');
    // The same run measured the finished endpoints: nothing pending, so no oldest age either.
    expect(measured.get(`tributary_webhook_pending{app="shop",env="prod",endpoint="${okEndpoint}"}`)).toBe(0);
    expect(measured.get(`tributary_webhook_pending{app="shop",env="prod",endpoint="${failingEndpoint}"}`)).toBe(0);
    expect(measured.has(`tributary_webhook_oldest_pending_seconds{app="shop",env="prod",endpoint="${okEndpoint}"}`)).toBe(false);
    // An age in seconds: no older than the time since the event was published.
    const age = measured.get(`tributary_webhook_oldest_pending_seconds{app="shop",env="prod",endpoint="${waitingEndpoint}"}`);
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThanOrEqual((Date.now() - publishedAt) / 1000);
    expect(waiting.received).toHaveLength(0);
  });
});
