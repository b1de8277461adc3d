/**
 * Webhooks fed by sources other than `publish` (README "What fires"): a sync document written
 * through the GraphQL API reaches an endpoint selecting `sync.{service}.*`, signed, as the
 * documented `sync.{operation}` event on `sync.{service}.{operation}` — once per change, though each
 * change is also routed on the document's own stream (`sync.{service}.doc.{id}`), which the pattern
 * covers too.
 */
import { describe, expect, it } from 'vitest';
import { verifyWebhook } from '@tributary/client/webhooks';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv } from '../helpers/events.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const CREATE = 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { id } } }';

/** An admin of the whole environment (no tenant: the default claims have one). */
function admin(): Promise<string> {
  return signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
}

async function createEndpoint(server: TestServer, input: Record<string, unknown>): Promise<{ id: string; secret: string }> {
  const body = await gql(server, await admin(), CREATE, { input });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  const created = body.data?.['createWebhookEndpoint'] as { secret: string; endpoint: { id: string } };
  return { id: created.endpoint.id, secret: created.secret };
}

describe.each(MODES)('webhooks from sync documents (%s delivery)', (mode) => {
  it('delivers each saved change of a document, signed, as sync.created then sync.updated on sync.{service}.{operation}', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', ...modeEnv(mode) });
    const notes = await startWebhookReceiver();
    const updates = await startWebhookReceiver();
    const endpoint = await createEndpoint(server, { url: notes.url, events: ['sync.notes.*'] });
    // By event type alone: the update only.
    await createEndpoint(server, { url: updates.url, events: ['sync.updated'] });
    const writer = await signHs256({ tenant: 'a', permissions: ['sync.notes.write'] });

    const created = await gql(server, writer, 'mutation { createDocument(service: "notes", id: "n1", data: { title: "Draft" }) { revision } }');
    expect(created.data).toEqual({ createDocument: { revision: 1 } });
    const merged = await gql(server, writer, 'mutation { mergeDocument(service: "notes", id: "n1", patch: { title: "Final" }, expectedRevision: 1) { revision } }');
    expect(merged.data).toEqual({ mergeDocument: { revision: 2 } });

    // One lane (the document): the creation first, then the update.
    const [first, second] = await notes.waitForCount(2);
    const common = { source: 'sync', tenant: 'a', entity: 'sync/notes/n1' };
    expect(first!.json).toMatchObject({ ...common, type: 'sync.created', topic: 'sync.notes.created', data: { service: 'notes', documentId: 'n1', revision: 1, data: { title: 'Draft' } } });
    expect(second!.json).toMatchObject({
      ...common,
      type: 'sync.updated',
      topic: 'sync.notes.updated',
      data: { service: 'notes', documentId: 'n1', revision: 2, data: { title: 'Final' }, diff: [{ op: 'replace', path: '/title', value: 'Final' }] },
    });
    for (const request of [first!, second!]) {
      expect(request.headers['webhook-id']).toBe(request.json.id);
      expect(verifyWebhook(request.body, request.headers as Record<string, string>, endpoint.secret).id).toBe(request.json.id);
    }
    // Each change's deliveries were stored before its write was answered: the document stream's copy made none.
    const stored = await gql(server, await admin(), 'query($e: ID) { webhookDeliveries(endpointId: $e) { nodes { eventId topic } } }', { e: endpoint.id });
    expect(stored.data?.['webhookDeliveries']).toEqual({ nodes: [{ eventId: second!.json.id, topic: 'sync.notes.updated' }, { eventId: first!.json.id, topic: 'sync.notes.created' }] });
    const [update] = await updates.waitForCount(1);
    expect(update!.json).toMatchObject({ id: second!.json.id, type: 'sync.updated' });
  });
});
