/**
 * Webhook secrets never reach the logs: a server logging at `trace` into a captured sink, through
 * an endpoint's creation, a rotation, a failed attempt and its retry, and a `410 Gone` that
 * disables another endpoint — in both delivery modes. The failures must be in the logs (a silent
 * logger would pass the secret check for nothing), and no line may hold a secret: neither the
 * `whsec_` string, nor its base64 key part, nor the key's bytes in hex.
 */
import { describe, expect, it } from 'vitest';
import { verifyWebhook } from '@tributary/client/webhooks';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv } from '../helpers/events.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { captureLogs, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const CREATE = 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { id } } }';
const ROTATE = 'mutation($id: ID!) { rotateWebhookSecret(id: $id, overlapSeconds: 3600) { secret } }';

/** An admin of the whole environment (no tenant: the default claims have one). */
function admin(): Promise<string> {
  return signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
}

async function mutate(server: TestServer, query: string, variables: Record<string, unknown>): Promise<Record<string, unknown>> {
  const body = await gql(server, await admin(), query, variables);
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data!;
}

async function deliveryState(server: TestServer, endpointId: string): Promise<string | undefined> {
  const body = await gql(server, await admin(), 'query($e: ID) { webhookDeliveries(endpointId: $e) { nodes { state } } }', { e: endpointId });
  return (body.data?.['webhookDeliveries'] as { nodes: { state: string }[] }).nodes[0]?.state;
}

/** What of a secret must never be written: the string itself, its base64 key part, and the key in hex. */
function formsOf(secret: string): string[] {
  expect(secret).toMatch(/^whsec_/);
  const key = secret.slice('whsec_'.length);
  return [secret, key, Buffer.from(key, 'base64').toString('hex')];
}

describe.each(MODES)('webhook secrets in the logs (%s delivery)', (mode) => {
  it('logs the failures of deliveries but never a secret, created or rotated', { timeout: 60_000 }, async () => {
    const logs = captureLogs();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', LOG_LEVEL: 'trace', ...modeEnv(mode) }, { logDestination: logs });
    const flaky = await startWebhookReceiver();
    flaky.respond = (_request, index) => (index === 0 ? 500 : 204);
    const gone = await startWebhookReceiver();
    gone.respond = () => 410;

    const created = (await mutate(server, CREATE, { input: { url: flaky.url, events: ['orders'] } }))['createWebhookEndpoint'] as { secret: string; endpoint: { id: string } };
    const rotated = ((await mutate(server, ROTATE, { id: created.endpoint.id }))['rotateWebhookSecret'] as { secret: string }).secret;
    const goneEndpoint = (await mutate(server, CREATE, { input: { url: gone.url, events: ['orders'] } }))['createWebhookEndpoint'] as { secret: string; endpoint: { id: string } };
    const publisher = await signHs256({ tenant: 'a', permissions: ['orders.publish'] });
    const published = await gql(server, publisher, 'mutation { publish(topic: "orders", type: "order.updated", payload: { n: 1 }) { id } }');
    expect(published.errors).toBeUndefined();

    // The flaky receiver: a 500, then the retry delivered, signed with both secrets (the overlap).
    const [, retried] = await flaky.waitForCount(2);
    for (const secret of [created.secret, rotated]) expect(verifyWebhook(retried!.body, retried!.headers as Record<string, string>, secret).id).toBe(retried!.json.id);
    await waitFor(async () => (await deliveryState(server, created.endpoint.id)) === 'DELIVERED', { timeoutMs: 10_000, message: 'the retry recorded' });
    // The 410 disables the endpoint (logged), and its delivery is held for the enable (pending).
    await waitFor(async () => (await deliveryState(server, goneEndpoint.endpoint.id)) === 'PENDING', { timeoutMs: 10_000, message: 'the 410 recorded' });
    // The disable is logged: awaited, as the premise of the check.
    const logged = (msg: string) => logs.lines.some((line) => line.msg === msg && line['endpoint'] === goneEndpoint.endpoint.id);
    await waitFor(() => logged('webhook endpoint disabled'), { timeoutMs: 10_000, message: 'the 410 logged' });

    const forms = [created.secret, rotated, goneEndpoint.secret].flatMap(formsOf);
    const leaks = logs.lines.map((line) => JSON.stringify(line)).filter((line) => forms.some((form) => line.includes(form)));
    expect(leaks).toEqual([]);
    expect(logs.lines.length).toBeGreaterThan(0);
  });
});
