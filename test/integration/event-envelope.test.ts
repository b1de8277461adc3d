import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, gql, saveMappingOk, setUpCdc, socketFor } from '../helpers/cdc.ts';
import { eventOf, publishEvent } from '../helpers/events.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import type { RawSocket } from '../helpers/ws-client.ts';

/*
 * The envelope each source fills in, as a subscriber of `events(topic)` sees it (docs/events.md):
 * database events carry the seed's metadata.table and metadata.operation, sync events the
 * revision, socket events none of them.
 */

const ENVELOPE = 'subscription ($topic: String!) { events(topic: $topic) { id topic source type payload metadata { table operation revision } } }';

async function subscribe(client: RawSocket, id: string, topic: string): Promise<void> {
  client.send({ id, type: 'subscribe', payload: { query: ENVELOPE, variables: { topic } } });
  // A ping after the subscribe is answered after the subscription is set up on this socket.
  client.send({ type: 'ping' });
  expect(await client.nextMessage()).toEqual({ type: 'pong' });
}


describe('the event envelope per source', () => {
  it('fills table and operation for database events, the revision for sync events, neither for socket events', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const claims = { tenant: 'a', permissions: ['crm.read', 'sync.notes.read', 'sync.notes.write', 'chat.publish', 'chat.read'] };
    const client = await socketFor(setup, claims);
    const subscribers = setup.server.stats().subscribers;
    await subscribe(client, 'db', CONTACTS_MAPPING.topic);
    await subscribe(client, 'sync', 'sync.notes.created');
    await subscribe(client, 'socket', 'chat.room');
    await waitFor(() => setup.server.stats().subscribers === subscribers + 3, { message: 'three subscriptions dispatched' });

    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Ann')`);
    expect(eventOf(await client.nextMessage())).toMatchObject({
      topic: CONTACTS_MAPPING.topic,
      source: 'DATABASE',
      metadata: { table: 'public.contacts', operation: 'insert', revision: null },
    });

    const token = await signHs256({ app: 'shop', env: 'prod', ...claims });
    expect((await gql(setup.server, token, 'mutation { createDocument(service: "notes", id: "n1", data: { t: 1 }) { revision } }')).errors).toBeUndefined();
    expect(eventOf(await client.nextMessage())).toMatchObject({
      source: 'SYNC',
      type: 'sync.created',
      payload: { service: 'notes', documentId: 'n1', revision: 1, data: { t: 1 } },
      metadata: { table: null, operation: null, revision: 1 },
    });

    await publishEvent(setup.server, { topic: 'chat.room', payload: { text: 'hi' } }, token);
    expect(eventOf(await client.nextMessage())).toMatchObject({
      source: 'SOCKET',
      type: 'message',
      payload: { text: 'hi' },
      metadata: { table: null, operation: null, revision: null },
    });
  });
});
